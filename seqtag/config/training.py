"""The ``[training]`` table: the optimizer, the schedule, batching, stopping and checkpointing settings, checked."""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..errors import ConfigError
from .parts import value_fits
from .tables import check_table

__all__ = ["TrainingConfig"]

# the settings that are counts or sizes, and the least each may be
_AT_LEAST = (("max_epochs", 1), ("eval_batch_size", 1), ("patience", 1), ("max_steps", 0), ("lr_patience", 0),
             ("threads", 0), ("checkpoint_every", 0), ("max_train_sentences", 0), ("grad_clip", 0),
             ("weight_decay", 0), ("momentum", 0))
OPTIMIZERS = ("adam", "adamw", "sgd")
PRECISIONS = ("fp32", "bf16", "fp16")  # seqtag.devices checks the device can run the one chosen


@dataclass
class TrainingConfig:
    """The ``[training]`` table (docs/configuration.md describes each setting)."""

    optimizer: str = "adam"
    lr: float = 0.002
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 16
    max_epochs: int = 30
    max_steps: int = 0
    patience: int = 6
    grad_clip: float = 5.0
    lr_decay: float = 0.5
    lr_patience: int = 2
    seed: int = 0
    threads: int = 0
    checkpoint_every: int = 0
    eval_batch_size: int = 256
    max_train_sentences: int = 0
    device: str = "auto"
    precision: str = "fp32"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingConfig":
        """The settings of a ``[training]`` table, the missing ones at their defaults.

        Raises:
            ConfigError: A key that is not a setting, a value of the wrong type or out of range (one line).
        """
        check_table(data, [f.name for f in fields(cls)], "training")
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if not value_fits(value, hints[key]):
                raise ConfigError(f"[training] {key} must be {hints[key].__name__}, "
                                  f"got {type(value).__name__} {value!r}")
        cfg = cls(**data)
        if cfg.optimizer not in OPTIMIZERS:
            raise ConfigError(f"[training] optimizer must be 'adam', 'adamw' or 'sgd', got {cfg.optimizer!r}")
        if cfg.precision not in PRECISIONS:
            raise ConfigError(f"[training] precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
        if cfg.batch_size <= 0 or cfg.lr <= 0:
            raise ConfigError("[training] batch_size and lr must be positive")
        for key, low in _AT_LEAST:
            if getattr(cfg, key) < low:
                raise ConfigError(f"[training] {key} must be at least {low}, got {getattr(cfg, key)!r}")
        if not 0 < cfg.lr_decay <= 1:
            raise ConfigError(f"[training] lr_decay must be in (0, 1] (1: no decay), got {cfg.lr_decay!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain table, every one filled in (what the saved config holds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
