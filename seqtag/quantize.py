"""int8 inference on the CPU: a tagger whose LSTM/GRU and linear layers run PyTorch's dynamic quantization.

:func:`load_int8` (``seqtag predict --int8``) loads a saved tagger as usual, from its float32 weights,
and then replaces, in a copy of its network,

- the ``nn.LSTM``/``nn.GRU`` of each recurrent encoder (``lstm.v1``, ``gru.v1``, also inside
  ``stack.v1``) and of the ``char_lstm.v1`` embedding by ``torch.ao.nn.quantized.dynamic`` ones (int8
  weights, activations quantized on the fly at each step), which
  :func:`~seqtag.encoders.padded_rnn.padded_rnn` runs over the same padded, reversed batches;
- the heads' emission layer (``proj`` of ``crf.v1`` and ``softmax.v1``) by a dynamically quantized
  ``Linear``.

Everything else (embeddings, the character CNN, CRF decoding and its marginals) stays float32, and the
prediction loop is the one every runtime shares (:class:`~seqtag.inference.Predictor`). Nothing int8 is
ever written: the model folder keeps its float32 weights, and an :class:`Int8Tagger` refuses
:meth:`~Int8Tagger.save`. The int8 kernels are CPU ones, so the tagger stays on the CPU.

Activations are quantized with the range of each step's whole batch, so unlike float32 an int8 tag can
depend (rarely) on the other sentences of its batch; tests check that int8 agrees with float32 on most
tags, not exactly.

What it is worth on the default CoNLL-2003 NER model is measured by ``benchmarks/bench_int8.py``
(``benchmarks/results/int8.json``, docs/benchmarks.md, section "int8").
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as qdynamic

from .devices import resolve_device
from .embeddings.chars import CharLSTMEmbedding
from .encoders.rnn import GatedEncoder, RNNEncoder
from .errors import ConfigError, DeviceError
from .heads.base import Head
from .model import TaggerModel
from .tagger import Tagger

__all__ = ["Int8Tagger", "QuantizeError", "load_int8", "quantize", "quantize_model"]


class QuantizeError(ConfigError):
    """The model has no part that int8 quantization covers, or one it cannot run in int8 (one line)."""


class Int8Tagger(Tagger):
    """A :class:`~seqtag.tagger.Tagger` whose network is dynamically quantized (see the module's doc).

    It predicts and evaluates like any tagger, on the CPU only, and is never saved: save the float32
    tagger and load it again with :func:`load_int8`.
    """

    int8 = True

    def save(self, path: str | Path, scores: Any = None) -> None:
        """Refused: int8 weights are derived at load time, never written (one-line :class:`QuantizeError`)."""
        raise QuantizeError(f"{path}: an int8 tagger is not saved; save the float32 tagger and load it with "
                            "seqtag.quantize.load_int8 (seqtag predict --int8)")

    def to(self, device: str | torch.device | None) -> "Int8Tagger":
        """Stays on the CPU: ``cpu`` or ``None`` is accepted, any other device is a one-line :class:`DeviceError`."""
        target = resolve_device(device)
        if target.type != "cpu":
            raise DeviceError(f"an int8 tagger runs on the CPU only (PyTorch's int8 kernels are CPU ones), "
                              f"not on {target}; use the float32 tagger there")
        return self


def _targets(model: TaggerModel) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """``(owner, attribute, module)`` of each module that int8 replaces: the gated recurrences and the heads'
    emission layers. Raises :class:`QuantizeError` at an Elman RNN, which has no int8 kernel."""
    for name, part in model.named_modules():
        where = name or "the model"
        if isinstance(part, RNNEncoder):
            raise QuantizeError(f"{where}: rnn.v1 (an Elman RNN) has no int8 kernel in PyTorch; int8 covers "
                                "lstm.v1 and gru.v1 encoders (predict without --int8)")
        if isinstance(part, GatedEncoder) and type(part.rnn) in (nn.LSTM, nn.GRU):
            yield part, "rnn", part.rnn
        elif isinstance(part, CharLSTMEmbedding) and type(part.lstm) is nn.LSTM:
            yield part, "lstm", part.lstm
        elif isinstance(part, Head) and isinstance(proj := getattr(part, "proj", None), nn.Linear) \
                and type(proj) is nn.Linear:
            yield part, "proj", proj


def quantize_model(model: TaggerModel) -> TaggerModel:
    """Replace, in place, the LSTM/GRU recurrences and the heads' emission layers of the CPU network ``model``
    by dynamically quantized (int8) ones; returns ``model``, in eval mode, for inference only.

    Raises:
        QuantizeError: The model has no LSTM or GRU (a plugin's encoder, an Elman RNN): int8 would not
            speed it up, or cannot run it (one line).
        DeviceError: The model is not on the CPU.
    """
    params = next(model.parameters(), None)
    if params is not None and params.device.type != "cpu":
        raise DeviceError(f"int8 runs on the CPU only, and the model is on {params.device}; load it with "
                          "device='cpu'")
    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine not in engines or torch.backends.quantized.engine == "none":
        raise QuantizeError(f"this PyTorch build has no int8 CPU engine (it has {', '.join(engines)}); "
                            "predict without --int8")
    targets = list(_targets(model))
    if not any(isinstance(module, nn.RNNBase) for _, _, module in targets):
        encoder = type(model.encoder).__name__
        raise QuantizeError(f"nothing to run in int8: the model has no LSTM or GRU (its encoder is {encoder}); "
                            "int8 covers lstm.v1 and gru.v1 encoders and the char_lstm.v1 embedding "
                            "(predict without --int8)")
    from torch.ao.quantization import default_dynamic_qconfig

    model.eval()
    with warnings.catch_warnings():  # torch.ao's deprecation notices, said on every conversion
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        for owner, attribute, module in targets:
            module.qconfig = default_dynamic_qconfig  # type: ignore[assignment]
            kind = qdynamic.Linear if isinstance(module, nn.Linear) else (
                qdynamic.LSTM if isinstance(module, nn.LSTM) else qdynamic.GRU)
            setattr(owner, attribute, kind.from_float(module))
            del module.qconfig
    return model


def quantize(tagger: Tagger) -> Int8Tagger:
    """An :class:`Int8Tagger` of ``tagger`` (on the CPU): a quantized copy of its network; ``tagger`` is left
    as it was.

    Raises:
        QuantizeError: The model has nothing int8 covers, or a part it cannot run (see :func:`quantize_model`).
        DeviceError: ``tagger`` is not on the CPU.
    """
    model = quantize_model(copy.deepcopy(tagger.model))
    return Int8Tagger(tagger.config, tagger.labels, model, tagger.meta)


def load_int8(path: str | Path, verify: bool = True, device: str | torch.device | None = None) -> Int8Tagger:
    """Load the saved tagger in ``path`` (as :func:`seqtag.load`, from its float32 weights) and quantize it.

    ``device``: ``None``, ``cpu`` or ``auto`` (int8 runs on the CPU, whatever else there is).

    Raises:
        QuantizeError: The model has nothing int8 covers, or a part it cannot run (one line).
        DeviceError: A device other than the CPU was asked for.
        ModelLoadError: The folder cannot be loaded (one line naming the file).
    """
    if device is not None and str(device).strip().lower() != "auto" and resolve_device(device).type != "cpu":
        raise DeviceError(f"--int8 runs on the CPU only, and --device {device} was asked for; use --device cpu")
    tagger = Tagger.load(path, verify=verify)
    model = quantize_model(tagger.model)
    return Int8Tagger(tagger.config, tagger.labels, model, tagger.meta)
