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

import warnings
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic

from ..masks import mask_from_lengths

__all__ = ["padded_rnn", "Recurrence"]

# Each direction runs on its own weights, not a module's flattened buffer, so cuDNN copies them into one
# for each call; its warning about it would come on every run on a GPU.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk of memory",
                        category=UserWarning)

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
    # The backward direction's step t reads position flip[b, t] = length - 1 - t of sequence b (past the
    # end: the padding at t), and position p is read at step flip[b, p]. Its input is gathered straight
    # into the time-major layout the recurrence runs in and its output put back, as rows of the
    # (batch * seq, dim) views (index_select is far faster than gather here).
    pos = torch.arange(seq, device=x.device).unsqueeze(0)  # shape: (1, seq)
    flip = torch.where(real, lengths.unsqueeze(1) - 1 - pos, pos)  # shape: (batch, seq)
    sequence = torch.arange(batch, device=x.device).unsqueeze(1)  # shape: (batch, 1)
    rows = (flip + sequence * seq).t().reshape(-1)  # time-major row t * batch + b: batch-major row it reads
    weight = getattr(rnn, "weight_ih_l0", None)  # absent from a quantized recurrence
    # a bf16 tagger's recurrence: bfloat16 from here to the end, the input's dtype outside
    dtype = x.dtype if weight is None else weight.dtype
    cast = dtype != x.dtype
    out = x.to(dtype) if cast else x
    # no autograd graph to keep (and no trace: the export runs outside inference mode): write in place
    in_place = torch.is_inference_mode_enabled()
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            out = F.dropout(out, rnn.dropout, True)
        forward = _one_direction(rnn, out, layer, "")  # shape: (batch, seq, hidden)
        if not rnn.bidirectional:
            out = forward
            continue
        flipped = out.reshape(batch * seq, -1).index_select(0, rows).view(seq, batch, -1)
        y = _one_direction(rnn, flipped, layer, "_reverse", batch_first=False)  # shape: (seq, batch, hidden)
        y, hidden = y.reshape(seq * batch, -1), y.size(2)
        if in_place:  # time-major row k of the backward output belongs at batch-major row rows[k]
            out = forward.new_empty(batch, seq, 2 * hidden)
            out[:, :, :hidden] = forward
            out.view(batch * seq, 2 * hidden)[:, hidden:].index_copy_(0, rows, y)
        else:  # batch-major row b * seq + p reads time-major row flip[b, p] * batch + b
            back = (flip * batch + sequence).reshape(-1)
            out = torch.cat([forward, y.index_select(0, back).view(batch, seq, hidden)], dim=2)
    if cast:
        out = out.to(x.dtype)
    if in_place:  # zero the padded rows alone (a one-direction output is a time-major view)
        out = out.contiguous()
        out.view(batch * seq, -1).index_fill_(0, (~real).view(-1).nonzero().squeeze(1), 0.0)
        return out
    return out.masked_fill(~real.unsqueeze(2), 0.0)


def _one_direction(rnn: Recurrence, x: torch.Tensor, layer: int, suffix: str, batch_first: bool = True) -> torch.Tensor:
    """One layer and direction of ``rnn`` over ``x`` ``(batch, seq, in)`` from zero: ``(batch, seq, hidden)``
    (``batch_first`` false: ``(seq, batch, ...)`` both)."""
    if isinstance(rnn, (qdynamic.LSTM, qdynamic.GRU)):
        return _one_quantized_direction(rnn, x, layer, suffix, batch_first)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if rnn.bias else ("weight_ih", "weight_hh")
    params = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in names]
    h0 = x.new_zeros(1, x.size(0 if batch_first else 1), rnn.hidden_size)  # shape: (1, batch, hidden)
    # positional flags: bias, one layer, no dropout (padded_rnn applies it between layers), `train`, one
    # direction, batch first. `train` keeps what a backward pass needs: cuDNN refuses the backward of a
    # recurrence run with it off. It follows autograd, not rnn.training: a frozen or eval-mode module can
    # still pass gradients to its input. On a CPU it changes nothing.
    train = torch.is_grad_enabled()
    if isinstance(rnn, nn.LSTM):
        return torch.lstm(x, (h0, h0), params, rnn.bias, 1, 0.0, train, False, batch_first)[0]
    if isinstance(rnn, nn.GRU):
        return torch.gru(x, h0, params, rnn.bias, 1, 0.0, train, False, batch_first)[0]
    fn = torch.rnn_tanh if rnn.nonlinearity == "tanh" else torch.rnn_relu
    return fn(x, h0, params, rnn.bias, 1, 0.0, train, False, batch_first)[0]


def _one_quantized_direction(rnn: qdynamic.LSTM | qdynamic.GRU, x: torch.Tensor, layer: int,
                             suffix: str, batch_first: bool = True) -> torch.Tensor:
    """:func:`_one_direction` for a dynamically quantized LSTM or GRU: its packed int8 weights of ``layer``
    and the direction (kept layer by layer, forward then backward) run as a one-layer, one-direction stack."""
    directions = 2 if rnn.bidirectional else 1
    cell = [rnn._all_weight_values[layer * directions + (1 if suffix else 0)].param]
    h0 = x.new_zeros(1, x.size(0 if batch_first else 1), rnn.hidden_size)  # shape: (1, batch, hidden)
    # positional flags as in _one_direction: bias, one layer, no dropout, not training, one direction, batch first
    if isinstance(rnn, qdynamic.LSTM):
        return torch.quantized_lstm(x, (h0, h0), cell, rnn.bias, 1, 0.0, False, False, batch_first, dtype=rnn.dtype,
                                    use_dynamic=True)[0]
    return torch.quantized_gru(x, h0, cell, rnn.bias, 1, 0.0, False, False, batch_first)[0]
