"""The base class of tagging heads: encoder states in, a loss in training and tags when decoding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from ..resources import PartSize


class Head(nn.Module):
    """Scores tags from encoder states. ``input_dim``, ``labels`` and ``scheme`` are wired by the model.

    ``loss(x, tags, mask)`` returns a scalar to minimise; ``decode(x, mask)`` returns the best tag
    ids ``(batch, seq)`` and the confidence of each chosen tag ``(batch, seq)`` in ``[0, 1]``.
    Shapes: ``x`` ``(batch, seq, input_dim)``, ``tags`` long ``(batch, seq)``, ``mask`` bool ``(batch, seq)``.
    """

    input_dim: int
    labels: list[str]
    scheme: str

    def __init__(self, input_dim: int, labels: Sequence[str], scheme: str = "IOB2") -> None:
        super().__init__()
        self.input_dim, self.labels, self.scheme = input_dim, list(labels), scheme

    @classmethod
    def estimate_size(cls, input_dim: int, labels: Sequence[str], /, **config: Any) -> "PartSize | None":
        """The part's size from its resolved config, input size and labels, before it is built (see
        :mod:`seqtag.resources`). ``None``, the default, means the part cannot tell."""
        return None

    @property
    def num_tags(self) -> int:
        return len(self.labels)

    def loss(self, x: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError
