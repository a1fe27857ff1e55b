"""The saved-model folder: which files make a model, the SHA-256 manifest of them in ``meta.json``,
and how a seqtag model folder is told apart from any other folder.

A model folder is recognised by its ``meta.json``: a JSON object with an integer ``format_version``.
Since format 1 (seqtag 0.1), ``meta.json`` also lists every other file of the model with its SHA-256
(``"files": {"config.json": "<hex>", ...}``); loading checks them, so a label or config edited or
swapped after saving is refused instead of predicting wrong labels. Models saved before the manifest
existed load without the check.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ModelLoadError
from .jsonio import read_json_object
from .serialize import STAGING_DIR, recover_staged

LOCK_FILE = ".seqtag.lock"  # held by the run that writes a folder (seqtag.outputs)

__all__ = ["FILES", "META", "read_meta", "file_sha256", "manifest", "is_model_dir", "owned_files", "verify_files",
           "owning_model", "wait_for_commit"]

META = "meta.json"
FILES = ("config.json", META, "labels.json", "model.safetensors")
ASSETS = "assets"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(directory: Path, files: Iterable[str]) -> dict[str, str]:
    """``{relative path: SHA-256}`` of ``files`` under ``directory``."""
    return {rel: file_sha256(directory / rel) for rel in sorted(files)}


def read_meta(directory: Path) -> dict[str, Any] | None:
    """``directory/meta.json`` when it is a seqtag model's (an object with an integer ``format_version``),
    else ``None`` (missing, unreadable or another tool's ``meta.json``)."""
    try:
        data = read_json_object(directory / META, ModelLoadError)
    except ModelLoadError:
        return None
    return data if isinstance(data.get("format_version"), int) else None


def is_model_dir(path: str | Path) -> bool:
    """Whether ``path`` is a seqtag model folder (its ``meta.json`` has an integer ``format_version``)."""
    return read_meta(Path(path)) is not None


def owned_files(directory: str | Path) -> list[str]:
    """The files of the model in ``directory`` (relative paths): its manifest's, or for a model saved
    without one, the standard files and ``assets/*.json`` that exist."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        return []
    listed = meta.get("files")
    if isinstance(listed, dict):
        return [str(k) for k in listed] + [META]
    found = [f for f in FILES if (directory / f).is_file()]
    return found + [f"{ASSETS}/{p.name}" for p in sorted((directory / ASSETS).glob("*.json"))]


def owning_model(path: str | Path) -> Path | None:
    """The model folder whose own file (or whose ``assets/`` or ``checkpoint/`` entry) ``path`` is, if any."""
    p = Path(path).resolve()
    for folder in (p.parent, p.parent.parent):
        if not is_model_dir(folder):
            continue
        rel = p.relative_to(folder)
        if rel.as_posix() in owned_files(folder) or rel.parts[0] in (ASSETS, "checkpoint", STAGING_DIR):
            return folder
    return None


def wait_for_commit(directory: Path, seconds: float = 5.0) -> None:
    """Make sure a reader of ``directory`` meets one saved model, not half of the old files and half of
    the new: while a run that holds the folder's lock moves a new model in, wait for it (at most
    ``seconds``); when no run holds it, a staging folder is what a crash left, and the save is finished
    (or dropped) here as the next run would."""
    if not (directory / STAGING_DIR).exists():
        return
    if _held_by_another_run(directory):
        deadline = time.monotonic() + seconds
        while (directory / STAGING_DIR).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    try:
        recover_staged(directory)
    except OSError:  # a read-only copy: the manifest check reports what it finds
        pass


def _held_by_another_run(directory: Path) -> bool:
    """Whether a live process holds ``directory/.seqtag.lock`` (see :mod:`seqtag.outputs`)."""
    try:
        import fcntl

        with open(directory / LOCK_FILE, "rb") as f:  # never created here: no file, no run
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return False
    except (ImportError, OSError):  # no lock file (a model saved from Python) or no locks on this system
        return False


def verify_files(directory: Path, meta: Mapping[str, Any]) -> None:
    """Check the model files against the SHA-256 manifest in ``meta`` (no manifest: nothing to check).

    Raises :class:`ModelLoadError` naming the first file that is missing or changed.
    """
    listed = meta.get("files")
    if listed is None:
        return
    if not isinstance(listed, dict):
        raise ModelLoadError(f"{directory / META}: 'files' must map file names to SHA-256 digests")
    for rel, digest in listed.items():
        path = directory / str(rel)
        if ".." in Path(str(rel)).parts or Path(str(rel)).is_absolute():
            raise ModelLoadError(f"{directory / META}: the manifest names {rel!r}, outside the model folder")
        if not path.is_file():
            raise ModelLoadError(f"{path}: missing; not a complete seqtag model directory")
        if file_sha256(path) != digest:
            raise ModelLoadError(f"{path}: changed since the model was saved (its SHA-256 is not the one in "
                                 f"meta.json); restore the file, or load the model anyway with --no-verify "
                                 f"(verify=False from Python)")
