"""The export hook: how a part hands the ONNX export its traceable form.

Every part kind's base class (:class:`~seqtag.embeddings.Embedding`, :class:`~seqtag.encoders.Encoder`,
:class:`~seqtag.heads.Head`) has an ``export_module()`` method. It returns an ``nn.Module`` whose
forward ``torch.onnx.export`` can trace: by default the part itself (an embedding or encoder whose
forward traces), for a head a :class:`HeadDecoder` around its ``decode``. A part overrides it when its
forward does not trace (data-dependent Python control flow, packed sequences, host-side caches), and a
part that has nested parts exports through their hooks (:func:`export_children`). A part without the
hook, or whose hook refuses, makes the export fail with a one-line :class:`~seqtag.errors.ExportError`
naming it (:func:`export_part`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import ExportError

if TYPE_CHECKING:
    from .heads.base import Head

__all__ = ["export_part", "export_children", "not_exportable", "HeadDecoder"]


def _registered_name(kind: str, cls: type) -> str | None:
    """The name ``cls`` is registered under as a part of ``kind``, if any (only asked on the error path)."""
    from .registry import get_registry

    try:
        return next((info.name for info in get_registry(kind).all() if info.obj is cls), None)
    except Exception:  # a broken plugin must not hide the error being reported
        return None


def not_exportable(kind: str, part: Any, reason: str) -> ExportError:
    """The one-line error for a ``kind`` part that cannot be exported, naming it and its class.

    Args:
        kind: ``"embedding"``, ``"encoder"`` or ``"head"``.
        part: The part.
        reason: Why, e.g. ``"it has no export_module()"``.
    """
    cls = type(part)
    name = _registered_name(kind, cls)
    named = f"{name!r} " if name else ""
    return ExportError(f"the {kind} {named}({cls.__module__}.{cls.__qualname__}) cannot be exported to ONNX: {reason}")


def export_part(kind: str, part: nn.Module, **options: Any) -> nn.Module:
    """``part``'s traceable form from its ``export_module(**options)`` hook.

    Raises:
        ExportError: The part has no hook (it does not derive from its kind's base class) or refuses.
    """
    hook = getattr(part, "export_module", None)
    if not callable(hook):
        raise not_exportable(kind, part, "it has no export_module()")
    module = hook(**options)
    if not isinstance(module, nn.Module):
        raise not_exportable(kind, part, f"its export_module() returned a {type(module).__name__}, not an nn.Module")
    return module


def export_children(part: nn.Module, attr: str, kind: str) -> nn.Module:
    """A shallow copy of ``part`` whose ``nn.ModuleList`` ``attr`` holds its children's export forms.

    The copy shares every weight and runs the part's own forward, so a composite part (a concatenation
    of embeddings, a stack of encoders) has one forward for PyTorch and for export.
    """
    clone = copy.copy(part)
    clone._modules = dict(part._modules)  # the copy's own table, so replacing a child leaves `part` as it is
    setattr(clone, attr, nn.ModuleList([export_part(kind, child) for child in getattr(part, attr)]))
    return clone


class HeadDecoder(nn.Module):
    """A head's export form: ``forward(x, mask) -> (tags, scores)`` by its ``decode``.

    Args:
        head: The head (a :class:`~seqtag.heads.Head`).
        with_confidence: Score each chosen tag (``True``) or return the mask as scores.
    """

    head: "Head"

    def __init__(self, head: "Head", with_confidence: bool = True) -> None:
        super().__init__()
        self.head, self.with_confidence = head, with_confidence

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tags long ``(batch, seq)`` and scores float ``(batch, seq)`` from ``x`` ``(batch, seq, input_dim)``
        and the bool ``mask`` ``(batch, seq)``; both are 0 at padding."""
        return self.head.decode(x, mask, with_confidence=self.with_confidence)
