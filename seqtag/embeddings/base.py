"""The base class of embeddings: token strings in, vectors of ``output_dim`` out."""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from ..resources import PartSize, VocabSource

Features = dict[str, Any]
CACHE_SIZE = 1 << 14  # words an embedding remembers features (or, in inference, vectors) of; then it starts again


class Embedding(nn.Module):
    """Turns a batch of token lists into vectors.

    The life of an embedding: construct from hyperparameters; ``initialize(sentences)`` builds what
    depends on the training data (vocabularies) and allocates weights, or ``set_assets(assets)``
    restores those from a saved tagger; ``featurize(batch)`` maps strings to index tensors once per
    batch; ``forward(features)`` gives ``(batch, seq, output_dim)``; ``export_module()`` gives the form
    the ONNX export traces. Features are tensors (or nested dicts of them); a key starting with ``_``
    holds a host-side extra that is no graph input (an ONNX export leaves it out), such as the word
    strings an inference cache is keyed on.
    """

    output_dim: int

    @classmethod
    def estimate_size(cls, vocab: "VocabSource", /, **config: Any) -> "PartSize | None":
        """The part's size from its resolved config, before it is built (see :mod:`seqtag.resources`);
        ``vocab`` bounds its vocabularies. ``None``, the default, means the part cannot tell."""
        return None

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

    def index_columns(self, sentences: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
        """Per-sentence ids worth computing once for a whole corpus (training maps them over the
        dataset with ``datasets.map`` and caches them on disk): column name to one value per sentence.
        The default computes nothing and :meth:`featurize_indexed` featurizes from the strings."""
        return {}

    def featurize_indexed(self, batch: Sequence[Sequence[str]], columns: Mapping[str, Sequence[Any]]) -> Features:
        """:meth:`featurize` for a batch whose :meth:`index_columns` values are given (one per sentence)."""
        return self.featurize(batch)

    def forward(self, features: Features) -> torch.Tensor:  # shape: (batch, seq, output_dim)
        raise NotImplementedError

    def export_module(self) -> nn.Module:
        """The embedding's traceable form for the ONNX export: ``forward(features) -> (batch, seq, output_dim)``
        over the featurized tensors (keys starting with ``_`` left out).

        The default is the embedding itself, in eval mode: an embedding whose forward traces needs nothing
        more. Override it otherwise, or raise :func:`seqtag.export_hook.not_exportable` for an embedding
        that cannot be exported (see :mod:`seqtag.export_hook`).
        """
        return self


def pad_ids(rows: Sequence[Sequence[int]], pad: int = 0) -> torch.Tensor:
    """Pad lists of ids to a ``(len(rows), max_len)`` long tensor, filled through one flat C array
    (``torch.tensor`` of nested lists costs several times more per element)."""
    width = max(max(map(len, rows), default=0), 1)
    if not rows:
        return torch.zeros((0, width), dtype=torch.long)
    flat = array("q", [pad]) * (len(rows) * width)
    for i, row in enumerate(rows):
        flat[i * width: i * width + len(row)] = array("q", row)
    return torch.frombuffer(flat, dtype=torch.long).view(len(rows), width).clone()
