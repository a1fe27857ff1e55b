"""The shape of a config: which keys the config and each of its tables take, and what ``[model]`` holds.

A key outside the allowed ones is an error naming the keys the table takes, never a setting that is
silently ignored. The part tables inside ``[model]`` are checked by :mod:`seqtag.config.parts`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..jsonio import short_repr, shown
from ..registry import KINDS

__all__ = ["check_keys", "check_table", "check_top_level", "check_model_table",
           "CONFIG_KEYS", "DATA_KEYS", "MODEL_KEYS"]

CONFIG_KEYS = ("task", "scheme", "data", "model", "training")
DATA_KEYS = ("dataset", "tag_column", "scheme", "strict", "streaming", "stream_sample")
MODEL_KEYS = (*KINDS, "dropout")


def check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str, kind: str = "key") -> None:
    """A key outside ``allowed`` is an error naming the keys ``where`` takes, not a setting silently ignored."""
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where} takes no {kind} {short_repr(key)}; it takes: {', '.join(allowed)}")


def check_table(table: Any, allowed: Sequence[str], name: str) -> None:
    """``[name]`` is a table holding only keys from ``allowed``."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table, got {shown(table)}")
    check_keys(table, allowed, f"[{name}]")


def check_top_level(cfg: Mapping[str, Any]) -> None:
    """A config holds ``task``, ``scheme`` and the ``[data]``, ``[model]`` and ``[training]`` tables."""
    check_keys(cfg, CONFIG_KEYS, "the config", "top-level key")
    check_table(cfg.get("data", {}), DATA_KEYS, "data")


def check_model_table(model: Any) -> None:
    """``[model]`` holds the part tables and ``dropout`` (a number in [0, 1)), nothing else."""
    check_table(model, MODEL_KEYS, "model")
    dropout = model.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"[model] dropout must be a number in [0, 1), got {shown(dropout)}")
