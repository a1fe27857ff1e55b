"""ONNX export: the exported graph (run by onnxruntime) tags exactly as the PyTorch model does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from seqtag.cli import main  # noqa: E402
from seqtag.data import load_corpus  # noqa: E402
from seqtag.encoders import Encoder  # noqa: E402
from seqtag.errors import ModelLoadError, SeqtagError  # noqa: E402
from seqtag.export import ExportError, OnnxTagger, check_exportable, export_onnx, flatten_features  # noqa: E402
from seqtag.model import TaggerModel, make_batch  # noqa: E402
from seqtag.tagger import Tagger  # noqa: E402
from seqtag.trainer import build_config  # noqa: E402

from .conftest import SAMPLES, train_small  # noqa: E402


def _test_sentences(task: str) -> list[list[str]]:
    corpus = load_corpus(str(SAMPLES / f"sample_{task}"), task)
    return [words for words, _ in corpus.sentences("test", "IOB2" if task == "ner" else None)]


def _assert_same(model_dir: Path, onnx_path: Path, sents: list[list[str]], confidence: bool = True) -> None:
    """Every test sentence, in batches of mixed lengths, gets PyTorch's tags (and confidences) from onnxruntime."""
    want = Tagger.load(model_dir).predict(sents, batch_size=7)
    got = OnnxTagger(model_dir, onnx_path, threads=1).predict(sents, batch_size=7)
    assert [p.tags for p in got] == [p.tags for p in want]
    assert [[e.label for e in p.entities] for p in got] == [[e.label for e in p.entities] for p in want]
    for g, w in zip(got, want):
        if confidence:
            assert g.scores == pytest.approx(w.scores, abs=1e-5)
        else:
            assert all(s == 1.0 for s in g.scores)


def test_crf_ner_export_matches_pytorch(ner_model: Path, tmp_path: Path) -> None:
    sents = _test_sentences("ner")
    assert len({len(s) for s in sents}) > 5
    out = export_onnx(ner_model, tmp_path / "ner.onnx")
    _assert_same(ner_model, out, sents)


def test_crf_pos_export_matches_pytorch(pos_model: Path, tmp_path: Path) -> None:
    out = export_onnx(pos_model, tmp_path / "pos.onnx")  # the POS default: a CRF over unconstrained tags
    _assert_same(pos_model, out, _test_sentences("pos"))


def test_softmax_pos_export_matches_pytorch(tmp_path: Path) -> None:
    train_small("pos", tmp_path / "softmax", {"model": {"head": {"type": "softmax.v1"}},
                                              "training": {"max_epochs": 4}})
    assert '"softmax.v1"' in (tmp_path / "softmax" / "config.json").read_text()
    out = export_onnx(tmp_path / "softmax", tmp_path / "pos.onnx")
    _assert_same(tmp_path / "softmax", out, _test_sentences("pos"))


def test_gru_char_lstm_variant_matches(tmp_path: Path) -> None:
    overrides = {"model": {"embedding": {"type": "concat.v1", "parts": [
        {"type": "word.v1", "dim": 12, "casing_dim": 3}, {"type": "char_lstm.v1", "char_dim": 6, "hidden_size": 5}]},
        "encoder": {"type": "gru.v1", "hidden_size": 10, "num_layers": 2}}, "training": {"max_epochs": 2}}
    train_small("ner", tmp_path / "gru", overrides)
    sents = _test_sentences("ner")
    _assert_same(tmp_path / "gru", export_onnx(tmp_path / "gru", tmp_path / "gru.onnx"), sents)
    fast = export_onnx(tmp_path / "gru", tmp_path / "gru-noconf.onnx", confidence=False)
    _assert_same(tmp_path / "gru", fast, sents[:9], confidence=False)


@pytest.mark.parametrize("embedding,encoder,head", [
    ({"type": "char_cnn.v1", "char_dim": 5, "filters": 7, "kernel_size": 5},
     {"type": "rnn.v1", "hidden_size": 6, "num_layers": 2, "bidirectional": False, "nonlinearity": "relu"}, "crf.v1"),
    ({"type": "word.v1", "dim": 8, "casing_dim": 0},
     {"type": "stack.v1", "residual": True, "layers": [{"type": "lstm.v1", "hidden_size": 5},
                                                         {"type": "rnn.v1", "hidden_size": 4}]}, "softmax.v1"),
])
def test_untrained_variants_match(tmp_path: Path, embedding: dict, encoder: dict, head: str) -> None:
    """Random (large) weights make any difference between the graph and PyTorch show in the tags."""
    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    cfg = build_config("ner", {"model": {"tokenizer": {"type": "whitespace.v1"}, "embedding": embedding,
                                         "encoder": encoder, "head": {"type": head}}})
    train = corpus.sentences("train", cfg["scheme"])
    labels = sorted({t for _, tags in train for t in tags})
    torch.manual_seed(0)
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=[w for w, _ in train])
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    Tagger(cfg, labels, model).save(tmp_path / "m")
    _assert_same(tmp_path / "m", export_onnx(tmp_path / "m"), _test_sentences("ner"))


def test_raw_onnxruntime_dynamic_axes(ner_model: Path, tmp_path: Path) -> None:
    """Batch and sequence sizes other than the tracing example's (including 1) run in plain onnxruntime."""
    out = export_onnx(ner_model, tmp_path / "ner.onnx", verify=False)
    tagger = Tagger.load(ner_model)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    sents = _test_sentences("ner")
    for batch in ([sents[0][:1]], sents[:5], sorted(sents, key=len)[-2:]):
        b = make_batch(tagger.model, batch)
        feeds = {name: t.numpy() for name, t in flatten_features(b.features)}
        feeds["mask"] = b.mask.numpy()
        tags, scores = sess.run(["tags", "scores"], feeds)
        with torch.inference_mode():
            want, conf = tagger.model.decode(b)
        assert tags.tolist() == want.tolist()
        assert scores == pytest.approx(conf.numpy(), abs=1e-5)


def test_cli_export_and_stale_weights(pos_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "pos"
    shutil.copytree(pos_model, model)
    result = CliRunner().invoke(main, ["export", str(model), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert (model / "model.onnx").is_file()
    assert OnnxTagger(model).predict([["The", "cat", "sat", "."]])[0].tags
    tagger = Tagger.load(model)
    with torch.no_grad():
        tagger.model.head.proj.bias.add_(1.0)
    tagger.save(model)
    with pytest.raises(ModelLoadError, match="re-export"):
        OnnxTagger(model)


class _PassThrough(Encoder):
    """A plugin-style encoder with no export code: the base class's hook exports its forward as it is."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = self.output_dim = input_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x * 2.0


class _NoHook(torch.nn.Module):
    """A registered encoder that does not derive from Encoder, so it has no export hook."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = self.output_dim = input_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x


@pytest.fixture
def plugin_encoders() -> Iterator[dict[str, str]]:
    """The two encoders above, registered for one test and removed after it (other tests list the registry)."""
    from seqtag import registry

    names = {"passthrough": "export-test-passthrough.v1", "nohook": "export-test-nohook.v1"}
    registry.encoders.register(names["passthrough"], _PassThrough)
    registry.encoders.register(names["nohook"], _NoHook)
    yield names
    for name in names.values():
        registry.encoders._parts.pop(name, None)


def _save_pos_model(path: Path, encoder: dict) -> Path:
    cfg = build_config("pos", {"model": {"tokenizer": {"type": "whitespace.v1"},
                                         "embedding": {"type": "word.v1", "dim": 8, "casing_dim": 2},
                                         "encoder": encoder, "head": {"type": "softmax.v1"}}})
    corpus = load_corpus(str(SAMPLES / "sample_pos"), "pos")
    train = corpus.sentences("train", None)
    labels = sorted({t for _, tags in train for t in tags})
    torch.manual_seed(0)
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=[w for w, _ in train])
    Tagger(cfg, labels, model).save(path)
    return path


def test_a_plugin_part_exports_through_the_base_class_hook(tmp_path: Path, plugin_encoders: dict[str, str]) -> None:
    name = plugin_encoders["passthrough"]
    stack = {"type": "stack.v1", "layers": [{"type": "gru.v1", "hidden_size": 6}, {"type": name}]}
    model = _save_pos_model(tmp_path / "m", stack)
    _assert_same(model, export_onnx(model), _test_sentences("pos"))


@pytest.mark.parametrize("nested", [False, True])
def test_a_part_without_the_hook_is_a_one_line_error(tmp_path: Path, nested: bool,
                                                      plugin_encoders: dict[str, str]) -> None:
    name = plugin_encoders["nohook"]
    encoder = {"type": "stack.v1", "layers": [{"type": "lstm.v1", "hidden_size": 4}, {"type": name}]} if nested \
        else {"type": name}
    model = _save_pos_model(tmp_path / "m", encoder)
    want = (f"the encoder '{name}' (tests.test_export._NoHook) cannot be exported to ONNX: "
            "it has no export_module()")
    with pytest.raises(ExportError) as info:
        check_exportable(Tagger.load(model).model)
    assert isinstance(info.value, SeqtagError) and str(info.value) == want
    result = CliRunner().invoke(main, ["export", str(model)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {want}"]
    assert not (model / "model.onnx").exists()
