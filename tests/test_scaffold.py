"""``seqtag new-plugin``: the template installs, registers its part, passes its own contract test and trains."""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtag.cli import main
from seqtag.errors import ConfigError
from seqtag.registry import BUILTIN_DIST
from seqtag.scaffold import KINDS, new_plugin, plugin_names


def _run(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SEQTAG_DISABLE_PLUGIN_AUTOLOAD"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def test_names_are_derived_from_one_name() -> None:
    n = plugin_names("my-window")
    assert (n.stem, n.part, n.distribution, n.package, n.cls, n.group) == (
        "my_window", "my_window.v1", "seqtag-my-window", "seqtag_my_window", "MyWindowEncoder", "seqtag.encoders")
    assert plugin_names("seqtag-hashed.v3", "embedding").part == "hashed.v1"
    assert plugin_names("fancy_encoder").cls == "FancyEncoder"
    with pytest.raises(ConfigError, match="not a usable name"):
        plugin_names("My Plugin")
    with pytest.raises(ConfigError, match="unknown kind 'decoder'"):
        plugin_names("x", "decoder")


def test_every_kind_writes_a_complete_package(tmp_path: Path) -> None:
    for kind in KINDS:
        root = new_plugin(f"demo-{kind}", kind, tmp_path)
        n = plugin_names(f"demo-{kind}", kind)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        assert files == sorted(["README.md", "pyproject.toml", f"{n.package}/__init__.py", f"tests/test_{n.stem}.py"])
        for py in root.rglob("*.py"):
            py_compile.compile(str(py), doraise=True)
        assert f'[project.entry-points."seqtag.{kind}s"]\n"{n.part}" = "{n.package}:{n.cls}"' in \
            (root / "pyproject.toml").read_text()
        assert f"model.{kind}.type={n.part}" in (root / "README.md").read_text()


def test_refuses_taken_names_and_full_folders(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["new-plugin", "lstm", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and f"'lstm.v1' is already registered by {BUILTIN_DIST}" in res.output
    assert runner.invoke(main, ["new-plugin", "fresh", "--dir", str(tmp_path)]).exit_code == 0
    res = runner.invoke(main, ["new-plugin", "fresh", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "already exists and is not empty" in res.output


@pytest.mark.plugins
def test_scaffolded_plugin_installs_passes_its_test_and_trains_by_name(tmp_path: Path) -> None:
    from seqtag.errors import PluginMissingError
    from seqtag.tagger import Tagger
    from seqtag.testing import write_tiny_corpus

    name = f"scaffoldtest-{uuid.uuid4().hex[:8]}"
    n = plugin_names(name)
    res = CliRunner().invoke(main, ["new-plugin", name, "--kind", "encoder", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    root = tmp_path / n.distribution
    assert f"seqtag train --set model.encoder.type={n.part}" in res.output
    model = tmp_path / "model"
    pip = _run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(root))
    assert pip.returncode == 0, pip.stderr
    try:
        listed = _run("-m", "seqtag.cli", "plugins", "--json")
        assert listed.returncode == 0, listed.stderr
        assert {"kind": "encoder", "name": n.part, "distribution": n.distribution} in [
            {k: r[k] for k in ("kind", "name", "distribution")} for r in json.loads(listed.stdout)]
        corpus = write_tiny_corpus(tmp_path / "corpus")
        train = _run("-m", "seqtag.cli", "train", "--task", "ner", "--dataset", str(corpus),
                     "--set", "model.tokenizer.type=whitespace.v1", "--set", f"model.encoder.type={n.part}",
                     "--set", "model.encoder.hidden_size=16", "--set", "training.max_steps=2", "--max-epochs", "1",
                     "-o", str(model), "--no-progress")
        assert train.returncode == 0, train.stderr
        meta = json.loads((model / "meta.json").read_text())
        assert meta["plugins"] == {n.distribution: "0.1.0"}
        own = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests"), cwd=root)
        assert own.returncode == 0, own.stdout[-2000:] + own.stderr[-2000:]
    finally:
        _run("-m", "pip", "uninstall", "--yes", "--quiet", n.distribution)
    with pytest.raises(PluginMissingError, match=n.distribution):
        Tagger.load(model)
