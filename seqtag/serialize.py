"""Atomic writes of files and directories: write to a temporary name, fsync, rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write_bytes", "atomic_write_json", "write_json", "atomic_directory", "recover_directory",
           "fsync_dir"]


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON with fsync (inside a directory that is renamed into place)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def recover_directory(path: str | Path, keep_others: bool = False) -> None:
    """Finish an :func:`atomic_directory` swap that a crash (``kill -9``, power loss) interrupted.

    The swap renames ``path`` to ``.NAME.old-PID``, renames the new directory to ``path``, then (with
    ``keep_others``) moves the old entries the new one lacks (a training checkpoint) back in. A crash
    between those renames leaves ``path`` missing or without its checkpoint; this puts the old
    directory back, or moves the entries over, and removes what is left of it.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    for old in sorted(path.parent.glob(f".{path.name}.old-*")):
        if not old.is_dir():
            continue
        if not path.exists():
            os.replace(old, path)
            fsync_dir(path.parent)
            continue
        if keep_others:
            _move_missing(old, path)
        shutil.rmtree(old, ignore_errors=True)


def _move_missing(src: Path, dst: Path) -> None:
    """Move the entries of ``src`` that ``dst`` lacks into ``dst`` (renames, so nothing is copied)."""
    for entry in src.iterdir():
        if not (dst / entry.name).exists():
            os.replace(entry, dst / entry.name)
    fsync_dir(dst)


def atomic_directory(path: str | Path, fill: Callable[[Path], None], keep_others: bool = False) -> None:
    """Create the directory ``path`` by filling a temporary sibling and renaming it into place.

    An existing directory at ``path`` is replaced only after the new one is complete, so a crash
    leaves either the old directory or the new one (:func:`recover_directory` finishes a swap that
    a crash cut short). With ``keep_others``, entries of the old directory that ``fill`` did not
    write (e.g. a training checkpoint) are moved into the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path, keep_others)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old: Path | None = None
    try:
        fill(tmp)
        fsync_dir(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not path.exists():
            os.replace(old, path)
        raise
    if old is not None:
        if keep_others:
            _move_missing(old, path)
        shutil.rmtree(old, ignore_errors=True)
