"""Devices: where a tagger trains and runs.

One resolver serves every place a device is named: ``--device`` on ``train``, ``evaluate``,
``predict`` and ``export``, ``training.device`` in a config, ``seqtag.load(path, device=...)`` and
the spaCy component's ``device`` setting. ``auto`` is the first CUDA device when torch sees one,
else Apple's ``mps``, else the CPU. A device asked for and absent is one :class:`DeviceError` line.

Mixed precision (``training.precision = "bf16" | "fp16"``) runs the network under
:func:`torch.autocast`; fp16 needs CUDA and scales the loss with :class:`torch.amp.GradScaler`.
Weights are always saved as float32 on the CPU, so a model trained on one device loads on any other.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, ContextManager

import torch

from .config.training import PRECISIONS
from .errors import DeviceError

__all__ = ["DEVICES", "PRECISIONS", "resolve_device", "to_device", "autocast", "grad_scaler", "check_precision"]

DEVICES = "cpu, cuda, cuda:N, mps or auto"
_SPEC = re.compile(r"^(cpu|cuda|mps|auto)(?::(\d+))?$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """The :class:`torch.device` a setting names (``None`` or ``""``: the CPU).

    Raises:
        DeviceError: An unknown name, or a device that is not there (``cuda`` without a CUDA device,
            ``cuda:3`` on a machine with two, ``mps`` off Apple silicon).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "cpu").strip().lower()
    m = _SPEC.match(text)
    if m is None:
        raise DeviceError(f"unknown device {spec!r}; expected {DEVICES}")
    kind, index = m.group(1), m.group(2)
    if kind == "auto":
        if index is not None:
            raise DeviceError(f"unknown device {spec!r}; expected {DEVICES}")
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(f"the device {spec!r} was asked for, but torch finds no Apple MPS device here; "
                              f"use --device cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise DeviceError(f"the device {spec!r} was asked for, but torch finds no CUDA device ({why}); "
                          f"use --device cpu or auto")
    count = torch.cuda.device_count()
    n = int(index) if index is not None else torch.cuda.current_device()
    if n >= count:
        have = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise DeviceError(f"the device {spec!r} was asked for, but this machine's CUDA devices are {have}")
    return torch.device("cuda", n)


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors (in dicts, lists and tuples, as a batch's features hold them) moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (torch.Tensor, dict, list, tuple)) for v in obj):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def check_precision(precision: str, device: torch.device) -> None:
    """``fp32``, ``bf16`` (CUDA or CPU) or ``fp16`` (CUDA only); anything else is one :class:`DeviceError` line."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"training.precision = 'fp16' needs a CUDA device, and this run is on {device}; "
                          f"use 'bf16' or 'fp32'")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"training.precision = 'bf16': {device} does not support bfloat16; use 'fp16'")


def autocast(device: torch.device, precision: str = "fp32") -> ContextManager[Any]:
    """The mixed-precision context of ``precision`` on ``device`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> Any:
    """A loss scaler for fp16 (gradients would underflow without it); a disabled one otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
