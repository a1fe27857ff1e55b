"""The base class of embeddings: token strings in, vectors of ``output_dim`` out."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import nn

Features = dict[str, Any]
CACHE_SIZE = 1 << 14  # words an embedding remembers features (or, in inference, vectors) of; then it starts again


class Embedding(nn.Module):
    """Turns a batch of token lists into vectors.

    The life of an embedding: construct from hyperparameters; ``initialize(sentences)`` builds what
    depends on the training data (vocabularies) and allocates weights, or ``set_assets(assets)``
    restores those from a saved tagger; ``featurize(batch)`` maps strings to index tensors once per
    batch; ``forward(features)`` gives ``(batch, seq, output_dim)``. Features are tensors (or nested
    dicts of them); a key starting with ``_`` holds a host-side extra that is no graph input (an ONNX
    export leaves it out), such as the word strings an inference cache is keyed on.
    """

    output_dim: int

    def get_output_dim(self) -> int:
        return self.output_dim

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        """Build vocabularies from the training sentences and allocate weights."""

    def get_assets(self) -> dict[str, Any] | None:
        """JSON-serializable data (vocabularies) needed to rebuild the weights' shapes."""
        return None

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        """Restore what :meth:`get_assets` returned and allocate weights of the right shapes."""

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        raise NotImplementedError

    def forward(self, features: Features) -> torch.Tensor:  # shape: (batch, seq, output_dim)
        raise NotImplementedError


def pad_ids(rows: Sequence[Sequence[int]], pad: int = 0) -> torch.Tensor:
    """Pad lists of ids to a ``(len(rows), max_len)`` long tensor (one tensor built, not one per row)."""
    width = max(max((len(r) for r in rows), default=0), 1)
    return torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long).view(len(rows), width)
