"""A saved tagger that needs a plugin distribution which is not installed, and the autoload switch.

Loading such a tagger fails before anything is built, with one line that names the distribution;
``seqtag evaluate``, ``seqtag predict`` and ``seqtag train --resume`` print that line and exit 2, and
the spaCy component raises it. With
``SEQTAG_DISABLE_PLUGIN_AUTOLOAD=1`` no third-party part is listed by ``seqtag plugins``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from seqtag import registry
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
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (untrained) tagger made of built-in parts only."""
    from seqtag.model import TaggerModel
    from seqtag.tagger import Tagger
    from seqtag.testing import TINY_CORPUS, tiny_config

    cfg = tiny_config("encoder", {"type": "lstm.v1", "hidden_size": 8})
    labels = sorted({t for _, tags in TINY_CORPUS for t in tags})
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=[t for t, _ in TINY_CORPUS])
    out = tmp_path_factory.mktemp("tiny") / "model"
    Tagger(cfg, labels, model).save(out)
    return out


def _orphan_files(folder: Path) -> None:
    """Make a saved tagger's config and meta.json name a part from a distribution nobody installed."""
    config = json.loads((folder / "config.json").read_text())
    config["model"]["encoder"] = {"type": "ghost.v1", "hidden_size": 8}
    (folder / "config.json").write_text(json.dumps(config))
    meta = json.loads((folder / "meta.json").read_text())
    meta["plugins"] = {GHOST_DIST: "1.2.3"}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def orphan(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tagger, needing the plugin distribution GHOST_DIST (not installed)."""
    out = tmp_path_factory.mktemp("orphan") / "model"
    shutil.copytree(tiny, out)
    _orphan_files(out)
    return out


def _load_line(orphan: Path) -> str:
    import seqtag

    with pytest.raises(PluginMissingError) as err:
        seqtag.load(orphan)
    return err.value.one_line()


def test_loading_names_the_missing_distribution_in_one_line(orphan: Path) -> None:
    import seqtag

    with pytest.raises(PluginMissingError) as err:
        seqtag.load(orphan)
    line = err.value.one_line()
    assert "\n" not in str(err.value)
    assert f"needs the plugin distribution '{GHOST_DIST}' (version 1.2.3)" in line
    assert f"pip install {GHOST_DIST}" in line and str(orphan) in line
    # the index may not have it: the line pins the version and names the other way
    assert line == (f"{orphan}: this model needs the plugin distribution '{GHOST_DIST}' (version 1.2.3), which is "
                    f"not installed; install it, e.g. pip install {GHOST_DIST}==1.2.3 or from its source")


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
    assert lines[0] == "error: " + _load_line(orphan)


def _checkpoint(out: Path, orphan: Path, *, recorded: bool) -> None:
    """A checkpoint of a run on the orphan's config: the plugins in trainer.json, or (older) only in meta.json."""
    config = json.loads((orphan / "config.json").read_text())
    labels = json.loads((orphan / "labels.json").read_text())["labels"]
    trainer: dict = {"progress": {"config": config, "labels": labels, "epoch": 0, "step_in_epoch": 3}}
    if recorded:
        trainer["plugins"] = {GHOST_DIST: "1.2.3"}
    else:
        out.mkdir(parents=True)
        shutil.copy(orphan / "meta.json", out / "meta.json")
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "trainer.json").write_text(json.dumps(trainer))
    (out / "checkpoint" / "assets.json").write_text("{}")


@pytest.mark.parametrize("recorded", [True, False], ids=["in-checkpoint", "in-meta"])
def test_resume_prints_the_same_line(orphan: Path, tmp_path: Path, recorded: bool) -> None:
    out = tmp_path / "run"
    _checkpoint(out, orphan, recorded=recorded)
    res = _cli("train", "--resume", str(out), "--no-progress")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == ["error: " + _load_line(orphan).replace(str(orphan), str(out))]


def test_a_checkpoint_records_the_plugins_of_its_config(tmp_path: Path) -> None:
    import random

    import torch

    from seqtag.checkpoint import read_checkpoint, save_checkpoint

    class Ghost(torch.nn.Module):  # registered as if a distribution provided it
        pass

    registry.encoders.register("ghostly.v1", Ghost, distribution=GHOST_DIST, version="1.2.3")
    try:
        net = torch.nn.Linear(2, 2)
        progress = {"config": {"model": {"encoder": {"type": "ghostly.v1"}}}, "labels": ["O"], "epoch": 0,
                    "step_in_epoch": 0}
        save_checkpoint(tmp_path / "checkpoint", net, torch.optim.SGD(net.parameters(), lr=0.1), None, progress,
                        random.Random(0), assets={})
        saved = json.loads((tmp_path / "checkpoint" / "trainer.json").read_text())
        assert saved["plugins"] == {GHOST_DIST: "1.2.3"}
        with pytest.raises(PluginMissingError) as err:
            read_checkpoint(tmp_path)
        assert err.value.one_line().startswith(f"{tmp_path}: this model needs the plugin distribution '{GHOST_DIST}'")
    finally:
        registry.encoders._parts.pop("ghostly.v1", None)


def test_the_spacy_component_raises_the_same_line(tiny: Path, orphan: Path, tmp_path: Path) -> None:
    import spacy

    from seqtag.spacy_package import package_pipeline

    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(orphan)})
    with pytest.raises(PluginMissingError) as err:
        nlp("Peter lives in Paris")
    assert err.value.one_line() == _load_line(orphan)
    pipeline = package_pipeline(tiny, tmp_path / "pipeline")
    _orphan_files(pipeline / "seqtag")
    with pytest.raises(PluginMissingError) as err:
        spacy.load(pipeline)
    assert err.value.one_line() == _load_line(orphan).replace(str(orphan), str(pipeline / "seqtag"))


def _listed(env: dict[str, str] | None = None) -> list[dict[str, str]]:
    res = _cli("plugins", "--json", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_autoload_off_lists_only_the_builtins() -> None:
    rows = _listed({"SEQTAG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert rows and {r["distribution"] for r in rows} == {registry.BUILTIN_DIST}
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
