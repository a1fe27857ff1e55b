"""Errors that seqtag reports to its users.

Every error a user can cause derives from :class:`SeqtagError`. The CLI prints such an error as
one line (no traceback) and exits with status 2. Messages say what was wrong, where it was
(``file:line`` for data) and what would have been right.
"""

from __future__ import annotations

import signal

__all__ = [
    "SeqtagError",
    "ConfigError",
    "DataError",
    "RegistryError",
    "ModelLoadError",
    "PluginMissingError",
    "HubUnavailableError",
    "TrainingDivergedError",
    "ResourceError",
    "DeviceError",
    "DistributedError",
    "ExportError",
    "QuantizeError",
    "Interrupted",
]


class SeqtagError(Exception):
    """Base class of every error that a user's input can cause."""

    exit_code = 2

    def one_line(self) -> str:
        """The message on one line, as the CLI prints it."""
        return " ".join(str(self).split())


class ConfigError(SeqtagError):
    """A configuration names an unknown part, a key a part does not take, or a wrong value type."""


class RegistryError(ConfigError):
    """A registry lookup or registration failed (unknown or duplicate name)."""


class DataError(SeqtagError):
    """Bad data: the message starts with ``file:line:`` when the place is known."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ModelLoadError(SeqtagError):
    """A saved tagger directory cannot be loaded (missing, truncated, wrong format version...)."""


class PluginMissingError(ModelLoadError):
    """A saved tagger needs a plugin distribution that is not installed."""


class HubUnavailableError(SeqtagError):
    """The Hugging Face hub cannot be reached and the dataset is not cached."""

    reason: str = "unavailable"


class TrainingDivergedError(SeqtagError):
    """The training loss became NaN or infinite."""


class ResourceError(SeqtagError):
    """A model or a batch needs more memory than the machine has (estimated ahead, or torch ran out)."""


class DeviceError(SeqtagError):
    """A device that was asked for (``--device``, ``training.device``) is not there, or cannot do what was asked."""


class DistributedError(SeqtagError):
    """A distributed run (``torchrun``) that cannot go on: another world size than its checkpoint's, a rank lost."""


class ExportError(SeqtagError):
    """A model cannot be exported (a part without an export form, a missing package) or the export is wrong."""


class QuantizeError(ConfigError):
    """A precision (``--int8``, ``--bf16``, the spaCy component's ``precision``) that is unknown, or that the model
    or the CPU cannot run: no part that int8 covers, an Elman RNN in int8, no native bfloat16 (one line)."""


class Interrupted(KeyboardInterrupt):
    """A command stopped on a signal (``signum``: SIGINT for Ctrl-C, SIGTERM from a scheduler or
    ``docker stop``); the CLI exits with 128 + ``signum``. Training raises it at a step boundary after saving a
    checkpoint (:func:`seqtag.checkpoint.deferred_interrupt`)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
