"""seqtag: part-of-speech taggers and named-entity recognisers from RNN-family encoders.

Importing ``seqtag`` is cheap: torch is imported only when a tagger is loaded or built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .about import FORMAT_VERSION, __version__
from .errors import SeqtagError

if TYPE_CHECKING:
    from .tagger import Tagger

__all__ = ["__version__", "FORMAT_VERSION", "load", "SeqtagError"]


def load(path: Any, verify: bool = True) -> "Tagger":
    """Load a saved tagger directory (see :class:`seqtag.tagger.Tagger`); ``verify=False`` skips the check
    of its files against the SHA-256 manifest in ``meta.json``."""
    from .tagger import Tagger

    return Tagger.load(path, verify=verify)
