"""Bool masks of real positions: the one place a ``(batch, seq)`` mask is built from sequence lengths."""

from __future__ import annotations

import torch

__all__ = ["mask_from_lengths"]


def mask_from_lengths(lengths: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """``True`` at the real positions of end-padded sequences.

    Args:
        lengths: Long ``(batch,)``, each sequence's length.
        width: The padded length (``seq``); ``None`` means the longest of ``lengths`` (1 for an empty batch).

    Returns:
        Bool ``(batch, seq)``: position ``t`` of row ``i`` is real when ``t < lengths[i]``.
    """
    if width is None:
        width = int(lengths.max()) if lengths.numel() else 1
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)  # shape: (batch, seq)
