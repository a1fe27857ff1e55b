"""An iterated dilated CNN encoder for seqtag (``idcnn.v1``), after Strubell et al. (2017).

"Fast and Accurate Entity Recognition with Iterated Dilated Convolutions" (EMNLP 2017): a block of
dilated 1-D convolutions whose receptive field grows exponentially with depth is applied several
times with the same weights. Every layer is a convolution over the whole sentence at once, so it
runs much faster on a CPU than a recurrent encoder. It exports to ONNX with the tagger (``seqtag export``):
its forward traces as it is (:meth:`IDCNNEncoder.export_module`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from seqtag.encoders import Encoder
from seqtag.errors import ConfigError
from seqtag.resources import PartSize

__all__ = ["IDCNNEncoder"]
__version__ = "0.1.0"


class IDCNNEncoder(Encoder):
    """Iterated dilated CNN (Strubell et al., 2017): a block of dilated convolutions applied repeatedly.

    A convolution first maps the input to ``filters`` channels; then the block (one convolution per
    entry of ``dilations``, each followed by ReLU) runs ``iterations`` times, with the same weights
    each time when ``share_weights`` is on. Padded positions are set to zero before every
    convolution, so padding never changes a real position (the convolutions pad with zeros too).
    With kernel 3, dilations ``[1, 1, 2]`` and 4 iterations each token sees 33 tokens either side.

    Args:
        input_dim: Size of the input vectors (wired by the model).
        filters: Channels of every convolution; the output size.
        kernel_size: Width of every convolution (odd).
        dilations: Dilations of the convolutions of one block.
        iterations: How many times the block runs.
        share_weights: Reuse the block's weights in every iteration (the paper's choice).
        dropout: Dropout on the input of every iteration.
        residual: Add each iteration's input to its output.
        identity_init: Start the block's convolutions near the identity (centre tap), as in the paper.
    """

    def __init__(self, input_dim: int, filters: int = 128, kernel_size: int = 3,
                 dilations: Sequence[int] = (1, 1, 2), iterations: int = 4, share_weights: bool = True,
                 dropout: float = 0.0, residual: bool = False, identity_init: bool = True) -> None:
        super().__init__()
        dilations = self._check(filters, kernel_size, dilations, iterations, dropout)
        self.input_dim, self.output_dim = input_dim, filters
        self.kernel_size, self.dilations, self.iterations = kernel_size, dilations, iterations
        self.share_weights, self.residual = share_weights, residual
        self.initial = nn.Conv1d(input_dim, filters, kernel_size, padding=kernel_size // 2)
        n_blocks = 1 if share_weights else iterations
        self.blocks = nn.ModuleList(
            nn.ModuleList(nn.Conv1d(filters, filters, kernel_size, dilation=d, padding=d * (kernel_size // 2))
                          for d in dilations)
            for _ in range(n_blocks))
        if identity_init:
            self._identity_init()
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def _check(filters: int, kernel_size: int, dilations: Sequence[int], iterations: int, dropout: float) -> list[int]:
        """Refuse sizes no convolution can have; returns the dilations as ints."""
        if filters <= 0 or iterations <= 0:
            raise ConfigError(f"idcnn.v1: filters and iterations must be positive, got {filters} and {iterations}")
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ConfigError(f"idcnn.v1: kernel_size must be a positive odd number, got {kernel_size}")
        dilations = [int(d) for d in dilations]
        if not dilations or any(d <= 0 for d in dilations):
            raise ConfigError(f"idcnn.v1: dilations must be a non-empty list of positive ints, got {dilations}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"idcnn.v1: dropout must be in [0, 1), got {dropout}")
        return dilations

    @classmethod
    def estimate_size(cls, input_dim: int, /, *, filters: int, kernel_size: int, dilations: Sequence[int],
                      iterations: int, share_weights: bool, dropout: float, **config: Any) -> PartSize:
        """The parameter count, before building (seqtag refuses a model too large for the machine's memory).

        Args:
            input_dim: Size of the input vectors.
            **config: The resolved config (every default filled in).

        Returns:
            The exact number of weights and the output size; activations: the outputs of every convolution.
        """
        dilations = cls._check(filters, kernel_size, dilations, iterations, dropout)
        f, k = filters, kernel_size
        blocks = 1 if share_weights else iterations
        params = input_dim * f * k + f + blocks * len(dilations) * (f * f * k + f)
        return PartSize(params, f, activations=(1 + iterations * len(dilations)) * f)

    def _identity_init(self) -> None:
        centre = self.kernel_size // 2
        with torch.no_grad():
            for block in self.blocks:
                for conv in block:
                    conv.weight.mul_(0.1)
                    conv.weight[:, :, centre] += torch.eye(conv.out_channels, conv.in_channels)
                    conv.bias.zero_()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextualize ``x``.

        Args:
            x: Token vectors, shape ``(batch, seq, input_dim)``.
            mask: Bool ``(batch, seq)``, ``True`` at real tokens; ``None`` means all are real.

        Returns:
            Shape ``(batch, seq, filters)``; zero at padded positions.
        """
        # exported, the sizes are symbolic: no check on their values
        if not torch.jit.is_tracing() and (x.dim() != 3 or x.size(2) != self.input_dim):
            raise ValueError(f"idcnn.v1 expects (batch, seq, {self.input_dim}), got {tuple(x.shape)}")
        keep = None if mask is None else mask.bool().unsqueeze(1).to(x.dtype)  # shape: (batch, 1, seq)

        def masked(h: torch.Tensor) -> torch.Tensor:  # shape: (batch, channels, seq)
            return h if keep is None else h * keep

        h = masked(x.transpose(1, 2))  # shape: (batch, input_dim, seq)
        h = masked(torch.relu(self.initial(h)))  # shape: (batch, filters, seq)
        for it in range(self.iterations):
            block = self.blocks[0 if self.share_weights else it]
            inp = h
            h = masked(self.drop(h))
            for conv in block:
                h = masked(torch.relu(conv(h)))  # shape: (batch, filters, seq)
            if self.residual:
                h = h + inp
        return h.transpose(1, 2)  # shape: (batch, seq, filters)

    def export_module(self) -> nn.Module:
        """The encoder's form for the ONNX export (seqtag's export hook): the encoder itself, as its forward
        is convolutions and masking only, which trace with a dynamic batch and length."""
        return self
