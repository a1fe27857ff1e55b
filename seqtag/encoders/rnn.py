"""Recurrent encoders: the Elman RNN ``s_t = f(U x_t + W s_{t-1})``, the LSTM and the GRU.

Each holds exactly the weights of ``torch.nn.RNN``/``LSTM``/``GRU`` (``encoder.rnn``) and runs them
over padded batches with :func:`~seqtag.encoders.padded_rnn.padded_rnn`, so padding never changes a
real position and results agree with ``torch.nn``; the same forward traces for the ONNX export.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import registry
from ..errors import ConfigError
from ..resources import PartSize
from .base import Encoder, lengths_of
from .padded_rnn import padded_rnn


class RecurrentEncoder(Encoder):
    """Shared code of the RNN, LSTM and GRU encoders."""

    rnn: nn.RNNBase
    gates = 1  # weight blocks per layer and direction: 1 for the Elman RNN, 4 for the LSTM, 3 for the GRU

    def __init__(self, input_dim: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self._check(hidden_size, num_layers, dropout)
        self.input_dim, self.hidden_size, self.num_layers = input_dim, hidden_size, num_layers
        self.bidirectional, self.dropout = bidirectional, dropout
        self.output_dim = hidden_size * (2 if bidirectional else 1)
        # run each direction on padded input (see padded_rnn); False uses packed sequences
        self.fused_padding = True

    @classmethod
    def _check(cls, hidden_size: int, num_layers: int, dropout: float) -> None:
        if hidden_size <= 0 or num_layers <= 0:
            raise ConfigError(f"{cls.__name__}: hidden_size and num_layers must be positive, "
                              f"got {hidden_size} and {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{cls.__name__}: dropout must be in [0, 1), got {dropout}")

    @classmethod
    def estimate_size(cls, input_dim: int, /, *, hidden_size: int, num_layers: int, bidirectional: bool,  # type: ignore[override]
                      dropout: float, **config: Any) -> PartSize:
        """torch's weights exactly: per layer and direction, ``gates`` blocks of ``W_ih``, ``W_hh`` and two biases."""
        cls._check(hidden_size, num_layers, dropout)
        h, dirs = hidden_size, 2 if bidirectional else 1

        def per_direction(n_in: int) -> int:
            return cls.gates * (n_in * h + h * h + 2 * h)

        params = dirs * (per_direction(input_dim) + (num_layers - 1) * per_direction(dirs * h))
        # per token, layer and direction: the gates' pre-activations, the cell and the state
        return PartSize(params, dirs * h, activations=num_layers * dirs * (cls.gates + 2) * h)

    def _rnn_kwargs(self) -> dict[str, Any]:
        return dict(input_size=self.input_dim, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, dropout=self.dropout if self.num_layers > 1 else 0.0,
                    batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        lengths = lengths_of(x, mask)  # shape: (batch,)
        if torch.jit.is_tracing():  # the export: one recurrence for every batch, no branch on tensor values
            return padded_rnn(self.rnn, x, lengths)  # shape: (batch, seq, output_dim)
        if x.dim() != 3 or x.size(2) != self.input_dim:
            raise ValueError(f"{type(self).__name__} expects (batch, seq, {self.input_dim}), got {tuple(x.shape)}")
        if mask is None or bool((lengths == x.size(1)).all()):
            out, _ = self.rnn(x)  # shape: (batch, seq, output_dim)
            return out
        if self.fused_padding:
            return padded_rnn(self.rnn, x, lengths)  # shape: (batch, seq, output_dim)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))  # shape: (batch, seq, output_dim)
        return out


@registry.encoders.register("rnn.v1")
class RNNEncoder(RecurrentEncoder):
    """Elman RNN, ``s_t = f(U x_t + W s_{t-1})`` with ``f`` tanh or relu; stacked and/or bidirectional.

    Args:
        hidden_size: State size per direction.
        num_layers: Number of stacked layers.
        bidirectional: Run a second RNN right to left and concatenate.
        dropout: Dropout between stacked layers.
        nonlinearity: ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, input_dim: int, hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0, nonlinearity: str = "tanh") -> None:
        super().__init__(input_dim, hidden_size, num_layers, bidirectional, dropout)
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"rnn.v1: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.rnn = nn.RNN(nonlinearity=nonlinearity, **self._rnn_kwargs())


class GatedEncoder(RecurrentEncoder):
    """The LSTM and GRU encoders: ``rnn_class`` with ``gates`` weight blocks; stacked and/or bidirectional.

    Args:
        hidden_size: State size per direction.
        num_layers: Number of stacked layers.
        bidirectional: Run a second recurrence right to left and concatenate.
        dropout: Dropout between stacked layers.
    """

    rnn_class: type[nn.RNNBase]

    def __init__(self, input_dim: int, hidden_size: int = 200, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__(input_dim, hidden_size, num_layers, bidirectional, dropout)
        self.rnn = self.rnn_class(**self._rnn_kwargs())


@registry.encoders.register("lstm.v1")
class LSTMEncoder(GatedEncoder):
    """LSTM (forget, input and output gates over a cell state); stacked and/or bidirectional (arguments: see
    :class:`GatedEncoder`)."""

    gates = 4
    rnn_class = nn.LSTM


@registry.encoders.register("gru.v1")
class GRUEncoder(GatedEncoder):
    """GRU (update and reset gates); stacked and/or bidirectional (arguments: see :class:`GatedEncoder`)."""

    gates = 3
    rnn_class = nn.GRU
