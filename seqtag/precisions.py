"""The precisions a saved tagger runs in for inference, checked without importing torch (the spaCy component
checks its ``precision`` setting when it is made; :mod:`seqtag.quantize` runs them)."""

from __future__ import annotations

from .errors import QuantizeError

__all__ = ["PRECISIONS", "check_precision"]

PRECISIONS = ("fp32", "int8", "bf16")
"""How a saved tagger can run for inference: as saved (float32), or through :func:`seqtag.quantize.load_int8`
or :func:`seqtag.quantize.load_bf16`."""


def check_precision(precision: object, where: str = "") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line :class:`~seqtag.errors.QuantizeError`
    (``where`` in front, e.g. ``"seqtag component 'ner': "``)."""
    if precision not in PRECISIONS:
        raise QuantizeError(f"{where}unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return str(precision)
