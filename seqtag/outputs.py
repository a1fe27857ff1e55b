"""Claiming a training run's output folder: what may be written into, and one writer at a time.

- A new or empty folder is written into.
- A folder that holds a seqtag run (a model's ``meta.json``, a ``checkpoint/`` or a multi-seed
  ``seeds.json``) is replaced only with ``overwrite`` (``--overwrite``), or continued with ``--resume``.
- Any other folder with files in it is the user's: it is refused unless ``force`` (``--force``).
- The folder is never renamed, emptied or re-created: its mode stays, a symlink is written through.
- An exclusive lock (``fcntl.flock`` on ``FOLDER/.seqtag.lock``) is held for the whole run; a second
  run on the same folder is refused at once, naming the process that holds it. The lock goes with the
  process, so a killed run never leaves a stale lock behind.
- Leftovers of an interrupted run (temporary checkpoint folders, a half-made model) are cleaned up
  once the lock is held.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import IO, Iterator

from .atomic import recover_staged
from .checkpoint import CHECKPOINT_DIR, recover_checkpoint
from .errors import ConfigError
from .modeldir import LOCK_FILE, read_meta

__all__ = ["claim_output", "describe_run", "LOCK_FILE", "OutputBusyError"]

class OutputBusyError(ConfigError):
    """Another seqtag run holds the output folder's lock."""


def describe_run(folder: Path) -> str | None:
    """What seqtag run ``folder`` holds (for messages), or ``None`` when it holds none."""
    meta = read_meta(folder)
    if meta is not None:
        scores = meta.get("scores")
        test = scores.get("test") if isinstance(scores, dict) else None
        test = test if isinstance(test, dict) else {}
        metric = "F1" if "f1" in test else "accuracy"
        score = test.get("f1", test.get("accuracy"))
        what = f"a seqtag {str(meta.get('task', '?')).upper()[:8]} model"
        return what + (f" (test {metric} {score:.2f})" if isinstance(score, (int, float)) else "")
    if (folder / CHECKPOINT_DIR / "trainer.json").is_file():
        return "an interrupted seqtag run (a checkpoint, no model yet)"
    if (folder / "seeds.json").is_file():
        return "a multi-seed seqtag run"
    return None


def _user_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE)


@contextlib.contextmanager
def claim_output(folder: str | Path, *, force: bool = False, overwrite: bool = False,
                 resume: bool = False) -> Iterator[Path]:
    """Check that a run may write into ``folder``, lock it for the run, and clean up leftovers.

    Raises :class:`ConfigError` (one line) when the folder is the user's or holds a model that
    ``overwrite`` does not allow replacing, when it cannot be created or written, and
    :class:`OutputBusyError` when another run holds it. With ``overwrite``, the old run's checkpoint is
    removed (the old model stays until the new run saves a better one).
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; choose another --output")
    lock: IO[str] | None = None
    try:
        if (path / LOCK_FILE).is_file():  # a seqtag output: take the lock before looking, touching nothing
            lock = _lock(path)
        if path.is_dir() and not resume:
            run = describe_run(path)
            if run is not None and not overwrite:
                raise ConfigError(f"{path}: holds {run}; pass --overwrite to replace it, `seqtag train --resume "
                                  f"{path}` to continue its run, or choose another --output")
            entries = _user_entries(path)
            if run is None and entries and not force:
                shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
                raise ConfigError(f"{path}: a folder with other files in it ({shown}), not a seqtag model; "
                                  f"choose a new or empty --output, or pass --force to write the model into it")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot create the output folder ({exc.strerror or exc})") from None
        if lock is None:
            lock = _lock(path)
        _clean(path, fresh=overwrite and not resume)
        yield path
    finally:
        if lock is not None:
            lock.close()  # releases the lock; the file stays (removing it would race with a waiting run)


def _lock(path: Path) -> IO[str]:
    """Open and lock ``path/.seqtag.lock`` without waiting; write who holds it."""
    try:
        f = open(path / LOCK_FILE, "a+", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write into the output folder ({exc.strerror or exc}); "
                          f"choose a writable --output") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks here; one run per folder is up to the user
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise OutputBusyError(f"{path}: another seqtag run is writing into this folder ({holder}); "
                              f"wait for it to finish or choose another --output") from None
    f.seek(0)
    f.truncate()
    started = datetime.datetime.now().isoformat(timespec="seconds")
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {' '.join(_command())}\n")
    f.flush()
    return f


def _command() -> list[str]:
    argv = list(sys.argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return argv[:12]


def _clean(path: Path, fresh: bool) -> None:
    """Finish or drop what an interrupted run left: a cut-short directory swap, temporary checkpoint
    folders, a half-committed model; with ``fresh`` (an overwrite), the old run's checkpoint too."""
    recover_staged(path)
    recover_checkpoint(path)
    for tmp in path.glob(f".{CHECKPOINT_DIR}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    if fresh:
        shutil.rmtree(path / CHECKPOINT_DIR, ignore_errors=True)
