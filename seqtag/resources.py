"""Memory sanity: a model's size estimated from its config before any weight is allocated.

A config (given with ``--set``, or read from an untrusted model's ``config.json``) can ask for
``hidden_size = 1000000000`` or ``num_layers = 1000000000``. Built as asked, the first fails deep
inside torch and the second loops for hours allocating layer after layer. :class:`seqtag.model.TaggerModel`
therefore calls :func:`check_model` first: each part estimates its own size from its resolved config
with a closed formula (the classmethod hook ``estimate_size``, see below), so even absurd values are
refused at once, and the total is compared with the memory the machine has.

The hook, on a part class (built-in parts all have one; plugin parts may)::

    @classmethod
    def estimate_size(cls, input_dim, /, **config) -> PartSize  # encoders
    def estimate_size(cls, input_dim, labels, /, **config) -> PartSize  # heads
    def estimate_size(cls, vocab: VocabSource, /, **config) -> PartSize  # embeddings

``config`` is the part's config with every default filled in (:func:`seqtag.config.resolve`); the
hook checks the values the constructor would refuse (with the same message) before it computes
anything. A part without the hook (or whose hook returns ``None``) counts as no parameters, and each
integer in its config above :data:`SANE_SIZE` is refused instead, since nothing smaller can be told
apart from a real size without knowing the part.

Overrides: ``SEQTAG_MAX_MEMORY=64G`` sets the limit; ``SEQTAG_MEMORY_CHECK=0`` turns the check off.

This module imports no torch: the CLI uses :func:`out_of_memory` to recognise torch's allocation failures.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import ConfigError, ResourceError

__all__ = [
    "PartSize",
    "VocabSource",
    "ModelSize",
    "SANE_SIZE",
    "MEMORY_CHECK_ENV",
    "MAX_MEMORY_ENV",
    "estimate_part",
    "estimate_model",
    "check_enabled",
    "memory_limit",
    "check_model",
    "parse_bytes",
    "format_bytes",
    "out_of_memory",
]

MEMORY_CHECK_ENV = "SEQTAG_MEMORY_CHECK"
MAX_MEMORY_ENV = "SEQTAG_MAX_MEMORY"
SANE_SIZE = 2 ** 24  # the largest integer a part without an estimate may hold in its config
FLOAT_BYTES = 4  # weights and activations are float32
TRAINING_COPIES = 4  # in training each weight also has a gradient and Adam's two moments
_OOM_WORDS = ("can't allocate memory", "cannot allocate memory", "not enough memory", "out of memory")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


@dataclass(frozen=True)
class PartSize:
    """What a part will hold, estimated from its config.

    Args:
        parameters: Number of weights (exact for the built-in parts, given the vocabulary sizes).
        output_dim: Size of the vectors the part gives the next one (0 when unknown).
        activations: Floats per token the forward pass keeps for the backward pass (rough; training only).
        estimated: ``False`` for a part that gave no estimate (it counts as nothing).
    """

    parameters: int
    output_dim: int
    activations: int = 0
    estimated: bool = True


@dataclass(frozen=True)
class VocabSource:
    """What bounds an embedding's vocabularies: the training data (a new model) or the saved assets (a loaded one).

    Args:
        words: Distinct word forms in the training sentences (an upper bound of a word vocabulary).
        chars: Distinct characters in them.
        loaded: The model is loaded: its vocabularies are the saved ``assets``.
        assets: This embedding's saved assets (what its ``get_assets`` returned), for a loaded model.
    """

    words: int = 0
    chars: int = 0
    loaded: bool = False
    assets: Any = None

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sequence[str]]) -> "VocabSource":
        words = {w for s in sentences for w in s}
        return cls(words=len(words), chars=len(set().union(*words)) if words else 0)

    def part(self, key: str) -> "VocabSource":
        """The source of a nested embedding whose assets are saved under ``key`` (as ``concat.v1`` does)."""
        assets = self.assets.get(key) if isinstance(self.assets, Mapping) else None
        return VocabSource(self.words, self.chars, self.loaded, assets)

    def size(self, key: str, counted: int) -> int:
        """Entries of a vocabulary with ``<pad>`` and ``<unk>``: the length of the saved list ``assets[key]``
        for a loaded model, else ``counted`` (a bound from the training data)."""
        if not self.loaded:
            return counted + 2
        items = self.assets.get(key) if isinstance(self.assets, Mapping) else None
        return (len(items) if isinstance(items, (list, tuple)) else 0) + 2


@dataclass(frozen=True)
class ModelSize:
    """A whole model's estimate: its parts' sizes by slot and the longest training sentence (0 when loading)."""

    parts: dict[str, tuple[str, PartSize]]
    longest: int = 0

    @property
    def parameters(self) -> int:
        return sum(size.parameters for _, size in self.parts.values())

    def bytes(self, training: bool) -> int:
        """Weights only when loading; for training also gradients, Adam's moments and the activations
        of one batch holding the longest sentence (a lower bound: a batch holds more)."""
        if not training:
            return FLOAT_BYTES * self.parameters
        per_token = sum(size.activations for _, size in self.parts.values())
        return FLOAT_BYTES * (TRAINING_COPIES * self.parameters + per_token * self.longest)

    def largest(self) -> tuple[str, str, int]:
        """``(slot, type, parameters)`` of the part with the most parameters."""
        slot, (name, size) = max(self.parts.items(), key=lambda item: item[1][1].parameters)
        return slot, name, size.parameters


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_plain_sizes(kind: str, name: str, config: Mapping[str, Any], where: str = "") -> None:
    """A part that cannot estimate its size is refused when its config holds an integer above ``SANE_SIZE``."""
    for key, value in config.items():
        path = f"{where}.{key}" if where else str(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(values):
            item_path = f"{path}[{i}]" if isinstance(value, (list, tuple)) else path
            if isinstance(item, Mapping):
                _check_plain_sizes(kind, name, item, item_path)
            elif _plain_int(item) and item > SANE_SIZE:
                raise ResourceError(
                    f"{kind} {name!r}: {item_path} = {item:,} is larger than any sane size ({SANE_SIZE:,}) and the "
                    f"part cannot estimate its memory; lower it, or set {MEMORY_CHECK_ENV}=0 to build it anyway")


def estimate_part(kind: str, cfg: Mapping[str, Any], *wired: Any) -> PartSize:
    """Estimate one part from its config, before it is built.

    Args:
        kind: ``embedding``, ``encoder`` or ``head``.
        cfg: The part's config (``type`` and keyword arguments); checked and completed as by ``build_part``.
        wired: What the model wires in: a :class:`VocabSource` for an embedding, ``input_dim`` for an
            encoder, ``input_dim`` and the labels for a head.

    Returns:
        The part's estimate; ``PartSize(0, 0, estimated=False)`` for a part without an ``estimate_size``
        hook, once its config's integers passed the generic check.
    """
    from . import registry
    from .config import resolve

    resolved = resolve(kind, cfg)  # the same ConfigError for a wrong key or type as building would give
    name = resolved["type"]
    config = {k: v for k, v in resolved.items() if k != "type"}
    hook = getattr(registry.get_registry(kind).get(name), "estimate_size", None)
    size = hook(*wired, **config) if hook is not None else None
    if size is None:
        if check_enabled():
            _check_plain_sizes(kind, name, config)
        return PartSize(0, 0, estimated=False)
    return size


def estimate_model(model_cfg: Mapping[str, Any], labels: Sequence[str],
                   sentences: Sequence[Sequence[str]] | None = None,
                   assets: Mapping[str, Any] | None = None) -> ModelSize:
    """Estimate a :class:`~seqtag.model.TaggerModel` from its ``model`` config, as the model would be built:
    from the training ``sentences`` (a new model) or from the saved ``assets`` (a loaded one)."""
    if assets is not None:
        vocab = VocabSource(loaded=True, assets=assets.get("embedding"))
    else:
        vocab = VocabSource.from_sentences(sentences or [])
    embedding = estimate_part("embedding", model_cfg["embedding"], vocab)
    encoder = estimate_part("encoder", model_cfg["encoder"], embedding.output_dim)
    head = estimate_part("head", model_cfg["head"], encoder.output_dim, list(labels))
    # dropout keeps a mask and an output per vector it drops (after the embedding and after the encoder)
    dropout = PartSize(0, 0, 2 * (embedding.output_dim + encoder.output_dim))
    parts = {"embedding": (model_cfg["embedding"]["type"], embedding),
             "encoder": (model_cfg["encoder"]["type"], encoder),
             "head": (model_cfg["head"]["type"], head),
             "dropout": ("dropout", dropout)}
    longest = max((len(s) for s in sentences), default=0) if assets is None and sentences else 0
    return ModelSize(parts, longest)


def parse_bytes(text: str) -> int:
    """``64G``, ``512M``, ``1.5T``, ``2GiB`` or a plain number of bytes; K, M, G, T and P are powers of 1024."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:I?B)?\s*", text.upper())
    if match is None:
        raise ConfigError(f"{MAX_MEMORY_ENV}={text!r}: expected a size such as 64G, 512M or 1000000000 (bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_bytes(n: int) -> str:
    """``n`` bytes for people: ``12.3 GiB``; beyond the units (1024 EiB), in powers of ten."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{float(n):.1e} bytes"


def _count(n: int) -> str:
    return f"{n:,}" if n < 10 ** 12 else f"{float(n):.1e}"


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+([0-9]+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _cgroup_free() -> int | None:
    """What a cgroup v2 memory limit (a container's) leaves; ``None`` without a limit."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text(encoding="ascii").strip()
        used = (root / "memory.current").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not limit.isdigit() or not used.isdigit():  # "max": no limit
        return None
    return max(int(limit) - int(used), 0)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_enabled() -> bool:
    """Whether sizes are checked at all (``SEQTAG_MEMORY_CHECK=0`` turns the check off)."""
    return os.environ.get(MEMORY_CHECK_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def memory_limit() -> tuple[int, str] | None:
    """The bytes a model may take and where that figure comes from, or ``None`` when nothing is checked
    (``SEQTAG_MEMORY_CHECK=0``, or the machine's memory is unknown)."""
    if not check_enabled():
        return None
    raw = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if raw:
        return parse_bytes(raw), f"set by {MAX_MEMORY_ENV}={raw}"
    # available rather than total memory: what other programs hold cannot be had without swapping
    figures = ((_meminfo_available(), "available"), (_cgroup_free(), "left by the cgroup limit"))
    found = [(n, what) for n, what in figures if n is not None]
    if found:
        return min(found)
    total = _physical_memory()
    return (total, "of physical memory") if total else None


def check_model(model_cfg: Mapping[str, Any], labels: Sequence[str], sentences: Sequence[Sequence[str]] | None = None,
                assets: Mapping[str, Any] | None = None) -> ModelSize:
    """Refuse, with one line, a model whose estimate is above the memory limit (:func:`memory_limit`).

    Training (``sentences`` given) counts gradients, Adam's moments and activations too; loading
    (``assets`` given) counts the weights. Sizes that a part's constructor would refuse (``hidden_size
    = 0``) are refused here, with its message. Returns the estimate.
    """
    size = estimate_model(model_cfg, labels, sentences, assets)
    limit = memory_limit()
    training = assets is None
    need = size.bytes(training)
    if limit is not None and need > limit[0]:
        slot, name, largest = size.largest()
        raise ResourceError(
            f"the model needs about {format_bytes(need)} of memory to {'train' if training else 'load'} "
            f"({_count(size.parameters)} parameters, {_count(largest)} of them in the {slot} {name!r}), more than "
            f"the {format_bytes(limit[0])} {limit[1]}; lower the model's sizes, or set {MAX_MEMORY_ENV} "
            f"(e.g. {MAX_MEMORY_ENV}=64G) if the machine has more, or {MEMORY_CHECK_ENV}=0 to skip this check")
    return size


def out_of_memory(exc: BaseException) -> ResourceError | None:
    """The one-line error for an allocation failure (``MemoryError``, torch's ``OutOfMemoryError`` or a
    ``RuntimeError`` saying it could not allocate), or ``None`` for any other exception (a bug)."""
    if isinstance(exc, MemoryError):
        detail = str(exc)
    elif isinstance(exc, RuntimeError):
        torch = sys.modules.get("torch")  # torch's own error type, if torch is loaded at all
        oom_type = getattr(torch, "OutOfMemoryError", ()) if torch is not None else ()
        detail = str(exc)
        if not (oom_type and isinstance(exc, oom_type)) and not any(w in detail.lower() for w in _OOM_WORDS):
            return None
    else:
        return None
    # torch's CPU allocator prefixes its message with the C++ check that failed: not for users
    detail = re.sub(r"^\[enforce fail at [^\]]*\][^.]*\.\s*", "", " ".join(detail.split()))
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return ResourceError(f"out of memory{f' ({detail})' if detail else ''}; lower the batch size (--batch-size, "
                         f"or --set training.batch_size=N in train) or the model size")
