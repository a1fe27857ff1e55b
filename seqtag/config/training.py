"""The ``[training]`` table: the optimizer, the schedule, batching, stopping and checkpointing settings, checked."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
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


def _setting(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A setting's field: its default and its description (markdown, a link relative to docs/reference/;
    the configuration reference and ``seqtag init-config`` show it, see :mod:`seqtag.config.help`)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainingConfig:
    """The ``[training]`` table; each field's ``help`` metadata describes the setting."""

    optimizer: str = _setting("adam", "The optimizer.", OPTIMIZERS)
    lr: float = _setting(0.002, "The learning rate.")
    weight_decay: float = _setting(0.0, "Weight decay (L2 for `adam` and `sgd`, decoupled for `adamw`).")
    momentum: float = _setting(0.9, "Momentum of `sgd`.")
    batch_size: int = _setting(16, "Sentences per batch; batches are bucketed by length.")
    max_epochs: int = _setting(30, "Epochs at most; `--max-epochs`.")
    max_steps: int = _setting(0, "Optimizer steps at most (0: no limit).")
    patience: int = _setting(6, "Stop after this many epochs without a better dev score.")
    grad_clip: float = _setting(5.0, "Clip the gradient norm to this (0: no clipping).")
    sparse_embeddings: bool = _setting(
        True, "Train the word tables row-sparse (`adam`, `adamw`): rows catch up on the steps they missed before "
              "they are read, so the weights are Adam's, faster (`seqtag.optim`; dense with `weight_decay` or "
              "`average`).")
    lr_decay: float = _setting(0.5, "Multiply the learning rate by this when the dev score stalls for "
                                    "`lr_patience` epochs (1: no decay).")
    lr_patience: int = _setting(2, "Epochs without a better dev score before the learning rate decays.")
    seed: int = _setting(0, "The random seed; `--seed`.")
    threads: int = _setting(0, "CPU threads for torch (0: the CPUs not busy with other work, "
                               "[scale.md](../scale.md)); `--threads`.")
    checkpoint_every: int = _setting(0, "Also write the checkpoint every N steps (it is always written at each "
                                        "epoch's end; 0: only then).")
    eval_batch_size: int = _setting(256, "Sentences per batch when scoring dev and test.")
    max_train_sentences: int = _setting(0, "Train on the first N sentences only (0: all).")
    device: str = _setting("auto", "`cpu`, `cuda`, `cuda:N`, `mps` or `auto` (the first CUDA device when there "
                                   "is one); `--device`.")
    average: float = _setting(0.0, "Score dev and save an exponential moving average of the weights, updated "
                                    "after each step with this decay, e.g. 0.999 (0: off; "
                                    "`seqtag.averaging`).")
    calibrate: bool = _setting(True, "After training, fit the head's temperature on dev so that its confidences "
                                     "are calibrated (the tags stay the same; [calibration](../calibration.md)).")
    precision: str = _setting("fp32", "`fp32`, or mixed precision through `torch.autocast`: `bf16`, `fp16` "
                                      "(CUDA, with loss scaling).", PRECISIONS)

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
        for f in fields(cls):
            choices = f.metadata["choices"]
            if choices and getattr(cfg, f.name) not in choices:
                raise ConfigError(f"[training] {f.name} must be one of {', '.join(choices)}, "
                                  f"got {getattr(cfg, f.name)!r}")
        if cfg.batch_size <= 0 or cfg.lr <= 0:
            raise ConfigError("[training] batch_size and lr must be positive")
        for key, low in _AT_LEAST:
            if getattr(cfg, key) < low:
                raise ConfigError(f"[training] {key} must be at least {low}, got {getattr(cfg, key)!r}")
        if not 0 <= cfg.average < 1:
            raise ConfigError(f"[training] average must be in [0, 1) (0: off), got {cfg.average!r}")
        if not 0 < cfg.lr_decay <= 1:
            raise ConfigError(f"[training] lr_decay must be in (0, 1] (1: no decay), got {cfg.lr_decay!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain table, every one filled in (what the saved config holds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
