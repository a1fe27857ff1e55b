"""Recurrent encoders: the Elman RNN ``s_t = f(U x_t + W s_{t-1})``, the LSTM and the GRU.

Each runs ``torch.nn.RNN``/``LSTM``/``GRU`` over packed sequences, so padding never changes a real
position, and holds exactly their weights (``encoder.rnn``), so results agree with them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import registry
from ..errors import ConfigError
from ..resources import PartSize
from .base import Encoder, lengths_of


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
        # run each direction on padded input (see _padded_forward); False uses packed sequences
        self.fused_padding = True

    @classmethod
    def _check(cls, hidden_size: int, num_layers: int, dropout: float) -> None:
        if hidden_size <= 0 or num_layers <= 0:
            raise ConfigError(f"{cls.__name__}: hidden_size and num_layers must be positive, "
                              f"got {hidden_size} and {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{cls.__name__}: dropout must be in [0, 1), got {dropout}")

    @classmethod
    def estimate_size(cls, input_dim: int, /, *, hidden_size: int, num_layers: int, bidirectional: bool,
                      dropout: float, **config: Any) -> PartSize:
        """torch's weights exactly: per layer and direction, ``gates`` blocks of ``W_ih``, ``W_hh`` and two biases."""
        cls._check(hidden_size, num_layers, dropout)
        h, dirs = hidden_size, 2 if bidirectional else 1

        def per_direction(n_in: int) -> int:
            return cls.gates * (n_in * h + h * h + 2 * h)

        params = dirs * (per_direction(input_dim) + (num_layers - 1) * per_direction(dirs * h))
        # per token, layer and direction: the gates' pre-activations, the cell and the state
        return PartSize(params, dirs * h, activations=num_layers * dirs * (cls.gates + 2) * h)

    def _rnn_kwargs(self) -> dict[str, object]:
        return dict(input_size=self.input_dim, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, dropout=self.dropout if self.num_layers > 1 else 0.0,
                    batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.size(2) != self.input_dim:
            raise ValueError(f"{type(self).__name__} expects (batch, seq, {self.input_dim}), got {tuple(x.shape)}")
        lengths = lengths_of(x, mask)  # shape: (batch,)
        if mask is None or bool((lengths == x.size(1)).all()):
            out, _ = self.rnn(x)  # shape: (batch, seq, output_dim)
            return out
        if self.fused_padding:
            return self._padded_forward(x, lengths)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))  # shape: (batch, seq, output_dim)
        return out


    def _padded_forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The recurrence without packing: each direction runs on end-padded input, which keeps the fused
        CPU kernels (several times faster than packed sequences, forward and backward); the backward
        direction reads each sequence reversed within its own length, so padding never reaches a real
        position and the result equals the packed one."""
        batch, seq, _ = x.shape
        pos = torch.arange(seq).unsqueeze(0)  # shape: (1, seq)
        rev = torch.where(pos < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - pos, pos)  # shape: (batch, seq)
        # row indices into the (batch * seq, dim) view: index_select is far faster than gather here
        rev = (rev + torch.arange(batch).unsqueeze(1) * seq).view(-1)  # shape: (batch * seq,)
        out = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                out = F.dropout(out, self.dropout, self.training)
            parts = [self._one_direction(out, layer, "")]
            if self.bidirectional:
                flipped = out.reshape(batch * seq, -1).index_select(0, rev).view(batch, seq, -1)
                y = self._one_direction(flipped, layer, "_reverse")  # shape: (batch, seq, hidden)
                parts.append(y.reshape(batch * seq, -1).index_select(0, rev).view(batch, seq, -1))
            out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]  # shape: (batch, seq, output_dim)
        pad = (pos >= lengths.unsqueeze(1)).unsqueeze(2)  # shape: (batch, seq, 1)
        if torch.is_inference_mode_enabled():  # no autograd graph holds `out`: zero the padding in place
            return out.masked_fill_(pad, 0.0)
        return out.masked_fill(pad, 0.0)

    def _one_direction(self, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        rnn = self.rnn
        params = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h0 = x.new_zeros(1, x.size(0), self.hidden_size)
        if isinstance(rnn, nn.LSTM):
            return torch.lstm(x, (h0, h0), params, True, 1, 0.0, False, False, True)[0]
        if isinstance(rnn, nn.GRU):
            return torch.gru(x, h0, params, True, 1, 0.0, False, False, True)[0]
        fn = torch.rnn_tanh if rnn.nonlinearity == "tanh" else torch.rnn_relu
        return fn(x, h0, params, True, 1, 0.0, False, False, True)[0]


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
        self.rnn = nn.RNN(nonlinearity=nonlinearity, **self._rnn_kwargs())  # type: ignore[arg-type]


@registry.encoders.register("lstm.v1")
class LSTMEncoder(RecurrentEncoder):
    """LSTM (forget, input and output gates over a cell state); stacked and/or bidirectional.

    Args:
        hidden_size: State size per direction.
        num_layers: Number of stacked layers.
        bidirectional: Run a second LSTM right to left and concatenate.
        dropout: Dropout between stacked layers.
    """

    gates = 4

    def __init__(self, input_dim: int, hidden_size: int = 200, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__(input_dim, hidden_size, num_layers, bidirectional, dropout)
        self.rnn = nn.LSTM(**self._rnn_kwargs())  # type: ignore[arg-type]


@registry.encoders.register("gru.v1")
class GRUEncoder(RecurrentEncoder):
    """GRU (update and reset gates); stacked and/or bidirectional.

    Args:
        hidden_size: State size per direction.
        num_layers: Number of stacked layers.
        bidirectional: Run a second GRU right to left and concatenate.
        dropout: Dropout between stacked layers.
    """

    gates = 3

    def __init__(self, input_dim: int, hidden_size: int = 200, num_layers: int = 1, bidirectional: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__(input_dim, hidden_size, num_layers, bidirectional, dropout)
        self.rnn = nn.GRU(**self._rnn_kwargs())  # type: ignore[arg-type]
