"""``seqtag spacy-package``: the pipeline's meta.json pins seqtag and the model's plugins, carries its
version and test scores and takes ``--meta`` entries; ``--package-dir`` builds an installable wheel.

(The wheel installed in a fresh virtual environment, with ``spacy.load`` by package name, is
``.ci/wheel-check``.)
"""

from __future__ import annotations

import json
import shutil
import zipfile
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtag.about import DISTRIBUTION, __version__
from seqtag.cli import main
from seqtag.errors import ConfigError
from seqtag.spacy_package import build_package, package_pipeline, performance, requirements

FIXTURES = Path(__file__).parent / "fixtures" / "models"


@pytest.fixture()
def ner(tmp_path: Path) -> Path:
    """The saved NER fixture, with test scores and a 'plugin' (click: a distribution surely installed)."""
    out = tmp_path / "ner"
    shutil.copytree(FIXTURES / "ner-0.1.0", out)
    meta = json.loads((out / "meta.json").read_text())
    meta["plugins"] = {"click": dist_version("click")}
    meta["scores"]["test"] = {"f1": 81.25, "precision": 80.0, "recall": 82.5}
    (out / "meta.json").write_text(json.dumps(meta))  # meta.json is not in its own manifest
    return out


def _meta(pipeline: Path) -> dict:
    return json.loads((pipeline / "meta.json").read_text())


def test_meta_pins_seqtag_and_the_plugins_and_carries_the_test_scores(ner: Path, tmp_path: Path) -> None:
    meta = _meta(package_pipeline(ner, tmp_path / "pipe"))
    assert meta["requirements"] == [f"{DISTRIBUTION}=={__version__}", f"click=={dist_version('click')}"]
    assert meta["performance"] == {"ents_f": 0.8125, "ents_p": 0.8, "ents_r": 0.825}
    assert meta["name"] == "seqtag_ner" and meta["version"] == "0.1.0"


def test_version_name_and_meta_file(ner: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"author": "Ada", "license": "CC-BY-4.0", "requirements": ["click>=1", "tqdm>=4"]}))
    res = CliRunner().invoke(main, ["spacy-package", str(ner), str(tmp_path / "pipe"), "--name", "my_ner",
                                    "--version", "2.0.1", "--meta", str(extra)])
    assert res.exit_code == 0, res.output
    meta = _meta(tmp_path / "pipe")
    assert (meta["name"], meta["version"], meta["author"], meta["license"]) == ("my_ner", "2.0.1", "Ada", "CC-BY-4.0")
    # the pins stay; a requirement on a distribution already pinned is not added twice
    assert meta["requirements"] == [f"{DISTRIBUTION}=={__version__}", f"click=={dist_version('click')}", "tqdm>=4"]


def test_the_model_version_is_the_default(ner: Path, tmp_path: Path) -> None:
    meta = json.loads((ner / "meta.json").read_text())
    meta["version"] = "3.1.4"
    (ner / "meta.json").write_text(json.dumps(meta))
    assert _meta(package_pipeline(ner, tmp_path / "pipe"))["version"] == "3.1.4"


@pytest.mark.parametrize(("args", "message"), [
    (["--version", "one"], "--version 'one': not a package version"),
    (["--name", "my-ner"], "--name 'my-ner': use letters, digits and underscores only"),
    (["--meta", "nosuch.json"], "--meta nosuch.json: no such file"),
    (["--package-dir", "d", "--build", "egg"], "--build 'egg': use sdist, wheel or sdist,wheel"),
])
def test_bad_options_are_one_line(ner: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["spacy-package", str(ner), str(tmp_path / "pipe"), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) <= 2  # the pipeline line (--build), then the error


def test_pos_scores_and_requirements_without_plugins() -> None:
    meta = {"plugins": {}, "scores": {"dev": {"accuracy": 90.0}}}
    assert requirements(meta) == [f"{DISTRIBUTION}=={__version__}"]
    assert performance(meta, "pos", sets_pos=True) == {"tag_acc": 0.9, "pos_acc": 0.9}
    assert performance(meta, "pos", sets_pos=False) == {"tag_acc": 0.9}
    assert performance({"plugins": {"x": ""}}, "ner", False) == {} and requirements({"plugins": {"x": ""}})[-1] == "x"


def test_the_wheel_requires_the_pins(ner: Path, tmp_path: Path) -> None:
    pipe = package_pipeline(ner, tmp_path / "pipe", version="1.0.0")
    (wheel,) = build_package(pipe, tmp_path / "dist", ["wheel"])
    assert wheel.name == "en_seqtag_ner-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read("en_seqtag_ner-1.0.0.dist-info/METADATA").decode()
        assert any(n.endswith("seqtag/model.safetensors") for n in zf.namelist())
    assert f"Requires-Dist: {DISTRIBUTION}=={__version__}" in metadata
    assert f"Requires-Dist: click=={dist_version('click')}" in metadata


def test_a_bad_build_format_is_refused_before_building(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use sdist, wheel"):
        build_package(tmp_path, tmp_path / "dist", ["zip"])
