"""Pretrained word vectors from a word2vec or GloVe text file, frozen or fine-tuned."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from .. import registry
from ..errors import ConfigError, DataError
from ..resources import PartSize, VocabSource
from .base import Embedding, Features, pad_ids
from .vocab import Vocab
from .word import normalize_word


def read_vectors(path: str | Path, dim: int | None = None,
                 keep: set[str] | None = None) -> tuple[list[str], torch.Tensor]:
    """Read a word2vec text file (optional ``count dim`` header) or a GloVe file.

    Args:
        path: The text file, one ``word v1 v2 ...`` per line.
        dim: The expected vector size (checked) or ``None`` to take it from the file.
        keep: Only words in this set are kept (saves memory for large files).
    """
    words: list[str] = []
    rows: list[list[float]] = []
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pretrained.v1: vector file {str(p)!r} not found")
    with p.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                continue  # word2vec header
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            if len(values) != dim:
                raise DataError(f"expected {dim} numbers after the word, found {len(values)}", str(p), lineno)
            if keep is not None and word not in keep and word.lower() not in keep:
                continue
            try:
                rows.append([float(v) for v in values])
            except ValueError:
                raise DataError("a vector value is not a number", str(p), lineno) from None
            words.append(word)
    if not words:
        raise DataError("no vectors found", str(p))
    return words, torch.tensor(rows, dtype=torch.float32)


def vector_file_shape(path: str | Path, line_limit: int = 1 << 20) -> tuple[int, int]:
    """About how many vectors a word2vec/GloVe text file holds and their size, from its first lines and its
    length, without reading it: the count is the file's size over the first vector line's (at most a
    word2vec header's count). ``(0, 0)`` when the file cannot be read."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            first, second = f.readline(line_limit), f.readline(line_limit)
    except OSError:
        return 0, 0
    head = first.split()
    if len(head) == 2 and all(x.isdigit() for x in head):  # word2vec header: count and size
        return min(int(head[0]), size // max(len(second), 1) + 1), max(len(second.split()) - 1, 0)
    return size // max(len(first), 1) + 1, max(len(head) - 1, 0)


@registry.embeddings.register("pretrained.v1")
class PretrainedEmbedding(Embedding):
    """Word vectors read from a word2vec/GloVe text file; the vectors are saved with the tagger.

    Args:
        path: The vector file (read once, at training time).
        freeze: Keep the vectors fixed (``True``) or fine-tune them.
        lowercase: Look words up lower-cased when the exact form has no vector.
        only_training_words: Keep only vectors of words seen in the training data (smaller models).
    """

    sparse_tables = ("embed",)  # when fine-tuned (freeze = false)

    def __init__(self, path: str = "", freeze: bool = True, lowercase: bool = True,
                 only_training_words: bool = False) -> None:
        super().__init__()
        self.path, self.freeze, self.lowercase = path, freeze, lowercase
        self.only_training_words = only_training_words
        self.vocab = Vocab()
        self.output_dim = 0  # known after initialize() or set_assets()
        self.embed = nn.Embedding(2, max(self.output_dim, 1), padding_idx=0)

    @classmethod
    def estimate_size(cls, vocab: VocabSource, /, *, path: str, only_training_words: bool,  # type: ignore[override]
                      **config: Any) -> PartSize:
        if vocab.loaded:
            dim = vocab.assets.get("dim") if isinstance(vocab.assets, dict) else None
            dim = dim if isinstance(dim, int) and not isinstance(dim, bool) else 0
            rows = vocab.size("vocab", 0)
        else:
            rows, dim = vector_file_shape(path)
            if only_training_words:  # the training words and their lower-cased forms
                rows = min(rows, 2 * vocab.words)
            rows += 2
        return PartSize(rows * dim, dim, activations=dim)

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        keep = None
        if self.only_training_words:
            keep = {w for s in sentences for w in s}
            keep |= {w.lower() for w in keep}
        words, vectors = read_vectors(self.path, None, keep)
        self.set_assets({"vocab": words, "dim": vectors.size(1)})
        with torch.no_grad():
            self.embed.weight[2:] = vectors

    def get_assets(self) -> dict[str, Any]:
        return {"vocab": self.vocab.to_list(), "dim": self.output_dim}

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        assets = assets or {}
        self.vocab = Vocab(assets.get("vocab", []))
        self.output_dim = int(assets.get("dim", self.output_dim))
        self.embed = nn.Embedding(len(self.vocab), self.output_dim, padding_idx=0)
        nn.init.zeros_(self.embed.weight)
        self.embed.weight.requires_grad_(not self.freeze)

    def _lookup(self, word: str) -> int:
        idx = self.vocab.stoi.get(word)
        if idx is None and self.lowercase:
            idx = self.vocab.stoi.get(word.lower())
            if idx is None:
                idx = self.vocab.stoi.get(normalize_word(word, True, True))
        return 1 if idx is None else idx

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        return {"ids": pad_ids([[self._lookup(w) for w in s] for s in batch])}

    def forward(self, features: Features) -> torch.Tensor:
        return self.embed(features["ids"])  # shape: (batch, seq, dim)
