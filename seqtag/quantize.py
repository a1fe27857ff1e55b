"""Reduced-precision inference on the CPU: int8 (PyTorch dynamic quantization) and bfloat16 recurrences.

:func:`load_int8` (``seqtag predict --int8``) loads a saved tagger as usual, from its float32 weights,
and then replaces, in a copy of its network,

- the ``nn.LSTM``/``nn.GRU`` of each recurrent encoder (``lstm.v1``, ``gru.v1``, also inside
  ``stack.v1``) and of the ``char_lstm.v1`` embedding by ``torch.ao.nn.quantized.dynamic`` ones (int8
  weights, activations quantized on the fly at each step), which
  :func:`~seqtag.encoders.padded_rnn.padded_rnn` runs over the same padded, reversed batches;
- the heads' emission layer (``proj`` of ``crf.v1`` and ``softmax.v1``) by a dynamically quantized
  ``Linear``.

:func:`load_bf16` (``seqtag predict --bf16``) casts the same recurrences (and ``rnn.v1``'s) to bfloat16:
each direction runs oneDNN's fused recurrent kernel in bfloat16 and hands float32 back, so the embeddings,
the emission layer, CRF decoding and marginals stay float32. It needs a CPU with native bfloat16
arithmetic (AVX512-BF16 or AMX); elsewhere bfloat16 would be emulated and slower, and loading says so.

Everything else stays float32, and the prediction loop is the one every runtime shares
(:class:`~seqtag.inference.Predictor`). Nothing reduced is ever written: the model folder keeps its float32
weights, and a :class:`ReducedTagger` refuses :meth:`~ReducedTagger.save`. These kernels are CPU ones, so
the tagger stays on the CPU.

Activations are quantized with the range of each step's whole batch, so unlike float32 an int8 tag can
depend (rarely) on the other sentences of its batch; bfloat16 keeps 8 bits of mantissa. Tests check that
both agree with float32 on most tags, not exactly.

What they are worth on the default CoNLL-2003 NER model is measured by ``benchmarks/bench_int8.py``
(``benchmarks/results/int8_amx.json`` on a CPU with AMX, where bf16 is the fast path; ``int8.json`` on one
without; docs/benchmarks.md, section "int8 and bf16").
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
from .errors import DeviceError, QuantizeError
from .heads.base import Head
from .model import TaggerModel
from .precisions import PRECISIONS, check_precision
from .tagger import Tagger

__all__ = ["Bf16Tagger", "Int8Tagger", "PRECISIONS", "QuantizeError", "ReducedTagger", "bf16_model", "load_bf16",
           "cpu_summary", "load_int8", "load_precision", "native_bf16", "quantize", "quantize_model", "reduced"]



class ReducedTagger(Tagger):
    """A :class:`~seqtag.tagger.Tagger` whose network runs in reduced precision (int8 or bf16, see the module's
    doc). It predicts and evaluates like any tagger, on the CPU only, and is never saved: save the float32
    tagger and load it again with :func:`load_int8` or :func:`load_bf16`.
    """

    precision = "fp32"  # what the subclass runs: "int8" or "bf16"

    def save(self, path: str | Path, scores: Any = None) -> None:
        """Refused: reduced weights are derived at load time, never written (one-line :class:`QuantizeError`)."""
        raise QuantizeError(f"{path}: a tagger in {self.precision} is not saved; save the float32 tagger and load it "
                            f"with seqtag.quantize.load_{self.precision} (seqtag predict --{self.precision})")

    def to(self, device: str | torch.device | None) -> "ReducedTagger":
        """Stays on the CPU: ``cpu`` or ``None`` is accepted, any other device is a one-line :class:`DeviceError`."""
        target = resolve_device(device)
        if target.type != "cpu":
            raise DeviceError(f"a tagger in {self.precision} runs on the CPU only (its kernels here are CPU ones), "
                              f"not on {target}; use the float32 tagger there")
        return self


class Int8Tagger(ReducedTagger):
    """A tagger whose network is dynamically quantized (see the module's doc)."""

    precision = "int8"
    int8 = True


class Bf16Tagger(ReducedTagger):
    """A tagger whose recurrences run in bfloat16 (see the module's doc)."""

    precision = "bf16"


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
    _model_on_cpu(model, "int8")
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
    return reduced(tagger, "int8")  # type: ignore[return-value]


def load_int8(path: str | Path, verify: bool = True, device: str | torch.device | None = None) -> Int8Tagger:
    """Load the saved tagger in ``path`` (as :func:`seqtag.load`, from its float32 weights) and quantize it.

    ``device``: ``None``, ``cpu`` or ``auto`` (int8 runs on the CPU, whatever else there is).

    Raises:
        QuantizeError: The model has nothing int8 covers, or a part it cannot run (one line).
        DeviceError: A device other than the CPU was asked for.
        ModelLoadError: The folder cannot be loaded (one line naming the file).
    """
    return _load_reduced(path, "int8", verify, device)  # type: ignore[return-value]


# the CPU features reduced precision depends on, and torch's probe of each
_FEATURES = {"avx512_bf16": "_is_avx512_bf16_supported", "amx": "_is_amx_tile_supported", "vnni": "_is_vnni_supported"}


def _cpu_features() -> dict[str, bool]:
    return {name: bool(getattr(torch.cpu, probe, lambda: False)()) for name, probe in _FEATURES.items()}


def native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX tiles), as oneDNN's kernels need."""
    features = _cpu_features()
    return features["avx512_bf16"] or features["amx"]


def cpu_summary() -> dict[str, Any]:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux, else ``platform.processor()``) and the features
    reduced precision depends on: AVX512-BF16, AMX tiles (bfloat16 matrix products; the bf16 recurrence
    gains most with them) and VNNI (int8). What the benchmarks record beside their figures."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return {"model": name, **_cpu_features()}


def _cast_in(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A bf16 recurrence called as a module (sequences of one length, packed ones): its input in bfloat16."""
    return (args[0].to(torch.bfloat16), *args[1:])


def _cast_out(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    """... and its output (sequence, states) back in float32."""
    out, state = output
    state = tuple(s.float() for s in state) if isinstance(state, tuple) else state.float()
    return out.to(torch.float32), state


def bf16_model(model: TaggerModel) -> TaggerModel:
    """Cast, in place, the recurrences of the CPU network ``model`` (the LSTM/GRU/RNN of its encoders and of
    ``char_lstm.v1``) to bfloat16; returns ``model``, in eval mode, for inference only. Their inputs and
    outputs stay float32 (:func:`~seqtag.encoders.padded_rnn.padded_rnn` casts each direction).

    Raises:
        QuantizeError: The model has no recurrence (a plugin's encoder), or the CPU has no native bfloat16
            (one line).
        DeviceError: The model is not on the CPU.
    """
    _model_on_cpu(model, "bf16")
    if not native_bf16():
        raise QuantizeError("this CPU has no native bfloat16 arithmetic (AVX512-BF16 or AMX), so bf16 would be "
                            "slower than float32; predict without --bf16 (or try --int8)")
    targets = [m for m in model.modules() if type(m) in (nn.LSTM, nn.GRU, nn.RNN)]
    if not targets:
        encoder = type(model.encoder).__name__
        raise QuantizeError(f"nothing to run in bf16: the model has no LSTM, GRU or RNN (its encoder is "
                            f"{encoder}); predict without --bf16")
    model.eval()
    for rnn in targets:
        rnn.to(torch.bfloat16)
        rnn.register_forward_pre_hook(_cast_in)
        rnn.register_forward_hook(_cast_out)
    return model


def load_bf16(path: str | Path, verify: bool = True, device: str | torch.device | None = None) -> Bf16Tagger:
    """Load the saved tagger in ``path`` (as :func:`seqtag.load`, from its float32 weights) and cast its
    recurrences to bfloat16 (:func:`bf16_model`).

    ``device``: ``None``, ``cpu`` or ``auto`` (bf16 runs on the CPU, whatever else there is).

    Raises:
        QuantizeError: The model has no recurrence, or the CPU has no native bfloat16 (one line).
        DeviceError: A device other than the CPU was asked for.
        ModelLoadError: The folder cannot be loaded (one line naming the file).
    """
    return _load_reduced(path, "bf16", verify, device)  # type: ignore[return-value]


def _model_on_cpu(model: TaggerModel, precision: str) -> None:
    params = next(model.parameters(), None)
    if params is not None and params.device.type != "cpu":
        raise DeviceError(f"{precision} runs on the CPU only, and the model is on {params.device}; load it with "
                          "device='cpu'")


_CONVERSIONS = {"int8": (quantize_model, Int8Tagger), "bf16": (bf16_model, Bf16Tagger)}


def reduced(tagger: Tagger, precision: str, in_place: bool = False) -> Tagger:
    """``tagger`` to run in ``precision``: itself for ``fp32``, else a :class:`ReducedTagger` whose network is
    converted by :func:`quantize_model` (int8) or :func:`bf16_model` (bf16).

    The conversion works on a copy of the network that shares every parameter outside the recurrences with
    ``tagger`` (which is left as it was and can go on training); ``in_place``: on ``tagger``'s own network,
    for a tagger loaded only to be converted.

    Raises:
        QuantizeError: An unknown precision, or one the model or the CPU cannot run (one line).
        DeviceError: ``tagger`` is not on the CPU.
    """
    check_precision(precision)
    if precision == "fp32":
        return tagger
    convert, kind = _CONVERSIONS[precision]
    model = tagger.model
    if not in_place:  # (the conversion refuses a model off the CPU, as in place)
        # the recurrences are converted (bf16 casts their weights in place): they alone are copied
        recurrent = {id(p) for m in model.modules() if isinstance(m, nn.RNNBase) for p in m.parameters()}
        model = copy.deepcopy(model, {id(p): p for p in model.parameters() if id(p) not in recurrent})
    return kind(tagger.config, tagger.labels, convert(model), tagger.meta)


def _load_reduced(path: str | Path, precision: str, verify: bool, device: str | torch.device | None) -> Tagger:
    """:func:`load_int8` and :func:`load_bf16`: the saved float32 tagger, its network converted on the CPU."""
    if device is not None and str(device).strip().lower() != "auto" and resolve_device(device).type != "cpu":
        raise DeviceError(f"--{precision} runs on the CPU only, and --device {device} was asked for; use --device cpu")
    return reduced(Tagger.load(path, verify=verify), precision, in_place=True)


def load_precision(path: str | Path, precision: str = "fp32", verify: bool = True,
                   device: str | torch.device | None = None) -> Tagger:
    """Load the saved tagger in ``path`` to run in ``precision``: ``fp32`` (:meth:`Tagger.load
    <seqtag.tagger.Tagger.load>`, on ``device``), ``int8`` (:func:`load_int8`) or ``bf16`` (:func:`load_bf16`);
    what ``seqtag predict`` and ``seqtag evaluate`` load with ``--int8`` or ``--bf16``.

    Raises:
        QuantizeError: An unknown precision, or one the model or the CPU cannot run (one line).
    """
    if check_precision(precision) == "fp32":
        return Tagger.load(path, verify=verify, device=device)
    return _load_reduced(path, precision, verify, device)
