"""Composite encoders: a stack that chains different encoders, and the identity."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .. import registry
from ..errors import ConfigError
from ..export_hook import export_children
from ..resources import PartSize, estimate_part
from .base import Encoder


@registry.encoders.register("stack.v1")
class StackEncoder(Encoder):
    """Chains encoders, e.g. an LSTM then a GRU, each wired to the previous one's output size.

    Args:
        layers: Configs of the encoders in order, e.g. ``[{type = "lstm.v1"}, {type = "gru.v1"}]``.
        residual: Add each layer's input to its output (projected when the sizes differ).
        dropout: Dropout between layers.
    """

    nested = {"layers": "encoder"}

    def __init__(self, input_dim: int, layers: Sequence[dict[str, Any]] = (), residual: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        from ..config import build_part

        self._check(layers)
        self.input_dim, self.residual = input_dim, residual
        self.layers = nn.ModuleList()
        self.projections = nn.ModuleList()
        dim = input_dim
        for cfg in layers:
            layer = build_part("encoder", cfg, input_dim=dim)
            self.layers.append(layer)
            out = layer.output_dim
            self.projections.append(nn.Linear(dim, out, bias=False) if residual and out != dim else nn.Identity())
            dim = out
        self.output_dim = dim
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def _check(layers: Sequence[dict[str, Any]]) -> None:
        if not layers:
            raise ConfigError("stack.v1: 'layers' must name at least one encoder")

    @classmethod
    def estimate_size(cls, input_dim: int, /, *, layers: Sequence[dict[str, Any]], residual: bool,  # type: ignore[override]
                      **config: Any) -> PartSize:
        """The layers' estimates, each wired to the previous output size, and the residual projections."""
        cls._check(layers)
        dim, params, activations = input_dim, 0, 0
        for cfg in layers:
            size = estimate_part("encoder", cfg, dim)
            out = size.output_dim
            params += size.parameters + (dim * out if residual and out != dim else 0)
            activations += size.activations + out
            dim = out
        return PartSize(params, dim, activations)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for i, (layer, proj) in enumerate(zip(self.layers, self.projections)):
            if i > 0:
                x = self.drop(x)
            out = layer(x, mask)  # shape: (batch, seq, layer.output_dim)
            x = out + proj(x) if self.residual else out
        return x

    def export_module(self) -> nn.Module:
        """This stack over the export forms of its layers."""
        return export_children(self, "layers", "encoder")


@registry.encoders.register("identity.v1")
class IdentityEncoder(Encoder):
    """Passes the embeddings through unchanged (a baseline with no context)."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = self.output_dim = input_dim

    @classmethod
    def estimate_size(cls, input_dim: int, /, **config: Any) -> PartSize:
        return PartSize(0, input_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x
