"""Trainable word embeddings with a casing feature, unknown-word handling and word dropout."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from .. import registry
from ..errors import ConfigError
from ..resources import PartSize, VocabSource
from .base import CACHE_SIZE, Embedding, Features, pad_ids
from .vocab import Vocab

_DIGITS = re.compile(r"[0-9]")
CASING = ("pad", "lower", "upper", "title", "mixed", "numeric", "has_digit", "punct", "other")


def casing_id(word: str) -> int:
    """A small category for how a word is written (a spelling feature that survives lower-casing)."""
    if word.isdigit():
        return 5
    if any(ch.isdigit() for ch in word):
        return 6
    if not any(ch.isalnum() for ch in word):
        return 7
    if word.islower():
        return 1
    if word.isupper():
        return 2
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return 3
    if any(ch.isalpha() for ch in word):
        return 4
    return 8


def normalize_word(word: str, lowercase: bool, normalize_digits: bool) -> str:
    if lowercase:
        word = word.lower()
    if normalize_digits:
        word = _DIGITS.sub("0", word)
    return word


@registry.embeddings.register("word.v1")
class WordEmbedding(Embedding):
    """Trainable word vectors over a vocabulary built from the training data.

    Args:
        dim: Size of a word vector.
        min_freq: Words seen fewer times in training become ``<unk>``.
        lowercase: Look words up lower-cased; the casing feature keeps how they were written.
        casing_dim: Size of the casing-feature vector (0 turns it off).
        normalize_digits: Map every digit to ``0`` before lookup.
        word_dropout: Probability of replacing a word with ``<unk>`` in training, so ``<unk>`` is learned.
        max_size: Keep at most this many words (the most frequent).
    """

    context_free = True
    sparse_tables = ("embed",)  # the word table; the casing table is small and used by every batch

    def __init__(self, dim: int = 100, min_freq: int = 1, lowercase: bool = True, casing_dim: int = 16,
                 normalize_digits: bool = True, word_dropout: float = 0.05, max_size: int | None = None) -> None:
        super().__init__()
        self._check(dim, casing_dim, word_dropout)
        self.dim, self.min_freq, self.lowercase = dim, min_freq, lowercase
        self.casing_dim, self.normalize_digits = casing_dim, normalize_digits
        self.word_dropout, self.max_size = word_dropout, max_size
        self.output_dim = dim + casing_dim
        self.vocab = Vocab()
        self._ids: dict[str, tuple[int, int]] = {}  # word -> (vocabulary id, casing id), filled as words are met
        self.embed = nn.Embedding(2, dim, padding_idx=0)
        self.casing = nn.Embedding(len(CASING), casing_dim, padding_idx=0) if casing_dim > 0 else None

    @staticmethod
    def _check(dim: int, casing_dim: int, word_dropout: float) -> None:
        if dim <= 0:
            raise ConfigError(f"word.v1: dim must be positive, got {dim}")
        if casing_dim < 0:
            raise ConfigError(f"word.v1: casing_dim must be 0 (off) or positive, got {casing_dim}")
        if not 0.0 <= word_dropout < 1.0:
            raise ConfigError(f"word.v1: word_dropout must be in [0, 1), got {word_dropout}")

    @classmethod
    def estimate_size(cls, vocab: VocabSource, /, *, dim: int, casing_dim: int, word_dropout: float,  # type: ignore[override]
                      max_size: int | None, **config: Any) -> PartSize:
        cls._check(dim, casing_dim, word_dropout)
        # the distinct training words bound the vocabulary: lower-casing and min_freq only shrink it
        words = vocab.size("vocab", min(vocab.words, max_size) if max_size and max_size > 0 else vocab.words)
        return PartSize(words * dim + len(CASING) * casing_dim, dim + casing_dim, activations=dim + casing_dim)

    def _norm(self, word: str) -> str:
        return normalize_word(word, self.lowercase, self.normalize_digits)

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        counts: Counter[str] = Counter(self._norm(w) for s in sentences for w in s)
        self.set_assets({"vocab": Vocab.from_counts(counts, self.min_freq, self.max_size).to_list()})

    def get_assets(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_list()}

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        self.vocab = Vocab((assets or {}).get("vocab", []))
        self._ids = {}
        self.embed = nn.Embedding(len(self.vocab), self.dim, padding_idx=0)
        nn.init.uniform_(self.embed.weight, -(3.0 / self.dim) ** 0.5, (3.0 / self.dim) ** 0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def _word_ids(self, word: str) -> tuple[int, int]:
        if len(self._ids) >= CACHE_SIZE:
            self._ids.clear()
        ids = self._ids[word] = (self.vocab.stoi.get(self._norm(word), 1), casing_id(word))
        return ids

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        return self.featurize_indexed(batch, self.index_columns(batch))

    def index_columns(self, sentences: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
        cache, miss = self._ids, self._word_ids
        pairs = [[cache.get(w) or miss(w) for w in s] for s in sentences]
        cols: dict[str, list[Any]] = {"ids": [[p[0] for p in row] for row in pairs]}
        if self.casing is not None:
            cols["casing"] = [[p[1] for p in row] for row in pairs]
        return cols

    def featurize_indexed(self, batch: Sequence[Sequence[str]], columns: Mapping[str, Sequence[Any]]) -> Features:
        if "ids" not in columns or (self.casing is not None and "casing" not in columns):
            return self.featurize(batch)
        feats: Features = {"ids": pad_ids(columns["ids"])}
        if self.casing is not None:
            feats["casing"] = pad_ids(columns["casing"])
        return feats

    def forward(self, features: Features) -> torch.Tensor:
        ids = features["ids"]  # shape: (batch, seq)
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(ids.shape, device=ids.device) < self.word_dropout) & (ids > 1)
            ids = ids.masked_fill(drop, 1)
        out = self.embed(ids)  # shape: (batch, seq, dim)
        if self.casing is not None:
            out = torch.cat([out, self.casing(features["casing"])], dim=-1)  # shape: (batch, seq, dim + casing_dim)
        return out
