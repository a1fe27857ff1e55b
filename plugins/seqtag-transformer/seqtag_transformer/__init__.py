"""A Transformer encoder for seqtag (``transformer.v1``), found through the ``seqtag.encoders`` entry point.

It exports to ONNX with the tagger (``seqtag export``): its export form (:meth:`TransformerEncoder.export_module`)
runs the same weights through :func:`traceable_layers`, which trace with a dynamic batch and length.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from seqtag.encoders import Encoder
from seqtag.errors import ConfigError
from seqtag.resources import PartSize

__all__ = ["TransformerEncoder", "sinusoidal_positions", "traceable_layers"]
__version__ = "0.1.0"

POSITIONS = ("sinusoidal", "learned", "none")


def sinusoidal_positions(length: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """The fixed positional encodings of Vaswani et al. (2017).

    Args:
        length: Number of positions.
        width: Vector size (even or odd).
        device: Where to build the tensor.

    Returns:
        A ``(length, width)`` float tensor: ``sin`` in even columns, ``cos`` in odd ones.
    """
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)  # shape: (length, 1)
    rates = torch.exp(torch.arange(0, width, 2, dtype=torch.float32, device=device)
                      * (-math.log(10000.0) / width))  # shape: (ceil(width / 2),)
    angles = pos * rates  # shape: (length, ceil(width / 2))
    # interleaved without writing into slices, so the function traces for ONNX with a dynamic length
    pe = torch.stack([torch.sin(angles), torch.cos(angles)], dim=2)  # shape: (length, ceil(width / 2), 2)
    return pe.flatten(1)[:, :width]  # shape: (length, width)


class TransformerEncoder(Encoder):
    """Transformer encoder: masked multi-head self-attention with sinusoidal or learned positions.

    The input is projected to ``width``, positions are added, and ``layers`` Transformer layers run
    with a key padding mask, so padding never changes a real position. Padded outputs are zero.

    Args:
        input_dim: Size of the input vectors (wired by the model).
        width: Model width (``d_model``); the output size.
        layers: Number of Transformer layers.
        heads: Attention heads per layer; must divide ``width``.
        ff_dim: Size of the feed-forward layer (0 means ``4 * width``).
        dropout: Dropout in the attention, feed-forward and after adding positions.
        positions: ``"sinusoidal"`` (any length), ``"learned"`` (up to ``max_length``) or ``"none"``.
        max_length: Longest sentence, in tokens, with learned positions.
        activation: ``"gelu"`` or ``"relu"``.
        norm_first: Layer norm before each sub-layer (pre-LN, stabler) instead of after it.
    """

    def __init__(self, input_dim: int, width: int = 128, layers: int = 2, heads: int = 4, ff_dim: int = 0,
                 dropout: float = 0.1, positions: str = "sinusoidal", max_length: int = 512,
                 activation: str = "gelu", norm_first: bool = True) -> None:
        super().__init__()
        self._check(width, layers, heads, ff_dim, dropout, positions, max_length, activation)
        self.input_dim, self.output_dim = input_dim, width
        self.width, self.positions, self.max_length = width, positions, max_length
        self.proj = nn.Linear(input_dim, width)
        self.position_embedding = nn.Embedding(max_length, width) if positions == "learned" else None
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=ff_dim or 4 * width, dropout=dropout,
                                           activation=activation, batch_first=True, norm_first=norm_first)
        self.layers = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width) if norm_first else None,
                                            enable_nested_tensor=False)

    @staticmethod
    def _check(width: int, layers: int, heads: int, ff_dim: int, dropout: float, positions: str, max_length: int,
               activation: str) -> None:
        """Refuse settings no Transformer can have."""
        if width <= 0 or layers <= 0 or heads <= 0:
            raise ConfigError(f"transformer.v1: width, layers and heads must be positive, "
                              f"got {width}, {layers}, {heads}")
        if ff_dim < 0:
            raise ConfigError(f"transformer.v1: ff_dim must be 0 (4 * width) or positive, got {ff_dim}")
        if width % heads:
            raise ConfigError(f"transformer.v1: heads ({heads}) must divide width ({width})")
        if positions not in POSITIONS:
            raise ConfigError(f"transformer.v1: positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
        if activation not in ("gelu", "relu"):
            raise ConfigError(f"transformer.v1: activation must be 'gelu' or 'relu', got {activation!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"transformer.v1: dropout must be in [0, 1), got {dropout}")
        if positions == "learned" and max_length <= 0:
            raise ConfigError(f"transformer.v1: max_length must be positive with learned positions, got {max_length}")

    @classmethod
    def estimate_size(cls, input_dim: int, /, *, width: int, layers: int, heads: int, ff_dim: int, dropout: float,
                      positions: str, max_length: int, activation: str, norm_first: bool,
                      **config: Any) -> PartSize:
        """The parameter count, before building (seqtag refuses a model too large for the machine's memory).

        Args:
            input_dim: Size of the input vectors.
            **config: The resolved config (every default filled in).

        Returns:
            The exact number of weights and the output size; activations: each layer's attention,
            feed-forward and norm outputs per token (the attention weights, which grow with the
            sentence's length, are left out).
        """
        cls._check(width, layers, heads, ff_dim, dropout, positions, max_length, activation)
        w, ff = width, ff_dim or 4 * width
        # attention: in_proj (3w x w + 3w) and out_proj (w x w + w); feed-forward: two linears; two layer norms
        per_layer = 4 * w * w + 4 * w + 2 * w * ff + ff + w + 4 * w
        params = (input_dim + 1) * w + layers * per_layer + (max_length * w if positions == "learned" else 0)
        params += 2 * w if norm_first else 0  # the final layer norm
        return PartSize(params, w, activations=w + layers * (6 * w + 2 * ff))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextualize ``x``.

        Args:
            x: Token vectors, shape ``(batch, seq, input_dim)``.
            mask: Bool ``(batch, seq)``, ``True`` at real tokens; ``None`` means all are real.

        Returns:
            Shape ``(batch, seq, width)``; zero at padded positions.
        """
        return self._encode(x, mask, _torch_layers)

    def export_module(self) -> nn.Module:
        """The encoder's form for the ONNX export (seqtag's export hook): this encoder with its Transformer
        layers run by :func:`traceable_layers` (PyTorch's attention modules trace with fixed sizes)."""
        return _ExportForm(self)

    def _encode(self, x: torch.Tensor, mask: torch.Tensor | None, run_layers: "LayersFn") -> torch.Tensor:
        """The forward pass with the layers run by ``run_layers`` (PyTorch's modules, or traceable for export)."""
        tracing = torch.jit.is_tracing()  # exported, the sizes are symbolic: no check on their values
        if not tracing and (x.dim() != 3 or x.size(2) != self.input_dim):
            raise ValueError(f"transformer.v1 expects (batch, seq, {self.input_dim}), got {tuple(x.shape)}")
        seq = x.size(1)
        h = self.proj(x)  # shape: (batch, seq, width)
        if self.positions == "sinusoidal":
            h = h + sinusoidal_positions(seq, self.width, x.device).to(h.dtype)  # shape: (batch, seq, width)
        elif self.position_embedding is not None:
            if not tracing and seq > self.max_length:
                raise ValueError(f"transformer.v1: a sentence of {seq} tokens is longer than max_length="
                                 f"{self.max_length} (learned positions); raise max_length or use sinusoidal positions")
            h = h + self.position_embedding(torch.arange(seq, device=x.device))  # shape: (batch, seq, width)
        h = self.drop(h)
        if mask is None:
            return run_layers(self.layers, h, None)  # shape: (batch, seq, width)
        padding = ~mask.bool()  # shape: (batch, seq), True at padding
        # a row with no real token would attend to nothing (NaN): let it see position 0 (no branch, so it traces)
        empty = padding.all(dim=1, keepdim=True)  # shape: (batch, 1)
        first = torch.arange(seq, device=x.device).unsqueeze(0) == 0  # shape: (1, seq)
        padding = padding & ~(empty & first)
        out = run_layers(self.layers, h, padding)  # shape: (batch, seq, width)
        return out.masked_fill(~mask.bool().unsqueeze(-1), 0.0)  # shape: (batch, seq, width)


LayersFn = Callable[[nn.TransformerEncoder, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _torch_layers(layers: nn.TransformerEncoder, h: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
    """PyTorch's Transformer layers (with their fused kernels in inference) over ``h`` ``(batch, seq, width)``."""
    return layers(h, src_key_padding_mask=padding)


def traceable_layers(layers: nn.TransformerEncoder, h: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
    """``layers(h, src_key_padding_mask=padding)`` in inference, written so that ``torch.onnx.export`` traces it
    with a dynamic batch and length (``nn.MultiheadAttention`` traces its reshapes with the example's sizes).

    Args:
        layers: Batch-first post- or pre-norm layers (in eval mode: no dropout).
        h: Inputs ``(batch, seq, width)``.
        padding: Bool ``(batch, seq)``, ``True`` where a key is padding; ``None``: none is.

    Returns:
        ``(batch, seq, width)``.
    """
    keep = None if padding is None else ~padding[:, None, None, :]  # shape: (batch, 1, 1, seq)
    for layer in layers.layers:
        assert isinstance(layer, nn.TransformerEncoderLayer)
        if layer.norm_first:
            h = h + _attention(layer.self_attn, layer.norm1(h), keep)
            h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
        else:
            h = layer.norm1(h + _attention(layer.self_attn, h, keep))
            h = layer.norm2(h + layer.linear2(layer.activation(layer.linear1(h))))
    return h if layers.norm is None else layers.norm(h)


def _attention(attn: nn.MultiheadAttention, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Self-attention of ``h`` ``(batch, seq, width)`` with ``attn``'s weights; ``keep`` bool ``(batch, 1, 1, seq)``
    marks the keys each query may see."""
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # shape: (batch, seq, width)

    def heads(t: torch.Tensor) -> torch.Tensor:  # shape: (batch, heads, seq, width / heads)
        return t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=keep)
    return attn.out_proj(out.transpose(1, 2).flatten(2))  # shape: (batch, seq, width)


class _ExportForm(nn.Module):
    """A :class:`TransformerEncoder` with its layers run by :func:`traceable_layers` (its ONNX export form)."""

    def __init__(self, encoder: TransformerEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder's output ``(batch, seq, width)`` for ``x`` ``(batch, seq, input_dim)`` and bool ``mask``."""
        return self.encoder._encode(x, mask, traceable_layers)
