"""Atomic writes of files and directories: write to a temporary name, fsync, rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write_bytes", "atomic_write_json", "write_json", "atomic_directory", "recover_directory",
           "fsync_dir", "commit_files", "recover_staged", "STAGING_DIR"]

# where :func:`commit_files` prepares a new set of files inside the directory it writes
STAGING_DIR = ".seqtag-staging"
_COMMIT = ".commit.json"


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


def commit_files(directory: str | Path, fill: Callable[[Path], None], obsolete: Callable[[], list[str]] = list,
                 last: str | None = None) -> list[str]:
    """Replace a set of files inside ``directory`` so that a crash leaves the old set or the new one.

    ``fill`` writes the new files into a staging folder inside ``directory``; once they are all
    written and fsynced, a commit record listing them is written (atomically) and each file is
    renamed over its old copy (``last``, e.g. the file that names the others, goes last), then the
    files ``obsolete()`` names (paths relative to ``directory``) that the new set lacks are removed.
    A crash after the commit record is finished by :func:`recover_staged`; a crash before it leaves
    the old files untouched. Unlike :func:`atomic_directory`, the directory itself is never renamed
    or emptied: its mode, a symlink to it and the other files in it stay as they are.

    Returns the new files' relative paths (POSIX form).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    recover_staged(directory)
    stage = directory / STAGING_DIR
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        fill(stage)
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        if last in files:
            files.remove(last)
            files.append(last)
        old = set(obsolete())
        record = {"files": files, "remove": sorted(old - set(files))}
        for sub in {stage / Path(f).parent for f in files}:
            fsync_dir(sub)
        atomic_write_bytes(stage / _COMMIT, json.dumps(record).encode("utf-8"))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    _apply(directory, record)
    return files


def recover_staged(directory: str | Path) -> None:
    """Finish a :func:`commit_files` that a crash cut short after its commit record, or drop its
    staging folder when the crash came before (the old files were not touched then)."""
    directory = Path(directory)
    stage = directory / STAGING_DIR
    if not stage.is_dir():
        return
    try:
        record = json.loads((stage / _COMMIT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        shutil.rmtree(stage, ignore_errors=True)
        return
    _apply(directory, record)


def _apply(directory: Path, record: dict[str, Any]) -> None:
    """Move the staged files of a commit record into place (again, after a crash: idempotent)."""
    stage = directory / STAGING_DIR
    touched = {directory}
    for rel in record["files"]:
        src, dst = stage / rel, directory / rel
        if src.is_file():  # else moved before a crash
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            touched.add(dst.parent)
    for rel in record["remove"]:
        (directory / rel).unlink(missing_ok=True)
    for d in touched:
        fsync_dir(d)
    shutil.rmtree(stage, ignore_errors=True)
