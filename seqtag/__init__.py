"""seqtag: part-of-speech taggers and named-entity recognisers from RNN-family encoders.

Importing ``seqtag`` is cheap: torch is imported only when a tagger is loaded, built or trained.

- :func:`load` opens a saved tagger; :func:`train` trains one from Python (``datasets`` objects,
  lists of ``(tokens, tags)`` pairs, or what ``seqtag train --dataset`` takes), as ``seqtag train`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .about import FORMAT_VERSION, __version__
from .api import train
from .errors import SeqtagError

if TYPE_CHECKING:
    from .tagger import Tagger

__all__ = ["__version__", "FORMAT_VERSION", "load", "train", "SeqtagError"]


def load(path: Any, verify: bool = True, device: Any = None, precision: str = "fp32") -> "Tagger":
    """Load a saved tagger directory (see :class:`seqtag.tagger.Tagger`); ``verify=False`` skips the check
    of its files against the SHA-256 manifest in ``meta.json``; ``device`` (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``, ``auto``; ``None``: the CPU) is where the network runs; ``precision``: ``fp32`` (as saved), or
    for faster prediction on the CPU ``bf16`` (the recurrences in bfloat16, on CPUs with native bfloat16)
    or ``int8`` (dynamic quantization); see :mod:`seqtag.quantize`."""
    from .quantize import load_precision

    return load_precision(path, precision, verify=verify, device=device)
