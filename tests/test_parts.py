"""Every registered built-in part: built from config, fits a tiny corpus, saves, reloads in a new process
with identical predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqtag import registry

from .conftest import SAMPLES, train_small

WORD = {"type": "word.v1", "dim": 16, "casing_dim": 4}

# (slot, part config) per registered name; the other slots keep the small defaults of conftest.SMALL
CASES: dict[str, tuple[str, dict]] = {
    "whitespace.v1": ("tokenizer", {"type": "whitespace.v1"}),
    "spacy.v1": ("tokenizer", {"type": "spacy.v1", "lang": "en"}),
    "pretokenized.v1": ("tokenizer", {"type": "pretokenized.v1"}),
    "word.v1": ("embedding", WORD),
    "char_cnn.v1": ("embedding", {"type": "char_cnn.v1", "char_dim": 12, "filters": 24}),
    "char_lstm.v1": ("embedding", {"type": "char_lstm.v1", "char_dim": 12, "hidden_size": 12}),
    "pretrained.v1": ("embedding", {"type": "pretrained.v1", "freeze": False}),
    "concat.v1": ("embedding", {"type": "concat.v1", "parts": [WORD, {"type": "char_lstm.v1", "hidden_size": 8}]}),
    "rnn.v1": ("encoder", {"type": "rnn.v1", "hidden_size": 24, "num_layers": 2}),
    "lstm.v1": ("encoder", {"type": "lstm.v1", "hidden_size": 24, "num_layers": 2, "dropout": 0.1}),
    "gru.v1": ("encoder", {"type": "gru.v1", "hidden_size": 24}),
    "stack.v1": ("encoder", {"type": "stack.v1", "residual": True,
                             "layers": [{"type": "lstm.v1", "hidden_size": 12}, {"type": "gru.v1", "hidden_size": 12}]}),
    "identity.v1": ("encoder", {"type": "identity.v1"}),
    "softmax.v1": ("head", {"type": "softmax.v1"}),
    "crf.v1": ("head", {"type": "crf.v1", "constrained": True}),
}


def test_every_builtin_name_has_a_case() -> None:
    builtin = {info.name for reg in registry.REGISTRIES.values() for info in reg.all() if info.distribution == registry.BUILTIN_DIST}
    assert builtin == set(CASES)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import random

    words = {w for line in (SAMPLES / "sample_ner" / "train.conll").read_text().splitlines() if line
             for w in [line.split()[0]]}
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("vec") / "vectors.txt"
    lines = [f"{len(words)} 8"] + [w + " " + " ".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(8)) for w in sorted(words)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, vectors: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("parts")
    out = {}
    for name, (slot, cfg) in CASES.items():
        cfg = dict(cfg)
        if name == "pretrained.v1":
            cfg["path"] = str(vectors)
        epochs = 25 if slot == "encoder" and name in ("identity.v1", "rnn.v1") else 15
        overrides = {"model": {slot: cfg}, "training": {"max_epochs": epochs, "patience": epochs}}
        if name == "softmax.v1":
            overrides["scheme"] = "IOB2"
        train_small("ner", root / name, overrides)
        out[name] = root / name
    return out


def _predict_in_new_process(paths: dict[str, Path], sents: list[list[str]], text: str) -> dict[str, list]:
    code = ("import json, sys, seqtag\n"
            "paths, sents, text = json.loads(sys.argv[1])\n"
            "out = {}\n"
            "for name, p in paths.items():\n"
            "    t = seqtag.load(p)\n"
            "    out[name] = [[x.tags for x in t.predict(sents)], t.predict(text)[0].to_dict()]\n"
            "print(json.dumps(out))\n")
    arg = json.dumps([{k: str(v) for k, v in paths.items()}, sents, text])
    res = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_each_part_fits_the_tiny_corpus_and_reloads_identically(trained: dict[str, Path]) -> None:
    import seqtag
    from seqtag.data import load_corpus

    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    gold = corpus.sentences("train", "IOB2")[:60]
    sents = [t for t, _ in gold]
    text = "Yesterday Anna flew to Tokyo with Wei Chen ."
    here = {}
    for name, path in trained.items():
        tagger = seqtag.load(path)
        preds = tagger.predict(sents)
        fit = sum(p.tags == g for p, (_, g) in zip(preds, gold)) / len(gold)
        assert fit >= (0.6 if name == "identity.v1" else 0.9), f"{name} fits only {fit:.0%} of the training sentences"
        here[name] = [[p.tags for p in preds], tagger.predict(text)[0].to_dict()]
    there = _predict_in_new_process(trained, sents, text)
    for name in trained:
        assert there[name][0] == here[name][0], name
        a, b = there[name][1], here[name][1]
        assert a["tags"] == b["tags"] and a["offsets"] == [list(o) for o in b["offsets"]], name
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4), name
