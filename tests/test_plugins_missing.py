"""A saved tagger that needs a plugin distribution which is not installed, and the autoload switch.

Loading such a tagger fails before anything is built, with one line that names the distribution;
``seqtag evaluate`` and ``seqtag predict`` print that line and exit 2. With
``SEQTAG_DISABLE_PLUGIN_AUTOLOAD=1`` no third-party part is listed by ``seqtag plugins``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from seqtag.errors import PluginMissingError

from .conftest import SAMPLES

GHOST_DIST = "seqtag-ghost-plugin"
GROUPS = ("seqtag.tokenizers", "seqtag.embeddings", "seqtag.encoders", "seqtag.heads")


def _cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "SEQTAG_DISABLE_PLUGIN_AUTOLOAD"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "seqtag.cli", *args], input=stdin, capture_output=True, text=True,
                          env=full, timeout=180)


@pytest.fixture(scope="module")
def orphan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (untrained) tagger whose config and meta.json name a part from a distribution nobody installed."""
    from seqtag.model import TaggerModel
    from seqtag.tagger import Tagger
    from seqtag.testing import TINY_CORPUS, tiny_config

    cfg = tiny_config("encoder", {"type": "lstm.v1", "hidden_size": 8})
    labels = sorted({t for _, tags in TINY_CORPUS for t in tags})
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=[t for t, _ in TINY_CORPUS])
    out = tmp_path_factory.mktemp("orphan") / "model"
    Tagger(cfg, labels, model).save(out)
    config = json.loads((out / "config.json").read_text())
    config["model"]["encoder"] = {"type": "ghost.v1", "hidden_size": 8}
    (out / "config.json").write_text(json.dumps(config))
    meta = json.loads((out / "meta.json").read_text())
    meta["plugins"] = {GHOST_DIST: "1.2.3"}
    (out / "meta.json").write_text(json.dumps(meta))
    return out


def test_loading_names_the_missing_distribution_in_one_line(orphan: Path) -> None:
    import seqtag

    with pytest.raises(PluginMissingError) as err:
        seqtag.load(orphan)
    line = err.value.one_line()
    assert "\n" not in str(err.value)
    assert f"needs the plugin distribution '{GHOST_DIST}' (version 1.2.3)" in line
    assert f"pip install {GHOST_DIST}" in line and str(orphan) in line


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_cli_prints_the_line_and_exits_2(orphan: Path, command: str) -> None:
    if command == "evaluate":
        res = _cli("evaluate", str(orphan), "--dataset", str(SAMPLES / "sample_ner"))
    else:
        res = _cli("predict", str(orphan), stdin="John Smith lives in Paris .\n")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and f"'{GHOST_DIST}' (version 1.2.3)" in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


def _listed(env: dict[str, str] | None = None) -> list[dict[str, str]]:
    res = _cli("plugins", "--json", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_autoload_off_lists_only_the_builtins() -> None:
    rows = _listed({"SEQTAG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert rows and {r["distribution"] for r in rows} == {"seqtag"}
    assert {"lstm.v1", "crf.v1", "word.v1", "whitespace.v1"} <= {r["name"] for r in rows}
    text = _cli("plugins", env={"SEQTAG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert text.returncode == 0 and "third-party plugins are off" in text.stdout


@pytest.mark.plugins
def test_autoload_on_lists_every_installed_entry_point() -> None:
    installed = {(g.split(".")[1][:-1], ep.name) for g in GROUPS for ep in entry_points(group=g)}
    rows = _listed()
    assert installed <= {(r["kind"], r["name"]) for r in rows}
    builtins = {(r["kind"], r["name"]) for r in _listed({"SEQTAG_DISABLE_PLUGIN_AUTOLOAD": "1"})}
    assert {(r["kind"], r["name"]) for r in rows} == builtins | installed
