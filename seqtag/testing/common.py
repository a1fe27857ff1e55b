"""What every check of the contract kit shares: the tiny corpus, the options, the report and the failure.

A failure is an :class:`AssertionError` whose message starts with ``[seqtag.testing CHECK] KIND 'NAME':``
so that a plugin author sees at once which check of which part failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .. import registry
from ..errors import SeqtagError

if TYPE_CHECKING:
    import torch

__all__ = ["CheckOptions", "CheckReport", "TINY_CORPUS", "TINY_LABELS", "write_tiny_corpus", "fail", "check_kind",
           "build", "close", "max_diff"]

# A tiny NER corpus (IOB2). Every word type has one tag, so any part, even one without context, can
# fit it; the lengths vary (1 to 17 tokens) so batches always hold padding.
_TINY = """\
John/B-PER Smith/I-PER lives/O in/O Paris/B-LOC ./O
Mary/B-PER works/O for/O Acme/B-ORG Corp/I-ORG in/O Berlin/B-LOC ./O
The/O Olympics/B-MISC opened/O in/O Tokyo/B-LOC yesterday/O ./O
Acme/B-ORG Corp/I-ORG hired/O John/B-PER Smith/I-PER ./O
Peter/B-PER visited/O Rome/B-LOC and/O Madrid/B-LOC ./O
Globex/B-ORG said/O profits/O rose/O ./O
Anna/B-PER and/O Peter/B-PER met/O at/O the/O Olympics/B-MISC ./O
Berlin/B-LOC is/O bigger/O than/O Rome/B-LOC ./O
Mary/B-PER Jones/I-PER joined/O Globex/B-ORG Industries/I-ORG ./O
It/O rained/O in/O Madrid/B-LOC ./O
Tokyo/B-LOC
Yesterday/O John/B-PER Smith/I-PER and/O Mary/B-PER Jones/I-PER flew/O from/O Paris/B-LOC to/O Tokyo/B-LOC \
with/O Acme/B-ORG Corp/I-ORG staff/O ,/O it/O said/O
"""

TINY_CORPUS: list[tuple[list[str], list[str]]] = [
    ([w.rsplit("/", 1)[0] for w in line.split()], [w.rsplit("/", 1)[1] for w in line.split()])
    for line in _TINY.splitlines() if line.strip()
]
"""``(tokens, IOB2 tags)`` pairs that every check trains on."""

TINY_LABELS: list[str] = sorted({t for _, tags in TINY_CORPUS for t in tags} | {"O"})
"""The IOB2 labels of :data:`TINY_CORPUS`, sorted: the label set of every tagger and head the checks build."""


@dataclass
class CheckOptions:
    """How hard the checks push.

    Args:
        max_steps: Most optimizer steps to fit the tiny corpus.
        lr: Adam learning rate for fitting.
        batch_size: Sentences per step (small, so batches hold padding).
        min_accuracy: Training token accuracy the tagger must reach, in ``[0, 1]``.
        eval_every: Steps between measurements of the training accuracy.
        seed: Seed of torch and of the batch order.
        fresh_process: Also load the saved tagger in a new Python process.
        timeout: Seconds the fresh process may take.
        atol: Largest difference allowed between confidences before and after loading, and between
            real positions with and without padding (losses too, relative to their size).
        context: Configs for the other slots of the tagger, e.g. ``{"encoder": {"type": "gru.v1"}}``.
        imports: Modules the fresh process imports before loading (for parts registered in code,
            not through an entry point; the module of such a part is imported automatically).
    """

    max_steps: int = 300
    lr: float = 0.01
    batch_size: int = 4
    min_accuracy: float = 1.0
    eval_every: int = 5
    seed: int = 0
    fresh_process: bool = True
    timeout: float = 300.0
    atol: float = 1e-4
    context: dict[str, Any] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """What :func:`~seqtag.testing.check_part` saw: the fitting run and the times."""

    kind: str
    name: str
    distribution: str
    version: str | None
    config: dict[str, Any]
    steps: int = 0
    train_accuracy: float = 0.0
    first_loss: float = math.nan
    last_loss: float = math.nan
    seconds: dict[str, float] = field(default_factory=dict)


def fail(check: str, kind: str, name: str, message: str) -> AssertionError:
    """The error a failed ``check`` raises: ``[seqtag.testing CHECK] KIND 'NAME': MESSAGE``."""
    return AssertionError(f"[seqtag.testing {check}] {kind} {name!r}: {message}")


def check_kind(kind: str) -> None:
    """Raise an :class:`AssertionError` naming the kinds unless ``kind`` is one of them."""
    if kind not in registry.KINDS:
        raise AssertionError(f"[seqtag.testing] unknown part kind {kind!r}; kinds: {', '.join(registry.KINDS)}")


def write_tiny_corpus(folder: str | Path) -> Path:
    """Write :data:`TINY_CORPUS` as ``train.conll``, ``dev.conll`` and ``test.conll`` (``token tag`` lines).

    For command-line tests: ``seqtag train --dataset FOLDER ...`` trains on it in seconds.

    Returns:
        The folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join("\n".join(f"{w} {t}" for w, t in zip(toks, tags)) + "\n" for toks, tags in TINY_CORPUS)
    for split in ("train", "dev", "test"):
        (out / f"{split}.conll").write_text(text, encoding="utf-8")
    return out


def build(kind: str, name: str, cfg: Mapping[str, Any], **wired: Any) -> Any:
    """Build the part from its resolved config and the wired arguments; a config error fails the contract."""
    from ..config import build_part

    try:
        return build_part(kind, cfg, **wired)
    except SeqtagError as exc:
        raise fail("contract", kind, name, f"does not build from {dict(cfg)!r}: {exc.one_line()}") from None


def close(a: "torch.Tensor", b: "torch.Tensor", atol: float) -> bool:
    """Same shape and equal within ``atol`` (and a relative 1e-4); integer tensors must be equal."""
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def max_diff(a: "torch.Tensor", b: "torch.Tensor") -> float:
    """The largest absolute difference, for messages; infinite when the shapes differ."""
    return float((a.double() - b.double()).abs().max()) if a.shape == b.shape and a.numel() else math.inf
