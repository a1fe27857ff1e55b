"""Memory sanity (seqtag/resources.py): each part's size is estimated from its config before anything is
allocated, absurd sizes are refused at once with one line, and torch's allocation failures become the
one-line out-of-memory error instead of a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from seqtag import registry
from seqtag.config import build_part
from seqtag.data import load_corpus
from seqtag.encoders.base import Encoder
from seqtag.errors import ConfigError, ResourceError
from seqtag.model import TaggerModel
from seqtag.resources import (
    MAX_MEMORY_ENV,
    MEMORY_CHECK_ENV,
    SANE_SIZE,
    VocabSource,
    check_model,
    estimate_model,
    estimate_part,
    format_bytes,
    memory_limit,
    out_of_memory,
    parse_bytes,
)
from seqtag.trainer import build_config

from .test_bad_input import (
    NER,
    fails,
    run,
    tiny,  # noqa: F401 - the TINY config file, a fixture
    train_args,
)

LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
HUGE = 10 ** 9


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests see the machine's own limit unless they set one."""
    monkeypatch.delenv(MAX_MEMORY_ENV, raising=False)
    monkeypatch.delenv(MEMORY_CHECK_ENV, raising=False)


def sample(task: str) -> tuple[dict[str, Any], list[list[str]], list[str]]:
    """The default config of ``task`` (whitespace tokenizer), the sample corpus' training tokens and labels."""
    cfg = build_config(task, {"model": {"tokenizer": {"type": "whitespace.v1"}}})
    sents = load_corpus(str(NER.parent / f"sample_{task}"), task).sentences(
        "train", cfg["scheme"] if task == "ner" else None)
    return cfg, [t for t, _ in sents], sorted({t for _, tags in sents for t in tags})


# -- the estimates against the built parts -------------------------------------------------------------


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_the_estimate_of_a_default_model_is_its_parameter_count(task: str) -> None:
    cfg, tokens, labels = sample(task)
    model = TaggerModel(cfg["model"], labels, cfg["scheme"], sentences=tokens)
    real = numel(model)
    # loading: the saved vocabularies give the exact count
    assert estimate_model(cfg["model"], labels, assets=model.get_assets()).parameters == real
    # training: the distinct raw words bound the vocabulary (lower-casing and min_freq only merge or drop)
    bound = estimate_model(cfg["model"], labels, tokens).parameters
    assert real <= bound <= 1.01 * real


ENCODERS = [{"type": name, "hidden_size": 7, "num_layers": layers, "bidirectional": bi}
            for name in ("rnn.v1", "lstm.v1", "gru.v1") for layers in (1, 3) for bi in (False, True)] + [
    {"type": "identity.v1"},
    {"type": "stack.v1", "layers": [{"type": "lstm.v1", "hidden_size": 5, "num_layers": 2},
                                    {"type": "gru.v1", "hidden_size": 3, "bidirectional": False},
                                    {"type": "stack.v1", "layers": [{"type": "rnn.v1", "hidden_size": 3}]}]},
    {"type": "stack.v1", "residual": True, "layers": [{"type": "lstm.v1", "hidden_size": 5},
                                                      {"type": "gru.v1", "hidden_size": 5},
                                                      {"type": "identity.v1"}]},
]


@pytest.mark.parametrize("cfg", ENCODERS, ids=lambda c: json.dumps(c, separators=(",", "="))[:80])
def test_encoder_estimates_are_exact(cfg: dict[str, Any]) -> None:
    size = estimate_part("encoder", cfg, 6)
    enc = build_part("encoder", cfg, input_dim=6)
    assert (size.parameters, size.output_dim) == (numel(enc), enc.output_dim)


@pytest.mark.parametrize("name", ["softmax.v1", "crf.v1"])
def test_head_estimates_are_exact(name: str) -> None:
    size = estimate_part("head", {"type": name}, 11, LABELS)
    assert size.parameters == numel(build_part("head", {"type": name}, input_dim=11, labels=LABELS, scheme="BIOES"))


EMBEDDINGS = [
    {"type": "word.v1", "dim": 9, "casing_dim": 3},
    {"type": "word.v1", "dim": 9, "casing_dim": 0, "max_size": 10},
    {"type": "char_cnn.v1", "char_dim": 5, "filters": 7, "kernel_size": 5},
    {"type": "char_lstm.v1", "char_dim": 5, "hidden_size": 4},
    {"type": "concat.v1", "parts": [{"type": "word.v1", "dim": 4}, {"type": "char_lstm.v1", "hidden_size": 3},
                                    {"type": "concat.v1", "parts": [{"type": "char_cnn.v1", "filters": 2}]}]},
]


@pytest.mark.parametrize("cfg", EMBEDDINGS, ids=lambda c: json.dumps(c, separators=(",", "="))[:80])
def test_embedding_estimates_are_exact_from_assets_and_a_bound_from_sentences(cfg: dict[str, Any]) -> None:
    _, tokens, _ = sample("ner")
    emb = build_part("embedding", cfg)
    emb.initialize(tokens)
    loaded = estimate_part("embedding", cfg, VocabSource(loaded=True, assets=emb.get_assets()))
    assert (loaded.parameters, loaded.output_dim) == (numel(emb), emb.output_dim)
    assert numel(emb) <= estimate_part("embedding", cfg, VocabSource.from_sentences(tokens)).parameters


def test_pretrained_vectors_are_estimated_from_the_file_and_exactly_from_assets(tmp_path: Path) -> None:
    words = [f"w{i}" for i in range(300)]
    vectors = tmp_path / "vec.txt"
    vectors.write_text(f"{len(words)} 4\n" + "".join(f"{w} 0.1 0.2 0.3 0.4\n" for w in words))
    cfg = {"type": "pretrained.v1", "path": str(vectors)}
    emb = build_part("embedding", cfg)
    emb.initialize([["w1", "w2"]])
    assert estimate_part("embedding", cfg, VocabSource(loaded=True, assets=emb.get_assets())).parameters == numel(emb)
    from_file = estimate_part("embedding", cfg, VocabSource.from_sentences([["w1", "w2"]]))
    assert from_file.output_dim == 4 and from_file.parameters == numel(emb)  # the header's count
    only = estimate_part("embedding", {**cfg, "only_training_words": True}, VocabSource.from_sentences([["w1"]]))
    assert only.parameters == (2 + 2) * 4  # w1 and its lower-cased form, <pad> and <unk>


# -- refusing before allocating ------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", [{"hidden_size": HUGE}, {"num_layers": HUGE},
                                     {"num_layers": HUGE, "hidden_size": HUGE}])
def test_absurd_sizes_are_refused_at_once(encoder: dict[str, int]) -> None:
    cfg, tokens, labels = sample("ner")
    model_cfg = {**cfg["model"], "encoder": {"type": "lstm.v1", **encoder}}
    start = time.perf_counter()
    for kwargs in ({"sentences": tokens}, {"assets": {}}):
        with pytest.raises(ResourceError, match=r"the model needs about .* of memory to (train|load) \(.* parameters, "
                                                r".* of them in the encoder 'lstm.v1'\), more than the .*; .*"
                                                f"{MAX_MEMORY_ENV}=64G.*{MEMORY_CHECK_ENV}=0"):
            TaggerModel(model_cfg, labels, "BIOES", **kwargs)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("encoder,message", [
    ({"type": "lstm.v1", "hidden_size": 0}, "hidden_size and num_layers must be positive, got 0 and 1"),
    ({"type": "gru.v1", "num_layers": -HUGE, "hidden_size": -HUGE}, "must be positive, got -1000000000"),
    ({"type": "stack.v1", "layers": [{"type": "rnn.v1", "num_layers": 0}]}, "must be positive, got 128 and 0"),
])
def test_invalid_sizes_are_a_config_error_before_any_estimate(encoder: dict[str, Any], message: str) -> None:
    cfg, tokens, labels = sample("ner")
    with pytest.raises(ConfigError, match=message):
        TaggerModel({**cfg["model"], "encoder": encoder}, labels, "BIOES", sentences=tokens)


def test_plain_invalid_embedding_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="casing_dim must be 0 .off. or positive, got -3"):
        build_part("embedding", {"type": "word.v1", "casing_dim": -3})
    with pytest.raises(ConfigError, match="char_lstm.v1: hidden_size must be positive, got 0"):
        estimate_part("embedding", {"type": "char_lstm.v1", "hidden_size": 0}, VocabSource())


class NoEstimate(Encoder):
    """An encoder without the estimate_size hook, like a plugin written before it."""

    def __init__(self, input_dim: int, width: int = 8, depth: list[int] = (1,)) -> None:  # type: ignore[assignment]
        super().__init__()
        self.input_dim, self.output_dim = input_dim, width
        self.proj = torch.nn.Linear(input_dim, width)


@pytest.fixture
def no_estimate() -> Any:
    name = "test_no_estimate.v1"
    registry.encoders.register(name, NoEstimate)
    yield name
    registry.encoders._parts.pop(name)


def test_a_part_without_the_hook_is_checked_by_its_configs_integers(no_estimate: str) -> None:
    size = estimate_part("encoder", {"type": no_estimate, "width": SANE_SIZE}, 5)
    assert (size.parameters, size.output_dim, size.estimated) == (0, 0, False)  # unknown: counts as nothing
    with pytest.raises(ResourceError, match=f"encoder '{no_estimate}': width = 16,777,217 is larger than any sane "
                                            f"size .16,777,216. and the part cannot estimate its memory; lower it, "
                                            f"or set {MEMORY_CHECK_ENV}=0"):
        estimate_part("encoder", {"type": no_estimate, "width": SANE_SIZE + 1}, 5)
    with pytest.raises(ResourceError, match=r"depth\[1\] = 1,000,000,000 is larger"):
        estimate_part("encoder", {"type": no_estimate, "depth": [3, HUGE]}, 5)
    # nested in a stack, the parts around it are still estimated
    stack = {"type": "stack.v1", "layers": [{"type": no_estimate}, {"type": "lstm.v1", "hidden_size": 4}]}
    assert estimate_part("encoder", stack, 5).parameters == estimate_part("encoder", stack["layers"][1], 0).parameters


# -- the limit and its overrides ----------------------------------------------------------------------


def test_parse_and_format_bytes() -> None:
    assert parse_bytes("64G") == 64 << 30 and parse_bytes("1.5t") == 3 << 39 and parse_bytes("512MiB") == 512 << 20
    assert parse_bytes("1000") == 1000 and parse_bytes(" 2 GB ") == 2 << 30
    with pytest.raises(ConfigError, match=f"{MAX_MEMORY_ENV}='lots': expected a size such as 64G"):
        parse_bytes("lots")
    assert [format_bytes(n) for n in (5, 1536, 3 << 30, 10 ** 40)] == ["5 bytes", "1.5 KiB", "3.0 GiB", "1.0e+40 bytes"]


def test_the_limit_is_the_machines_available_memory_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = memory_limit()
    assert limit is not None and limit[0] > 0
    monkeypatch.setenv(MAX_MEMORY_ENV, "64G")
    assert memory_limit() == (64 << 30, f"set by {MAX_MEMORY_ENV}=64G")
    monkeypatch.setenv(MEMORY_CHECK_ENV, "0")
    assert memory_limit() is None


def test_the_override_lets_a_big_but_feasible_model_through(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, tokens, labels = sample("ner")
    big = {**cfg["model"], "encoder": {"type": "lstm.v1", "hidden_size": 2048, "num_layers": 2}}  # about 0.5 GiB
    monkeypatch.setenv(MAX_MEMORY_ENV, "256M")  # a small machine
    with pytest.raises(ResourceError, match=f"needs about 522.8 MiB of memory to load .* more than the 256.0 MiB "
                                            f"set by {MAX_MEMORY_ENV}=256M"):
        check_model(big, labels, assets={})
    monkeypatch.setenv(MAX_MEMORY_ENV, "64G")
    assert check_model(big, labels, assets={}).parameters > 130_000_000
    monkeypatch.setenv(MAX_MEMORY_ENV, "256M")
    monkeypatch.setenv(MEMORY_CHECK_ENV, "0")
    check_model(big, labels, assets={})


def test_with_the_check_off_a_part_without_the_hook_is_not_refused(no_estimate: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_CHECK_ENV, "0")
    assert estimate_part("encoder", {"type": no_estimate, "width": HUGE}, 5).parameters == 0


# -- through the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["model.encoder.hidden_size=1000000000", "model.encoder.num_layers=1000000000"])
def test_train_refuses_an_absurd_size_in_one_line_and_at_once(tiny: Path, tmp_path: Path, setting: str) -> None:
    start = time.perf_counter()
    fails(train_args(tiny, NER, tmp_path / "m", "--set", setting), "error: the model needs about ",
          "of memory to train", "of them in the encoder 'lstm.v1'), more than the ", f"{MAX_MEMORY_ENV}=64G",
          f"{MEMORY_CHECK_ENV}=0")
    assert time.perf_counter() - start < 10.0  # the corpus is read first; the check itself takes microseconds
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_train_with_a_limit_set_too_low_and_with_the_check_off(tiny: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_MEMORY_ENV, "10K")
    fails(train_args(tiny, NER, tmp_path / "m"), "more than the 10.0 KiB set by SEQTAG_MAX_MEMORY=10K")
    monkeypatch.setenv(MEMORY_CHECK_ENV, "0")
    res = run(train_args(tiny, NER, tmp_path / "m"))
    assert res.exit_code == 0, res.output
    monkeypatch.setenv(MEMORY_CHECK_ENV, "1")
    monkeypatch.setenv(MAX_MEMORY_ENV, "a lot")
    fails(train_args(tiny, NER, tmp_path / "m2"), f"{MAX_MEMORY_ENV}='a lot': expected a size such as 64G")


def _rewrite(model_dir: Path, name: str, text: str) -> None:
    """Change a model file as a hostile author would: the SHA-256 manifest in meta.json (if any) agrees."""
    (model_dir / name).write_text(text, encoding="utf-8")
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    if isinstance(meta.get("files"), dict) and name in meta["files"]:
        meta["files"][name] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        (model_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


@pytest.mark.parametrize("encoder", [{"num_layers": HUGE}, {"hidden_size": HUGE}])
def test_a_saved_model_with_an_absurd_config_is_refused_in_one_line(ner_model: Path, tmp_path: Path,
                                                                    encoder: dict[str, int]) -> None:
    model = tmp_path / "model"
    shutil.copytree(ner_model, model, ignore=shutil.ignore_patterns("checkpoint"))
    cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
    cfg["model"]["encoder"].update(encoder)
    _rewrite(model, "config.json", json.dumps(cfg))
    start = time.perf_counter()
    for args in (["predict", model, "-"], ["evaluate", model, "--dataset", NER]):
        fails(args, f"error: {model / 'config.json'}: the model needs about ", "of memory to load",
              "in the encoder 'lstm.v1'", f"{MEMORY_CHECK_ENV}=0", input="Lucy lives in Oslo .\n")
    assert time.perf_counter() - start < 10.0


def test_an_allocation_failure_in_a_command_is_one_line(ner_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtag.tagger import Tagger

    def allocate(*args: Any, **kwargs: Any) -> None:
        torch.empty(2 ** 60, dtype=torch.uint8)  # more than any address space: torch's own RuntimeError

    monkeypatch.setattr(Tagger, "load", allocate)
    fails(["predict", ner_model, "-"], "error: out of memory (DefaultCPUAllocator: can't allocate memory: you tried "
          "to allocate 1152921504606846976 bytes", "lower the batch size (--batch-size", "or the model size",
          input="Lucy lives in Oslo .\n")


def test_other_runtime_errors_stay_bugs_with_a_traceback(ner_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtag.tagger import Tagger

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")

    monkeypatch.setattr(Tagger, "load", broken)
    res = run(["predict", ner_model, "-"], input="Lucy lives in Oslo .\n")
    assert res.exit_code == 1 and isinstance(res.exception, RuntimeError)


def test_which_exceptions_are_out_of_memory() -> None:
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of "
                                  "79.15 GiB of which 1.2 GiB is free. " + "Details. " * 40)
    line = out_of_memory(cuda).one_line()
    assert line.startswith("out of memory (CUDA out of memory. Tried to allocate 20.00 GiB.") and "...)" in line
    assert out_of_memory(MemoryError()).one_line().startswith("out of memory; lower the batch size")
    assert out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: not "
                                      "enough memory: you tried to allocate 8 bytes")).one_line().startswith(
        "out of memory (DefaultCPUAllocator: not enough memory")
    assert out_of_memory(RuntimeError("expected scalar type Float but found Double")) is None
    assert out_of_memory(ValueError("out of memory")) is None
