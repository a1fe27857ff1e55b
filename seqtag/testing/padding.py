"""Padding invariance, the rule every tensor part keeps: what a real position gets does not depend on padding.

A batch pads its sentences to the longest one, and a bool mask ``(batch, seq)`` says which positions are
real. Whatever sits at the padded positions, and however wide the batch is, a sentence must get the
same vectors (embeddings, encoders), the same loss and the same tags and confidences (heads). The
contract of each kind builds its inputs and calls these helpers, so the rule is stated and checked once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from .common import close, fail, max_diff

if TYPE_CHECKING:
    import torch

__all__ = ["lengths_mask", "repad", "widen", "agree", "alone_as_padded"]

ADVICE = "padding must not change real positions: use the mask"


def lengths_mask(lengths: Sequence[int], width: int | None = None) -> "torch.Tensor":
    """The bool mask ``(batch, width)`` of sentences of ``lengths``, True at real positions."""
    import torch

    from ..masks import mask_from_lengths

    return mask_from_lengths(torch.tensor(list(lengths), dtype=torch.long), width)  # shape: (batch, width)


def repad(t: "torch.Tensor", mask: "torch.Tensor", other: "torch.Tensor") -> "torch.Tensor":
    """``t`` ``(batch, seq, ...)`` with the values of ``other`` (same shape) at the padded positions of ``mask``."""
    import torch

    keep = mask.reshape(mask.shape + (1,) * (t.dim() - mask.dim()))  # shape: (batch, seq, 1, ...)
    return torch.where(keep, t, other)


def widen(t: "torch.Tensor", extra: int, value: float | bool = 0) -> "torch.Tensor":
    """``t`` ``(batch, seq, ...)`` with ``extra`` more padded positions, holding ``value``, at the end."""
    import torch

    pad = t.new_full((t.size(0), extra) + tuple(t.shape[2:]), value)  # shape: (batch, extra, ...)
    return torch.cat([t, pad], dim=1)  # shape: (batch, seq + extra, ...)


def agree(kind: str, name: str, got: "torch.Tensor", want: "torch.Tensor", atol: float, what: str,
          advice: str = ADVICE, where: str = "") -> None:
    """Fail the contract with ``what`` (in the setting ``where``) and the largest difference unless ``got``
    equals ``want``."""
    if not close(got, want, atol):
        setting = f"{where}, " if where else ""
        raise fail("contract", kind, name, f"{what} ({setting}max diff {max_diff(got, want):.2e}); {advice}")


def alone_as_padded(kind: str, name: str, lengths: Sequence[int], padded: Sequence["torch.Tensor"],
                    alone: Callable[[int, int], Sequence["torch.Tensor"]], atol: float, what: str,
                    where: str = "") -> None:
    """Each sentence gives alone what it gives padded in the batch.

    Args:
        kind: The part's kind, for the message.
        name: The part's name, for the message.
        lengths: The sentences' lengths.
        padded: The part's outputs for the padded batch, each ``(batch, seq, ...)``.
        alone: ``alone(i, n)``: the same outputs for sentence ``i`` (``n`` tokens) alone, each ``(n, ...)``.
        atol: Largest difference allowed.
        what: What the outputs are, e.g. ``"the vectors"``.
        where: The setting, for the message, e.g. ``"scheme 'IOB2'"``.
    """
    width = padded[0].size(1)
    for i, n in enumerate(lengths):
        for full, single in zip(padded, alone(i, n)):
            agree(kind, name, single, full[i, :n], atol,
                  f"{what} of a sentence of {n} tokens differ alone and padded to {width}", where=where)
