"""``torch.nn.RNN``/``LSTM``/``GRU`` over end-padded sequences without packing.

Each layer and direction runs the fused recurrence (``torch.lstm`` and friends) on the whole padded
batch, which keeps the fast CPU kernels (several times faster than packed sequences, forward and
backward) and traces for the ONNX export. The backward direction reads each sequence reversed within
its own length, so padding never reaches a real position and the real positions equal the packed
result. One implementation serves the recurrent encoders, the character BiLSTM and the export.

An int8 tagger (:mod:`seqtag.quantize`) holds ``torch.ao.nn.quantized.dynamic`` ``LSTM``/``GRU`` modules
in their place: each direction then runs torch's dynamically quantized recurrence (``torch.quantized_lstm``,
``torch.quantized_gru``) on the same padded, reversed input. A bf16 tagger's recurrences hold bfloat16
weights: each direction runs in bfloat16 and hands back the input's own dtype.
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic

from ..masks import mask_from_lengths

__all__ = ["padded_rnn", "Recurrence"]

Recurrence = Union[nn.RNNBase, qdynamic.LSTM, qdynamic.GRU]
"""What :func:`padded_rnn` runs: a torch recurrence, or its dynamically quantized (int8) LSTM or GRU."""


def padded_rnn(rnn: Recurrence, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run the batch-first ``rnn`` over end-padded ``x``; padded positions of the result are zero.

    Dropout between layers follows ``rnn.dropout`` and ``rnn.training``, as in ``rnn(x)``.

    Args:
        rnn: A batch-first ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (any layers, directions, bias), or a
            dynamically quantized ``LSTM``/``GRU`` (inference only).
        x: Inputs ``(batch, seq, input_size)``.
        lengths: Long ``(batch,)``, each sequence's length (at most ``seq``).

    Returns:
        ``(batch, seq, directions * hidden_size)``.
    """
    batch, seq = x.size(0), x.size(1)
    real = mask_from_lengths(lengths, seq)  # shape: (batch, seq)
    pos = torch.arange(seq, device=x.device).unsqueeze(0)  # shape: (1, seq)
    ends = lengths.unsqueeze(1)  # shape: (batch, 1)
    rev = torch.where(real, ends - 1 - pos, pos)  # shape: (batch, seq), each sequence reversed in place
    # row indices into the (batch * seq, dim) view: index_select is far faster than gather here
    rev = (rev + torch.arange(batch, device=x.device).unsqueeze(1) * seq).view(-1)  # shape: (batch * seq,)
    weight = getattr(rnn, "weight_ih_l0", None)  # absent from a quantized recurrence
    # a bf16 tagger's recurrence: bfloat16 from here to the end, the input's dtype outside
    dtype = x.dtype if weight is None else weight.dtype
    cast = dtype != x.dtype
    out = x.to(dtype) if cast else x
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            out = F.dropout(out, rnn.dropout, True)
        parts = [_one_direction(rnn, out, layer, "")]  # shape: (batch, seq, hidden)
        if rnn.bidirectional:
            flipped = out.reshape(batch * seq, -1).index_select(0, rev).view(batch, seq, -1)
            y = _one_direction(rnn, flipped, layer, "_reverse")  # shape: (batch, seq, hidden)
            parts.append(y.reshape(batch * seq, -1).index_select(0, rev).view(batch, seq, -1))
        out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]  # shape: (batch, seq, dirs * hidden)
    if cast:
        out = out.to(x.dtype)
    pad = ~real.unsqueeze(2)  # shape: (batch, seq, 1)
    if torch.is_inference_mode_enabled():  # no autograd graph holds `out`: zero the padding in place
        return out.masked_fill_(pad, 0.0)
    return out.masked_fill(pad, 0.0)


def _one_direction(rnn: Recurrence, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    """One layer and direction of ``rnn`` over ``x`` ``(batch, seq, in)`` from zero: ``(batch, seq, hidden)``."""
    if isinstance(rnn, (qdynamic.LSTM, qdynamic.GRU)):
        return _one_quantized_direction(rnn, x, layer, suffix)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if rnn.bias else ("weight_ih", "weight_hh")
    params = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in names]
    h0 = x.new_zeros(1, x.size(0), rnn.hidden_size)  # shape: (1, batch, hidden)
    # positional flags: bias, one layer, no dropout, not training, one direction, batch first
    if isinstance(rnn, nn.LSTM):
        return torch.lstm(x, (h0, h0), params, rnn.bias, 1, 0.0, False, False, True)[0]
    if isinstance(rnn, nn.GRU):
        return torch.gru(x, h0, params, rnn.bias, 1, 0.0, False, False, True)[0]
    fn = torch.rnn_tanh if rnn.nonlinearity == "tanh" else torch.rnn_relu
    return fn(x, h0, params, rnn.bias, 1, 0.0, False, False, True)[0]


def _one_quantized_direction(rnn: qdynamic.LSTM | qdynamic.GRU, x: torch.Tensor, layer: int,
                             suffix: str) -> torch.Tensor:
    """:func:`_one_direction` for a dynamically quantized LSTM or GRU: its packed int8 weights of ``layer``
    and the direction (kept layer by layer, forward then backward) run as a one-layer, one-direction stack."""
    directions = 2 if rnn.bidirectional else 1
    cell = [rnn._all_weight_values[layer * directions + (1 if suffix else 0)].param]
    h0 = x.new_zeros(1, x.size(0), rnn.hidden_size)  # shape: (1, batch, hidden)
    # positional flags as in _one_direction: bias, one layer, no dropout, not training, one direction, batch first
    if isinstance(rnn, qdynamic.LSTM):
        return torch.quantized_lstm(x, (h0, h0), cell, rnn.bias, 1, 0.0, False, False, True, dtype=rnn.dtype,
                                    use_dynamic=True)[0]
    return torch.quantized_gru(x, h0, cell, rnn.bias, 1, 0.0, False, False, True)[0]
