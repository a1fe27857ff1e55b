"""The head contract: a finite scalar loss that padded positions do not touch, and decoded tags and
confidences that padding does not change, for every scheme the model wires (IOB2, BIOES, ``none``)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Mapping

from .common import TINY_LABELS, build, fail
from .padding import agree, alone_as_padded, lengths_mask, repad, widen

if TYPE_CHECKING:
    import torch

__all__ = ["contract_head", "SCHEME_LABELS"]

INPUT_DIM = 10
LENGTHS = [6, 3, 1]  # a batch padded to 6 positions

_TYPES = sorted({tag[2:] for tag in TINY_LABELS if tag != "O"})
SCHEME_LABELS: dict[str, list[str]] = {
    "IOB2": TINY_LABELS,
    "BIOES": ["O"] + [f"{prefix}-{t}" for t in _TYPES for prefix in "BIES"],
    "none": ["ADJ", "DET", "NOUN", "PUNCT", "VERB"],  # POS tags: the model wires scheme 'none'
}
"""The labels a head is built with under each scheme the model wires."""

LOSS_ADVICE = ("the loss must ignore padded positions: reduce over the real positions only "
               "(e.g. logits[mask] and tags[mask])")


def contract_head(name: str, cfg: Mapping[str, Any], atol: float) -> None:
    """Check the head ``name`` built from ``cfg`` under each scheme of :data:`SCHEME_LABELS`.

    Raises:
        AssertionError: ``[seqtag.testing contract] head 'NAME': ...``.
    """
    import torch

    for scheme, labels in SCHEME_LABELS.items():
        head = build("head", name, cfg, input_dim=INPUT_DIM, labels=labels, scheme=scheme)
        gen = torch.Generator().manual_seed(0)
        mask = lengths_mask(LENGTHS)  # shape: (batch, seq)
        x = torch.randn(len(LENGTHS), mask.size(1), INPUT_DIM, generator=gen)  # shape: (batch, seq, input_dim)
        tags = torch.randint(len(labels), mask.shape, generator=gen).masked_fill(~mask, 0)  # padded as make_batch does
        _check_loss(head, name, x, tags, mask, gen, atol, f"scheme {scheme!r}")
        _check_decode(head, name, x, mask, gen, atol, f"scheme {scheme!r}")


def _check_loss(head: Any, name: str, x: "torch.Tensor", tags: "torch.Tensor", mask: "torch.Tensor",
                gen: "torch.Generator", atol: float, where: str) -> None:
    """A finite scalar; the same whatever features or tags sit at padded positions and however wide the
    batch is; it has a gradient with respect to ``x`` at real positions and none at padded ones."""
    import torch

    head.train()
    loss = head.loss(x, tags, mask)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not bool(torch.isfinite(loss)):
        raise fail("contract", "head", name, f"loss(x, tags, mask) must be a finite scalar tensor, got {loss!r} "
                   f"({where})")
    if any(p.requires_grad for p in head.parameters()):
        loss.backward()
    head.eval()  # no dropout: the same inputs must give the same loss
    xg = x.clone().requires_grad_(True)
    base = head.loss(xg, tags, mask)
    with torch.no_grad():
        other_x = repad(x, mask, 100 * torch.randn(x.shape, generator=gen))
        other_tags = repad(tags, mask, torch.randint(len(head.labels), tags.shape, generator=gen))
        other = head.loss(other_x, other_tags, mask)
        agree("head", name, other, base.detach(), atol, f"the loss changes from {float(base):.6g} to "
              f"{float(other):.6g} when the padded positions hold other features or tags", LOSS_ADVICE, where)
        wider = head.loss(widen(x, 3), widen(tags, 3), widen(mask, 3, False))
        agree("head", name, wider, base.detach(), atol, f"the loss changes from {float(base):.6g} to "
              f"{float(wider):.6g} when the batch is padded 3 positions wider", LOSS_ADVICE, where)
    if not base.requires_grad:
        raise fail("contract", "head", name, f"the loss carries no gradient back to the input ({where})")
    base.backward()
    grad = xg.grad  # shape: (batch, seq, input_dim)
    if grad is None or not bool(torch.isfinite(grad[mask]).all()) or not bool((grad[mask] != 0).any()):
        raise fail("contract", "head", name, f"no finite gradient of the loss reaches the input ({where})")
    leak = float(grad[~mask].abs().max())
    if leak != 0.0:
        raise fail("contract", "head", name, f"the loss has a gradient at padded positions of the input (up to "
                   f"{leak:.2e}, {where}), so it depends on them; {LOSS_ADVICE}")


def _takes_with_confidence(head: Any) -> bool:
    params = inspect.signature(head.decode).parameters
    return "with_confidence" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_decode(head: Any, name: str, x: "torch.Tensor", mask: "torch.Tensor", gen: "torch.Generator",
                  atol: float, where: str) -> None:
    """Long tag ids in range and confidences in ``[0, 1]``, both ``(batch, seq)`` and 0 at padding; the same
    at real positions whatever sits at padded positions, for each sentence alone, and (tags) without
    confidences."""
    import torch

    batch, seq = mask.shape
    if not _takes_with_confidence(head):
        raise fail("contract", "head", name, "decode must take with_confidence: bool = True; the model calls "
                   "decode(x, mask, with_confidence=False) when it needs only the tags")
    head.eval()
    with torch.no_grad():
        best, conf = head.decode(x, mask)  # shape: (batch, seq), (batch, seq)
        if tuple(best.shape) != (batch, seq) or tuple(conf.shape) != (batch, seq):
            raise fail("contract", "head", name, f"decode must return two (batch, seq) tensors {(batch, seq)}, got "
                       f"{tuple(best.shape)} and {tuple(conf.shape)} ({where})")
        if best.dtype != torch.long or bool(((best < 0) | (best >= len(head.labels)))[mask].any()):
            raise fail("contract", "head", name, f"decode must return long tag ids in [0, {len(head.labels)}), got "
                       f"{best.dtype} {best[mask].tolist()} ({where})")
        if bool(((conf < -1e-6) | (conf > 1 + 1e-6))[mask].any()) or not bool(torch.isfinite(conf[mask]).all()):
            raise fail("contract", "head", name, f"confidences must lie in [0, 1], got {conf[mask].tolist()} ({where})")
        fast, _ = head.decode(x, mask, with_confidence=False)  # shape: (batch, seq)
        if bool((best[~mask] != 0).any() or (conf[~mask] != 0).any() or (fast[~mask] != 0).any()):
            raise fail("contract", "head", name, f"decode must return 0 at padded positions, tags and confidences "
                       f"alike, e.g. best.masked_fill(~mask, 0) ({where})")
        agree("head", name, fast[mask], best[mask], atol, "decode(x, mask, with_confidence=False) gives other tags",
              "with_confidence=False may only skip computing the confidences", where)
        other = head.decode(repad(x, mask, 100 * torch.randn(x.shape, generator=gen)), mask)
        for what, got, want in (("tags", other[0], best), ("confidences", other[1], conf)):
            agree("head", name, got[mask], want[mask], atol, f"the decoded {what} at real positions change when the "
                  "padded positions hold other features", where=where)
        alone_as_padded("head", name, [int(n) for n in mask.sum(1)], [best, conf],
                        lambda i, n: [t[0] for t in head.decode(x[i:i + 1, :n], lengths_mask([n]))], atol,
                        "the decoded tags and confidences", where)
