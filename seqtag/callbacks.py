"""Training callbacks: what notebooks and experiment trackers hear of a run, and the TensorBoard writer.

A callback is any object with one or both of these methods (a plain function counts as
``on_epoch_end``); the training loop (:func:`seqtag.trainer.train`) calls them, in the order given:

- ``on_epoch_end(epoch, scores)``: after each epoch is scored on dev, saved and checkpointed.
  ``epoch`` counts from 1; ``scores`` holds ``loss`` (the epoch's mean training loss), ``dev`` (the
  main dev score: entity F1 for NER, accuracy for POS, in percent), ``scores`` (``f1``/``precision``/
  ``recall`` or ``accuracy``, in percent), ``lr``, ``improved``, ``best_dev``, ``best_epoch`` and
  ``seconds``.
- ``on_train_end(summary)``: once, when the run has finished (``best_dev``, ``best_epoch``,
  ``epochs``, ``seconds``, ``seconds_to_best``, ``history``).

``--report-to tensorboard`` (``report_to="tensorboard"`` in :func:`seqtag.train`) adds a
:class:`TensorBoardCallback`, which needs the ``tensorboard`` package (``pip install 'pyseqtag[tensorboard]'``).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import ConfigError

__all__ = ["Callback", "TensorBoardCallback", "notify", "reporting_callbacks", "REPORT_TO"]

REPORT_TO = ("tensorboard",)


class Callback:
    """A base with both hooks doing nothing: subclass it and override what you need."""

    def on_epoch_end(self, epoch: int, scores: Mapping[str, Any]) -> None:
        """Called after each epoch (counted from 1) with its loss, dev scores and learning rate."""

    def on_train_end(self, summary: Mapping[str, Any]) -> None:
        """Called once when training has finished, with the run's summary."""


def notify(callbacks: Iterable[Any], hook: str, *args: Any) -> None:
    """Call ``hook`` on every callback that has it; a plain function is an ``on_epoch_end``."""
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is None and hook == "on_epoch_end" and callable(cb) and not hasattr(cb, "on_train_end"):
            method = cb
        if method is not None:
            method(*args)


class TensorBoardCallback(Callback):
    """Writes each epoch's training loss, dev score and learning rate as TensorBoard scalars.

    The event files go to ``log_dir/<date-time>/`` (one folder per run, so a resumed or repeated run
    in the same output folder, or the next of ``--seeds N``, does not mix its curves with the last
    one's). The writer is opened at the first epoch's end, so nothing is written into the output
    folder before the run has claimed it.

    Args:
        log_dir: The folder of runs (``OUTPUT/runs`` by default).

    Raises:
        ConfigError: ``tensorboard`` is not installed (one line naming the extra that installs it).
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("reporting to tensorboard needs the tensorboard package; install it with "
                              f"`pip install {_distribution()}[tensorboard]`") from None
        self._writer_class = SummaryWriter
        self.log_dir = Path(log_dir)
        self.run_dir: Path | None = None  # the folder of the run being written, once its first epoch ended
        self._writer: Any = None

    def on_epoch_end(self, epoch: int, scores: Mapping[str, Any]) -> None:
        if self._writer is None:
            self.run_dir = self.log_dir / datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            self._writer = self._writer_class(log_dir=str(self.run_dir))
        self._writer.add_scalar("train/loss", float(scores["loss"]), epoch)
        metric = "f1" if "f1" in scores.get("scores", {}) else "accuracy"  # the main score: NER's F1, POS's accuracy
        self._writer.add_scalar(f"dev/{metric}", float(scores["dev"]), epoch)
        self._writer.add_scalar("train/lr", float(scores["lr"]), epoch)
        self._writer.flush()  # a tracker reading the folder sees each epoch as it ends

    def on_train_end(self, summary: Mapping[str, Any]) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _distribution() -> str:
    """The name seqtag is installed under (the extra is named on it), ``seqtag`` when it cannot be told."""
    from importlib.metadata import packages_distributions

    return (packages_distributions().get(__package__ or "seqtag") or ["seqtag"])[0]


def reporting_callbacks(report_to: str | Sequence[str] | None, output: str | Path) -> list[Any]:
    """The callbacks ``--report-to`` names (``tensorboard``), logging under ``output/runs``.

    Raises:
        ConfigError: An unknown name, or a reporter whose package is not installed.
    """
    names = [report_to] if isinstance(report_to, str) else list(report_to or ())
    out: list[Any] = []
    for name in names:
        if name == "none":
            continue
        if name not in REPORT_TO:
            raise ConfigError(f"cannot report to {name!r}; expected one of: {', '.join(REPORT_TO)}")
        out.append(TensorBoardCallback(Path(output) / "runs"))
    return out
