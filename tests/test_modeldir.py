"""The model folder read and written once (seqtag.modeldir): the reader's order of checks and a round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from seqtag.errors import ModelLoadError
from seqtag.modeldir import SavedModel, read_model_dir, write_model_dir


def test_write_then_read_gives_the_same_model(ner_model: Path, tmp_path: Path) -> None:
    saved = read_model_dir(ner_model)
    assert saved.state is not None and saved.task == "ner" and saved.labels
    meta = write_model_dir(tmp_path / "copy", saved, scores={"f1": 1.0})
    again = read_model_dir(tmp_path / "copy")
    assert (again.config, again.labels, again.scheme, again.assets) == (saved.config, saved.labels, saved.scheme,
                                                                         saved.assets)
    assert again.meta == meta and meta["scores"] == {"f1": 1.0} and "labels.json" in meta["files"]
    assert again.state is not None and again.state.keys() == saved.state.keys()
    assert all(torch.equal(again.state[k], saved.state[k]) for k in saved.state)
    assert read_model_dir(tmp_path / "copy", weights=False).state is None


def test_the_manifest_is_checked_after_reading_and_before_interpreting(ner_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(ner_model, model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config["task"] = "chunking"  # an edit after saving: the manifest names it before the task is read
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="changed since the model was saved"):
        read_model_dir(model, weights=False)
    with pytest.raises(ModelLoadError, match="unknown task 'chunking'"):
        read_model_dir(model, verify=False, weights=False)


def test_a_newer_format_is_refused_before_any_other_file_is_read(ner_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(ner_model, model)
    meta = json.loads((model / "meta.json").read_text(encoding="utf-8"))
    (model / "meta.json").write_text(json.dumps({**meta, "format_version": 99}), encoding="utf-8")
    (model / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="format version 99 is newer"):
        read_model_dir(model)


def test_writing_needs_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights"):
        write_model_dir(tmp_path / "m", SavedModel({"model": {}}, ["O"], "IOB2"))
