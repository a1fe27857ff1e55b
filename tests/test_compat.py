"""Models saved by seqtag 0.1.0 before the file manifest (tests/fixtures/models, written by the landed
main of that release from the sample corpora) load and predict exactly as they did then."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import seqtag

FIXTURES = Path(__file__).parent / "fixtures" / "models"


@pytest.mark.parametrize("name", ["ner-0.1.0", "pos-0.1.0"])
def test_a_model_saved_by_0_1_0_loads_and_predicts_the_same(name: str, tmp_path: Path) -> None:
    model = tmp_path / name
    shutil.copytree(FIXTURES / name, model)  # loading may finish an interrupted save: never in the repository
    assert "files" not in json.loads((model / "meta.json").read_text())  # saved before the manifest
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    preds = seqtag.load(model).predict(expected["tokens"])
    assert [p.tags for p in preds] == expected["tags"]
    assert [[[e.label, e.start, e.end] for e in p.entities] for p in preds] == expected["entities"]
    for got, want in zip((p.scores for p in preds), expected["scores"]):
        assert got == pytest.approx(want, abs=1e-5)
    assert sorted(p.name for p in model.iterdir()) == ["assets", "config.json", "labels.json", "meta.json",
                                                       "model.safetensors"]  # loading wrote nothing
