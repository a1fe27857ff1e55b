"""Calibrated confidences: the ECE, the head's temperature (tags unchanged), fitting it on dev at the end of
training and with ``seqtag calibrate``, saved in the config and applied alike by PyTorch, ONNX and spaCy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seqtag.calibration import (
    calibration_report,
    confidence_units,
    expected_calibration_error,
    fit_temperature,
    takes_temperature,
)
from seqtag.cli import main
from seqtag.data import load_corpus
from seqtag.errors import ConfigError
from seqtag.heads import CRFHead, SoftmaxHead
from seqtag.inference import Entity, Prediction
from seqtag.tagger import Tagger

from .conftest import SAMPLES, train_small

NER_FIXTURE = Path(__file__).parent / "fixtures" / "models" / "ner-0.1.0"


def _gold(task: str, split: str) -> list[tuple[list[str], list[str]]]:
    corpus = load_corpus(str(SAMPLES / f"sample_{task}"), task)
    return corpus.sentences(split, "IOB2" if task == "ner" else None)


def test_ece_by_hand() -> None:
    # bin 0.9-1.0: confidences 0.95, 0.95 and one right -> |0.5 - 0.95| * 2; bin 0.2-0.3: 0.25 right -> 0.75
    conf, right = [0.95, 0.95, 0.25], [True, False, True]
    assert expected_calibration_error(conf, right) == pytest.approx((2 * 0.45 + 0.75) / 3)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == pytest.approx(0.0)  # the edges fall in bins
    assert expected_calibration_error([], []) == 0.0


def test_units_are_spans_for_ner_and_tokens_for_pos() -> None:
    ents = [Entity("PER", 0, 2, 0, 5, "a b", 0.9), Entity("LOC", 3, 4, 6, 7, "c", 0.6)]
    pred = Prediction(["a", "b", "x", "c"], ["B-PER", "I-PER", "O", "B-LOC"], [0.9, 0.9, 1.0, 0.6], ents)
    assert confidence_units("ner", [pred], [["B-PER", "I-PER", "O", "B-ORG"]]) == ([0.9, 0.6], [True, False])
    report = calibration_report("ner", [pred], [["B-PER", "I-PER", "O", "B-ORG"]])
    assert report["unit"] == "span" and report["count"] == 2 and report["accuracy"] == 0.5
    assert report["ece"] == pytest.approx((0.1 + 0.6) / 2, abs=1e-4)
    assert [b["count"] for b in report["bins"]] == [1, 1]
    pos = Prediction(["a", "b"], ["NOUN", "VERB"], [0.8, 0.7])
    assert confidence_units("pos", [pos], [["NOUN", "NOUN"]]) == ([0.8, 0.7], [True, False])


@pytest.mark.parametrize("head_cls", [CRFHead, SoftmaxHead])
def test_the_temperature_changes_confidences_never_tags(head_cls: type) -> None:
    torch.manual_seed(0)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    head = head_cls(6, labels, "IOB2")
    x = torch.randn(3, 7, 6) * 3
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    tags1, conf1 = head.decode(x, mask)
    head.temperature = 3.0
    tags3, conf3 = head.decode(x, mask)
    head.temperature = 0.5
    tags05, conf05 = head.decode(x, mask)
    assert torch.equal(tags1, tags3) and torch.equal(tags1, tags05)
    real = mask
    assert conf3[real].mean() < conf1[real].mean() < conf05[real].mean()  # a higher temperature: less sure
    assert torch.all(conf3[~mask] == 0)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "2", True])
def test_a_bad_temperature_is_one_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="model.head.temperature must be a positive number"):
        CRFHead(4, ["O", "B-X", "I-X"], temperature=bad)  # type: ignore[arg-type]


def test_fitting_on_dev_lowers_the_ece_and_keeps_the_tags(tmp_path: Path) -> None:
    tagger = Tagger.load(NER_FIXTURE)  # trained briefly: its confidences are far from calibrated
    dev, test = _gold("ner", "dev"), _gold("ner", "test")
    words = [w for w, _ in test]
    before = tagger.predict(words)
    fitted = fit_temperature(tagger, dev)
    assert fitted.temperature != 1.0 and takes_temperature(tagger.model.head)
    assert fitted.ece_after < fitted.ece_before
    assert tagger.config["model"]["head"]["temperature"] == pytest.approx(fitted.temperature)
    after = tagger.predict(words)
    assert [p.tags for p in after] == [p.tags for p in before]
    assert [p.scores for p in after] != [p.scores for p in before]
    gold = [g for _, g in test]
    assert calibration_report("ner", after, gold)["ece"] < calibration_report("ner", before, gold)["ece"]
    # fitting again finds the same temperature: it is absolute, not relative to the one set
    assert fit_temperature(tagger, dev).temperature == pytest.approx(fitted.temperature, rel=1e-3)


def test_no_predicted_span_leaves_the_temperature_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that predicts no span on dev (one that has learnt little) has nothing to fit on: the
    temperature and the config stay, and the log says so (a grid search over a flat loss would pick any)."""
    import seqtag.calibration as calibration

    tagger = Tagger.load(NER_FIXTURE)
    before = float(tagger.model.head.temperature)
    config_before = json.dumps(tagger.config, sort_keys=True)
    monkeypatch.setattr(calibration, "confidence_units", lambda task, preds, gold: ([], []))
    said: list[str] = []
    fitted = fit_temperature(tagger, _gold("ner", "dev"), progress=said.append)
    assert fitted.temperature == before and fitted.count == 0
    assert float(tagger.model.head.temperature) == before
    assert json.dumps(tagger.config, sort_keys=True) == config_before
    assert said == [f"not calibrated: no span predicted on dev; the temperature stays {before:g}"]


def test_training_calibrates_at_its_end_unless_told_not_to(tmp_path: Path) -> None:
    tagger, _ = train_small("pos", tmp_path / "on")
    meta = json.loads((tmp_path / "on" / "meta.json").read_text())
    config = json.loads((tmp_path / "on" / "config.json").read_text())
    figures = meta["scores"]["calibration"]
    assert figures["unit"] == "token" and figures["units"] > 0
    assert config["model"]["head"]["temperature"] == pytest.approx(figures["temperature"], abs=1e-4)
    assert Tagger.load(tmp_path / "on").model.head.temperature == pytest.approx(figures["temperature"], abs=1e-4)
    train_small("pos", tmp_path / "off", {"training": {"calibrate": False}})
    assert "calibration" not in json.loads((tmp_path / "off" / "meta.json").read_text())["scores"]
    assert Tagger.load(tmp_path / "off").model.head.temperature == 1.0


def test_calibrate_command_and_evaluate_report(tmp_path: Path) -> None:
    model = tmp_path / "ner"
    shutil.copytree(NER_FIXTURE, model)
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(model), "--dataset", str(SAMPLES / "sample_ner"), "--json"])
    assert res.exit_code == 0, res.output
    ece_before = json.loads(res.stdout)["calibration"]["ece"]
    res = runner.invoke(main, ["calibrate", str(model), "--dataset", str(SAMPLES / "sample_ner"), "--json"])
    assert res.exit_code == 0, res.output
    figures = json.loads(res.stdout)
    assert figures["dev_ece_after"] < figures["dev_ece_before"]
    assert json.loads((model / "meta.json").read_text())["scores"]["calibration"] == figures
    res = runner.invoke(main, ["evaluate", str(model), "--dataset", str(SAMPLES / "sample_ner")])
    assert res.exit_code == 0, res.output
    line = next(t for t in res.stdout.splitlines() if t.startswith("confidence: ECE"))
    assert float(line.split()[2]) < ece_before
    res = runner.invoke(main, ["calibrate", str(model), "--dataset", str(SAMPLES / "sample_ner"), "--split", "nope"])
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def _calibrated(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    model = tmp_path / "ner"
    shutil.copytree(NER_FIXTURE, model)
    tagger = Tagger.load(model)
    fit_temperature(tagger, _gold("ner", "dev"))
    tagger.save(model, scores=tagger.scores)
    return model, [w for w, _ in _gold("ner", "test")]


def test_onnx_applies_the_same_temperature(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from seqtag.export import OnnxTagger, export_onnx

    model, words = _calibrated(tmp_path)
    want = Tagger.load(model).predict(words, batch_size=7)
    assert any(s != pytest.approx(u) for p, q in zip(want, Tagger.load(NER_FIXTURE).predict(words, batch_size=7))
               for s, u in zip(p.scores, q.scores))
    got = OnnxTagger(model, export_onnx(model, tmp_path / "ner.onnx"), threads=1).predict(words, batch_size=7)
    assert [p.tags for p in got] == [p.tags for p in want]
    for g, w in zip(got, want):
        assert g.scores == pytest.approx(w.scores, abs=1e-5)


def test_spacy_applies_the_same_temperature(tmp_path: Path) -> None:
    import spacy
    from spacy.tokens import Doc

    model, words = _calibrated(tmp_path)
    want = [e.score for p in Tagger.load(model).predict(words) for e in p.entities]
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(model)})
    docs = list(nlp.pipe([Doc(nlp.vocab, words=w) for w in words]))
    got = [span._.seqtag_score for doc in docs for span in doc.ents]
    assert got == pytest.approx(want, abs=1e-5) and want
