"""The saved-model folder: which files make a model, the SHA-256 manifest of them in ``meta.json``,
and how a seqtag model folder is told apart from any other folder.

A model folder is recognised by its ``meta.json``: a JSON object with an integer ``format_version``.
Since format 1 (seqtag 0.1), ``meta.json`` also lists every other file of the model with its SHA-256
(``"files": {"config.json": "<hex>", ...}``); loading checks them, so a label or config edited or
swapped after saving is refused instead of predicting wrong labels. Models saved before the manifest
existed load without the check.

:func:`read_model_dir` reads a folder (each file as its format first, then the manifest, then what the
files say) and :func:`write_model_dir` writes one; both speak plain data (:class:`SavedModel`), and
building a network from it is the reader's caller's business.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import registry
from .about import FORMAT_VERSION, __version__
from .atomic import STAGING_DIR, commit_files, recover_staged, write_json
from .errors import ModelLoadError, PluginMissingError
from .jsonio import read_json_object

if TYPE_CHECKING:  # reading a folder's JSON needs no torch; only its weights do
    import torch

LOCK_FILE = ".seqtag.lock"  # held by the run that writes a folder (seqtag.outputs)

__all__ = ["FILES", "META", "SavedModel", "read_model_dir", "write_model_dir", "plugin_requirements", "check_plugins",
           "missing_plugin_message", "read_meta", "file_sha256", "manifest", "is_model_dir", "owned_files",
           "verify_files", "owning_model", "wait_for_commit"]

META = "meta.json"
CONFIG = "config.json"
LABELS = "labels.json"
WEIGHTS = "model.safetensors"
FILES = (CONFIG, META, LABELS, WEIGHTS)
ASSETS = "assets"


@dataclass
class SavedModel:
    """What a model folder holds, as plain data.

    Attributes:
        config: ``config.json``: the full config (``task``, ``scheme``, ``model``...).
        labels: The labels of ``labels.json``; tag id ``i`` is ``labels[i]``.
        scheme: The scheme of the labels (``labels.json``'s, else the config's, else IOB2).
        meta: ``meta.json`` (format version, versions, task, scheme, plugins, scores, manifest).
        assets: Each part's assets (``assets/<part>.json``), e.g. vocabularies.
        state: The weights (``model.safetensors``), or ``None`` when not read.
    """

    config: dict[str, Any]
    labels: list[str]
    scheme: str
    meta: dict[str, Any] = field(default_factory=dict)
    assets: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None

    @property
    def task(self) -> str:
        return str(self.config.get("task", "ner"))


def read_model_dir(path: str | Path, verify: bool = True, weights: bool = True) -> SavedModel:
    """Read and check a saved model folder; nothing is built.

    The format version and the plugin distributions are checked first (from ``meta.json``), then each
    file is read as its format (JSON, safetensors: a pickle is refused unread), then the files are
    checked against the SHA-256 manifest (unless ``verify`` is false), and only then is what they say
    interpreted (the task).

    Args:
        path: The model folder.
        verify: Check the files against the manifest in ``meta.json``.
        weights: Read ``model.safetensors`` (``False``: ``state`` is ``None``, e.g. for an ONNX runner).

    Raises:
        ModelLoadError: A file is missing, unreadable, changed since saving, or of a newer format.
        PluginMissingError: The model needs a plugin distribution that is not installed.
    """
    p = Path(path)
    if not p.is_dir():
        raise ModelLoadError(f"{p}: no such model directory (save one with `seqtag train --output {p}`)")
    wait_for_commit(p)
    meta = _read_json(p / META)
    _check_format(p, meta)
    check_plugins(p, meta.get("plugins"))
    config = _read_json(p / CONFIG)
    label_data = _read_json(p / LABELS)
    assets: dict[str, Any] = {}
    listed = meta.get("files")
    for f in sorted((p / ASSETS).glob("*.json")):
        if not isinstance(listed, dict) or f"{ASSETS}/{f.name}" in listed:  # with a manifest, only its files
            assets[f.stem] = _read_json(f)
    state = _read_safetensors(p / WEIGHTS) if weights else None
    if verify:  # after each file was read as its format, before any of it is used
        verify_files(p, meta)
    if config.get("task", "ner") not in ("ner", "pos"):
        raise ModelLoadError(f"{p / CONFIG}: unknown task {config.get('task')!r}; expected 'ner' or 'pos'")
    return SavedModel(config, list(label_data.get("labels", [])),
                      label_data.get("scheme", config.get("scheme", "IOB2")), meta, assets, state)


def write_model_dir(path: str | Path, model: SavedModel, scores: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model`` (its ``state`` included) to the folder ``path``; returns the ``meta.json`` written.

    ``meta.json`` gets the format version, the seqtag version, the task, the scheme, the plugin
    distributions the config needs, ``scores`` when given, and the SHA-256 manifest of the other files.
    The files are replaced inside the folder, never the folder itself: its mode, a symlink to it and
    the user's other files (a checkpoint, an export) stay; ``meta.json``, which lists the others, goes
    last, so a crash leaves the old model or the new one.
    """
    from safetensors.torch import save_file

    if model.state is None:
        raise ValueError("write_model_dir needs the model's weights (SavedModel.state)")
    state = model.state
    meta = dict(model.meta)
    meta.update({"format_version": FORMAT_VERSION, "seqtag_version": __version__, "task": model.task,
                 "scheme": model.scheme, "plugins": plugin_requirements(model.config["model"])})
    if scores is not None:
        meta["scores"] = dict(scores)

    def fill(tmp: Path) -> None:
        write_json(tmp / CONFIG, model.config)
        write_json(tmp / LABELS, {"labels": model.labels, "scheme": model.scheme})
        (tmp / ASSETS).mkdir()
        for part, assets in model.assets.items():
            if assets is not None:  # a part with nothing to keep writes no file
                write_json(tmp / ASSETS / f"{part}.json", assets)
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        with open(tmp / WEIGHTS, "rb") as f:
            os.fsync(f.fileno())
        meta["files"] = manifest(tmp, (q.relative_to(tmp).as_posix() for q in tmp.rglob("*") if q.is_file()))
        write_json(tmp / META, meta)

    commit_files(path, fill, obsolete=lambda: owned_files(path), last=META)
    return meta


def plugin_requirements(model_cfg: Mapping[str, Any]) -> dict[str, str]:
    """The third-party distributions (and versions) whose parts a model config uses."""
    out: dict[str, str] = {}
    for kind, name, _ in registry.walk_parts(model_cfg):
        info = registry.get_registry(kind).info(name)
        if info.distribution != registry.BUILTIN_DIST:
            out[info.distribution] = info.version or ""
    return out


def _check_format(p: Path, meta: Mapping[str, Any]) -> None:
    fmt = meta.get("format_version")
    if not isinstance(fmt, int):
        raise ModelLoadError(f"{p / META}: no integer format_version; not a seqtag model")
    if fmt > FORMAT_VERSION:
        raise ModelLoadError(f"{p}: model format version {fmt} is newer than this seqtag reads ({FORMAT_VERSION}); "
                             f"upgrade seqtag (the model was written by seqtag {meta.get('seqtag_version', '?')})")


def missing_plugin_message(where: str | Path, dist: str, version: str | None) -> str:
    """The one line every path prints for a plugin distribution that is not installed.

    It says how to install the distribution without assuming the package index has it (a plugin may
    live in a private index or only in its source tree).
    """
    pin = f"{dist}=={version}" if version else dist
    return (f"{where}: this model needs the plugin distribution {dist!r} (version {version or 'any'}), which is "
            f"not installed; install it, e.g. pip install {pin} or from its source")


def check_plugins(where: str | Path, plugins: Mapping[str, Any] | None,
                  model_cfg: Mapping[str, Any] | None = None) -> None:
    """Each plugin distribution a model records is installed; then each part its config names is known.

    Loading (``meta.json``'s ``plugins``) and resuming (the checkpoint's) both call this before
    building anything, so a missing plugin reads the same on every path.

    Args:
        where: The model folder, named at the start of the message.
        plugins: ``{distribution: version}`` as saved (``None``: nothing recorded).
        model_cfg: The ``[model]`` table, walked for names no installed part has (``None``: not walked).

    Raises:
        PluginMissingError: A recorded distribution is not installed.
        RegistryError: The config names a part that no installed distribution provides.
    """
    for dist, ver in (plugins or {}).items():
        try:
            dist_version(dist)
        except PackageNotFoundError:
            raise PluginMissingError(missing_plugin_message(where, dist, str(ver or ""))) from None
    if model_cfg is not None:
        for _ in registry.walk_parts(model_cfg):  # an unknown name raises, listing the known ones
            pass


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; not a complete seqtag model directory")
    return read_json_object(path, ModelLoadError)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; the model directory holds no weights")
    with open(path, "rb") as f:
        head = f.read(9)
    looks_safetensors = len(head) > 8 and head[8:9] == b"{"  # 8-byte header length, then a JSON header
    if not looks_safetensors and (head[:1] == b"\x80" or head[:4] == b"PK\x03\x04"):  # pickle / torch.save zip
        raise ModelLoadError(f"{path}: a pickle or torch.save file, not safetensors; seqtag never unpickles "
                             f"model files (they can run code); re-save the weights with safetensors")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on bad files
        raise ModelLoadError(f"{path}: not a valid safetensors file (truncated or another format): "
                             f"{' '.join(str(exc).split())[:160]}") from None


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
