"""The base class of encoders: ``(batch, seq, input_dim)`` in, ``(batch, seq, output_dim)`` out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ..resources import PartSize


class Encoder(nn.Module):
    """Contextualizes token vectors. ``input_dim`` is wired by the model, never set by the user.

    ``forward(x, mask)`` takes ``x`` of shape ``(batch, seq, input_dim)`` and a bool ``mask`` of
    shape ``(batch, seq)`` (``None`` means every position is real) and returns
    ``(batch, seq, output_dim)``. Padding must not change any real position.
    """

    input_dim: int
    output_dim: int

    @classmethod
    def estimate_size(cls, input_dim: int, /, **config: Any) -> "PartSize | None":
        """The part's size from its resolved config and input size, before it is built (see
        :mod:`seqtag.resources`). ``None``, the default, means the part cannot tell."""
        return None

    def get_input_dim(self) -> int:
        return self.input_dim

    def get_output_dim(self) -> int:
        return self.output_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def export_module(self) -> nn.Module:
        """The encoder's traceable form for the ONNX export: ``forward(x, mask) -> (batch, seq, output_dim)``,
        with ``mask`` always given.

        The default is the encoder itself, in eval mode: an encoder whose forward traces needs nothing
        more (no Python branch on tensor values while ``torch.jit.is_tracing()``). Override it otherwise,
        or raise :func:`seqtag.export_hook.not_exportable` for an encoder that cannot be exported (see
        :mod:`seqtag.export_hook`).
        """
        return self


def lengths_of(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sequence lengths ``(batch,)`` from a bool mask ``(batch, seq)`` (all ``seq`` when ``None``)."""
    if mask is None:
        return torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)
    return mask.sum(dim=1).to(torch.long)
