"""Training's ids are computed once per corpus with ``datasets.map`` and cached on disk; batches built
from them equal batches featurized from the strings."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from seqtag.data import index_sentences
from seqtag.model import TaggerModel, make_batch

WORDS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", ".", "Peter", "Blackburn",
         "1996-08-22", "Zürich", "x" * 40]


def _sentences(seed: int, n: int = 60) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 15))] for _ in range(n)]


def _model(parts: list[dict], sentences: list[list[str]]) -> TaggerModel:
    cfg = {"embedding": {"type": "concat.v1", "parts": parts}, "encoder": {"type": "lstm.v1", "hidden_size": 8},
           "head": {"type": "crf.v1"}}
    return TaggerModel(cfg, ["O", "B-PER", "I-PER"], "IOB2", sentences=sentences)


def _assert_same(a: object, b: object, where: str = "features") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    else:
        assert a == b, where


def test_indexed_batches_equal_featurized_batches(tmp_path: Path) -> None:
    sents = _sentences(0)
    parts = [{"type": "word.v1", "dim": 8, "casing_dim": 4, "min_freq": 2},
             {"type": "char_cnn.v1", "char_dim": 4, "filters": 3, "max_word_length": 12},
             {"type": "char_lstm.v1", "char_dim": 4, "hidden_size": 3}]
    model = _model(parts, sents[:30])  # words and characters unseen in "training" as well
    indexed = index_sentences(model.embedding, sents, progress=False, cache_dir=tmp_path)
    assert indexed is not None and len(indexed) == len(sents)
    assert set(indexed.column_names) == {"0.ids", "0.casing", "1.chars", "2.chars"}
    rng = random.Random(1)
    for _ in range(10):
        idx = rng.sample(range(len(sents)), 7)
        toks = [sents[i] for i in idx]
        _assert_same(make_batch(model, toks).features, make_batch(model, toks, columns=indexed[idx]).features)


def test_index_is_cached_by_vocabulary_and_tokens(tmp_path: Path) -> None:
    sents = _sentences(2)
    parts = [{"type": "word.v1", "dim": 8}]
    model = _model(parts, sents)
    first = index_sentences(model.embedding, sents, progress=False, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("*.arrow"))
    assert len(files) == 1
    again = index_sentences(model.embedding, sents, progress=False, cache_dir=tmp_path)
    assert sorted(tmp_path.glob("*.arrow")) == files  # read back, not written again
    assert again["0.ids"] == first["0.ids"]
    # another vocabulary, or other sentences, get their own file
    other = _model(parts, sents[:10])
    index_sentences(other.embedding, sents, progress=False, cache_dir=tmp_path)
    index_sentences(model.embedding, sents[:-1], progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.arrow"))) == 3


def test_parts_without_ids_ahead_index_nothing(tmp_path: Path) -> None:
    sents = _sentences(3)
    pretrained = tmp_path / "vectors.txt"
    pretrained.write_text("\n".join(f"{w} 0.1 0.2 0.3" for w in WORDS) + "\n", encoding="utf-8")
    model = _model([{"type": "pretrained.v1", "path": str(pretrained)}], sents)
    assert index_sentences(model.embedding, sents, progress=False, cache_dir=tmp_path / "cache") is None
