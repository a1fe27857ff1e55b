"""A run's history beside its model: ``history.jsonl``, one line per finished epoch.

Each line holds the epoch (from 1), its mean training loss, the dev score (entity F1 or token
accuracy, in percent), the learning rate the epoch trained with, its training tokens per second and
the seconds of training so far. The file is rewritten whole and atomically after each epoch from the
run's saved state, so a resumed run continues it and a killed one never leaves half a line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from .atomic import atomic_write_bytes

__all__ = ["HISTORY", "write_history", "read_history"]

HISTORY = "history.jsonl"


def write_history(folder: str | Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write ``folder/history.jsonl`` from a run's history (:attr:`seqtag.trainer.TrainState.history`)."""
    text = "".join(json.dumps(dict(entry), sort_keys=False) + "\n" for entry in history)
    atomic_write_bytes(Path(folder) / HISTORY, text.encode("utf-8"))


def read_history(folder: str | Path) -> list[dict[str, Any]]:
    """The epochs of ``folder/history.jsonl`` (an empty list when there is none)."""
    path = Path(folder) / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
