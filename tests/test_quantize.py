"""Reduced-precision inference (seqtag.quantize, ``seqtag predict --int8`` and ``--bf16``): the int8 and bf16
recurrences over padded batches, agreement with float32 on the sample corpus, the CLI flags, and the one-line
refusals. No timing is asserted (benchmarks/bench_int8.py measures the speed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic

from seqtag.cli import main
from seqtag.encoders.padded_rnn import padded_rnn
from seqtag.errors import DeviceError, SeqtagError
from seqtag.quantize import (
    Bf16Tagger,
    Int8Tagger,
    QuantizeError,
    cpu_summary,
    load_bf16,
    load_int8,
    native_bf16,
    quantize,
    quantize_model,
)

from .conftest import SAMPLES


def _sample_test_sentences() -> list[list[str]]:
    from seqtag.data import load_corpus

    return [words for words, _ in load_corpus(str(SAMPLES / "sample_ner"), "ner").sentences("test", "IOB2")]


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_quantized_padded_rnn_equals_each_sentence_alone(kind: type[nn.RNNBase]) -> None:
    """Each layer and direction of the int8 recurrence runs over padded, reversed input; at real positions the
    result is the quantized module's own over each sentence alone (2 layers, both directions), up to the
    activations' quantization, whose range is each step's whole batch (a wrong weight or direction is off by
    far more)."""
    torch.manual_seed(0)
    rnn = kind(6, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    holder = nn.Module()
    holder.rnn = rnn
    rnn.qconfig = torch.ao.quantization.default_dynamic_qconfig  # type: ignore[assignment]
    q = (qdynamic.LSTM if kind is nn.LSTM else qdynamic.GRU).from_float(rnn)
    lengths = torch.tensor([7, 3, 5, 1])
    x = torch.randn(4, 7, 6)
    with torch.inference_mode():
        out = padded_rnn(q, x, lengths)  # shape: (4, 7, 10)
        for i, n in enumerate(lengths.tolist()):
            alone, _ = q(x[i: i + 1, :n])
            torch.testing.assert_close(out[i, :n], alone[0], atol=0.03, rtol=0.0)
            assert bool((out[i, n:] == 0).all())


def test_int8_tagger_agrees_with_float32_on_the_sample_corpus(ner_model: Path) -> None:
    import seqtag

    fp32 = seqtag.load(ner_model)
    int8 = load_int8(ner_model)
    assert isinstance(int8, Int8Tagger)
    assert isinstance(int8.model.encoder.rnn, qdynamic.LSTM)  # really quantized: the recurrence
    assert isinstance(int8.model.head.proj, qdynamic.Linear)  # and the emission layer
    sents = _sample_test_sentences()
    want = fp32.predict(sents, batch_size=16)
    got = int8.predict(sents, batch_size=16)
    pairs = [(a, b) for w, g in zip(want, got) for a, b in zip(w.tags, g.tags)]
    assert len(pairs) == sum(len(s) for s in sents) > 200
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    assert agreement >= 0.95, agreement
    # confidences come from the same CRF marginals: close to float32's on average
    diff = [abs(a - b) for w, g in zip(want, got) for a, b in zip(w.scores, g.scores)]
    assert sum(diff) / len(diff) < 0.05
    # quantize() leaves the tagger it was given as it was
    again = quantize(fp32)
    assert isinstance(fp32.model.encoder.rnn, nn.LSTM) and isinstance(again.model.encoder.rnn, qdynamic.LSTM)
    assert [p.tags for p in again.predict(sents[:20])] == [p.tags for p in got[:20]]


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16's numerics are checked on any CPU: one without native bfloat16 emulates it (slower, same results)."""
    monkeypatch.setattr("seqtag.quantize.native_bf16", lambda: True)


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_reduced_tagger_is_not_saved_and_stays_on_the_cpu(ner_model: Path, tmp_path: Path, bf16_cpu: None,
                                                          precision: str) -> None:
    tagger = (load_int8 if precision == "int8" else load_bf16)(ner_model)
    with pytest.raises(QuantizeError, match=f"tagger in {precision} is not saved"):
        tagger.save(tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert tagger.to("cpu") is tagger
    with pytest.raises(DeviceError):
        tagger.to("cuda")
    with pytest.raises(DeviceError):
        (load_int8 if precision == "int8" else load_bf16)(ner_model, device="cuda")


@pytest.mark.parametrize("flag", ["--int8", "--bf16"])
def test_predict_precision_flags(ner_model: Path, tmp_path: Path, bf16_cpu: None, flag: str) -> None:
    text = tmp_path / "in.txt"
    sents = _sample_test_sentences()[:12]
    text.write_text("\n".join(" ".join(s) for s in sents) + "\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["predict", str(ner_model), str(text), flag, "--threads", "1",
                                    "--input-format", "text", "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    want = (load_int8 if flag == "--int8" else load_bf16)(ner_model).predict([" ".join(s) for s in sents])
    assert [r["tags"] for r in rows] == [p.tags for p in want]
    res = CliRunner().invoke(main, ["predict", str(ner_model), str(text), flag, "--device", "cuda"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error:") and len(res.stderr.strip().splitlines()) == 1


def _elman_model(ner_model: Path, out: Path) -> Path:
    """The sample NER model's config with an Elman RNN encoder, untrained, saved to ``out``."""
    from seqtag.model import TaggerModel
    from seqtag.tagger import Tagger

    config = json.loads((ner_model / "config.json").read_text(encoding="utf-8"))
    labels = json.loads((ner_model / "labels.json").read_text(encoding="utf-8"))
    labels = labels["labels"] if isinstance(labels, dict) else labels
    config["model"]["encoder"] = {"type": "rnn.v1", "hidden_size": 8}
    model = TaggerModel(config["model"], labels, config["scheme"], sentences=_sample_test_sentences())
    Tagger(config, labels, model).save(out)
    return out


def test_a_model_int8_cannot_run_is_one_line(ner_model: Path, tmp_path: Path) -> None:
    elman = _elman_model(ner_model, tmp_path / "elman")
    with pytest.raises(QuantizeError, match="rnn.v1"):
        load_int8(elman)
    text = tmp_path / "in.txt"
    text.write_text("EU rejects German call\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["predict", str(elman), str(text), "--int8"])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "rnn.v1" in lines[0], res.stderr
    # without --int8 the same model predicts
    assert CliRunner().invoke(main, ["predict", str(elman), str(text)]).exit_code == 0


def test_a_model_without_a_recurrence_is_refused(ner_model: Path) -> None:
    import seqtag

    model = seqtag.load(ner_model).model
    model.encoder = nn.Identity()  # type: ignore[assignment]  # what a plugin's non-recurrent encoder gives
    with pytest.raises(QuantizeError, match="no LSTM or GRU") as info:
        quantize_model(model)
    assert isinstance(info.value, SeqtagError) and "\n" not in str(info.value)


def test_bf16_padded_rnn_is_float32_outside_and_close_to_it() -> None:
    """A recurrence cast to bfloat16 runs each direction in bfloat16 on the padded, reversed batch and hands
    float32 back; at real positions it is float32's result to bfloat16's precision, and padding stays zero."""
    torch.manual_seed(0)
    rnn = nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    lengths = torch.tensor([7, 3, 5, 1])
    x = torch.randn(4, 7, 6)
    with torch.inference_mode():
        want = padded_rnn(rnn, x, lengths)
        rnn.to(torch.bfloat16)
        got = padded_rnn(rnn, x, lengths)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=0.03, rtol=0.0)
    assert float((got - want).abs().max()) > 0  # really computed in bfloat16
    for i, n in enumerate(lengths.tolist()):
        assert bool((got[i, n:] == 0).all())


def test_bf16_tagger_agrees_with_float32_on_the_sample_corpus(ner_model: Path, bf16_cpu: None) -> None:
    import seqtag

    fp32 = seqtag.load(ner_model)
    bf16 = load_bf16(ner_model)
    assert isinstance(bf16, Bf16Tagger) and bf16.precision == "bf16"
    assert bf16.model.encoder.rnn.weight_hh_l0.dtype == torch.bfloat16  # the recurrence is bfloat16
    assert bf16.model.head.proj.weight.dtype == torch.float32  # the emission layer is not
    sents = _sample_test_sentences()
    want = fp32.predict(sents, batch_size=16)
    got = bf16.predict(sents, batch_size=16)
    pairs = [(a, b) for w, g in zip(want, got) for a, b in zip(w.tags, g.tags)]
    assert len(pairs) == sum(len(s) for s in sents) > 200
    assert sum(a == b for a, b in pairs) / len(pairs) >= 0.98
    diff = [abs(a - b) for w, g in zip(want, got) for a, b in zip(w.scores, g.scores)]
    assert sum(diff) / len(diff) < 0.02
    # one sentence alone: the recurrence is called as a module (no padding), float32 in and out
    alone = bf16.predict([sents[0]])[0]
    assert alone.tags == got[0].tags


def test_bf16_needs_a_cpu_with_native_bfloat16(ner_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert not native_bf16()
    with pytest.raises(QuantizeError, match="no native bfloat16") as info:
        load_bf16(ner_model)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert native_bf16()


def test_cpu_summary_names_the_cpu_and_follows_its_features(monkeypatch: pytest.MonkeyPatch) -> None:
    summary = cpu_summary()
    assert isinstance(summary["model"], str) and summary["model"].strip()
    for name, fn in (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported"),
                     ("vnni", "_is_vnni_supported")):
        for value in (True, False):
            monkeypatch.setattr(torch.cpu, fn, lambda value=value: value, raising=False)
            assert cpu_summary()[name] is value


def test_int8_and_bf16_together_is_one_line(ner_model: Path, tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("EU rejects German call\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["predict", str(ner_model), str(text), "--bf16", "--int8"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error:") and "choose one" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_evaluate_scores_the_precision_asked_for(ner_model: Path, bf16_cpu: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``evaluate --int8`` / ``--bf16`` score the tagger ``load_precision`` gives, as ``evaluate_tagger`` does."""
    import seqtag.quantize
    from seqtag.quantize import load_precision
    from seqtag.workflow import evaluate_tagger

    loaded: list[str] = []

    def spy(path: Any, precision: str = "fp32", **kwargs: Any) -> Any:
        loaded.append(precision)
        return load_precision(path, precision, **kwargs)

    monkeypatch.setattr(seqtag.quantize, "load_precision", spy)
    sample = str(SAMPLES / "sample_ner")
    for flag, precision in (("--int8", "int8"), ("--bf16", "bf16"), (None, "fp32")):
        args = ["evaluate", str(ner_model), "--dataset", sample, "--json", "--threads", "1", "--no-progress"]
        res = CliRunner().invoke(main, args + ([flag] if flag else []))
        assert res.exit_code == 0, res.output
        assert loaded[-1] == precision
        got = json.loads(res.stdout.strip().splitlines()[-1])
        tagger = load_precision(ner_model, precision)
        assert getattr(tagger, "precision", "fp32") == precision
        want = evaluate_tagger(tagger, sample, "test")
        assert (got["f1"], got["precision"], got["recall"]) == (want["f1"], want["precision"], want["recall"])
    with pytest.raises(QuantizeError, match="unknown precision 'fp8'"):
        load_precision(ner_model, "fp8")
    # seqtag.load is the same loader
    import seqtag

    assert isinstance(seqtag.load(ner_model, precision="bf16"), Bf16Tagger)
    assert isinstance(seqtag.load(ner_model, precision="int8"), Int8Tagger)
    assert type(seqtag.load(ner_model)).__name__ == "Tagger"


# -- the spaCy component's precision ----------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_spacy_component_precision(ner_model: Path, tmp_path: Path, bf16_cpu: None, precision: str) -> None:
    import spacy
    from spacy.tokens import Doc

    import seqtag
    from seqtag.quantize import load_precision

    sents = _sample_test_sentences()
    nlp = spacy.blank("en")
    comp = nlp.add_pipe("seqtag", config={"model": str(ner_model), "precision": precision})
    docs = list(nlp.pipe(Doc(nlp.vocab, words=w) for w in sents))
    got = [[(e.start, e.end, e.label_, e._.seqtag_score) for e in d.ents] for d in docs]
    want = [[(e.start, e.end, e.label, e.score) for e in p.entities] for p in load_precision(ner_model, precision)
            .predict(sents)]
    assert got == want and any(got)  # the same reduced network as seqtag predict --int8/--bf16
    assert comp.runner.precision == precision and type(comp.tagger).__name__ == "Tagger"
    # the component keeps the float32 tagger; the copy shares every parameter outside the recurrences
    assert all(p.dtype == torch.float32 for p in comp.tagger.model.parameters())
    assert type(comp.tagger.model.encoder.rnn) is nn.LSTM
    assert comp.runner.model.embedding is not comp.tagger.model.embedding
    assert {id(p) for p in comp.runner.model.embedding.parameters()} == \
        {id(p) for p in comp.tagger.model.embedding.parameters()}
    # saved: the float32 tagger, and the setting in the pipeline's config
    nlp.to_disk(tmp_path / "pipe")
    assert all(p.dtype == torch.float32 for p in seqtag.load(tmp_path / "pipe" / "seqtag").model.parameters())
    assert f'precision = "{precision}"' in (tmp_path / "pipe" / "config.cfg").read_text()
    again = spacy.load(tmp_path / "pipe")
    assert [[(e.start, e.end, e.label_) for e in again(Doc(again.vocab, words=w)).ents] for w in sents] == \
        [[e[:3] for e in d] for d in got]
    assert again.get_pipe("seqtag").runner.precision == precision


def test_spacy_component_precision_errors(ner_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy

    with pytest.raises(QuantizeError, match="seqtag component 'seqtag': unknown precision 'fp8'"):
        spacy.blank("en").add_pipe("seqtag", config={"model": str(ner_model), "precision": "fp8"})
    monkeypatch.setattr("seqtag.quantize.native_bf16", lambda: False)
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(ner_model), "precision": "bf16"})
    with pytest.raises(QuantizeError, match="seqtag component 'seqtag': this CPU has no native bfloat16") as info:
        nlp("Maria flew to Paris .")
    assert "\n" not in str(info.value)
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(ner_model), "precision": "int8", "device": "cuda"})
    with pytest.raises(DeviceError, match="seqtag component 'seqtag'"):  # no CUDA here, or int8 is CPU-only
        nlp("Maria flew to Paris .")
