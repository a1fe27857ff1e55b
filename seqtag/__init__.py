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


def load(path: Any, verify: bool = True, device: Any = None) -> "Tagger":
    """Load a saved tagger directory (see :class:`seqtag.tagger.Tagger`); ``verify=False`` skips the check
    of its files against the SHA-256 manifest in ``meta.json``; ``device`` (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``, ``auto``; ``None``: the CPU) is where the network runs."""
    from .tagger import Tagger

    return Tagger.load(path, verify=verify, device=device)
