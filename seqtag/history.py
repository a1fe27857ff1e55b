"""A run's history beside its model: ``history.jsonl``, one line per finished epoch, and ``training.png``.

Each line holds the epoch (from 1), its mean training loss, the dev score (entity F1 or token
accuracy, in percent), the learning rate the epoch trained with, its training tokens per second and
the seconds of training so far. The file is rewritten whole and atomically after each epoch from the
run's saved state, so a resumed run continues it and a killed one never leaves half a line.

After each epoch ``training.png`` is drawn from it too (loss and dev score per epoch, see
:func:`seqtag.plots.curves_figure`), also atomically. A picture that cannot be drawn never stops
training: the run warns once and goes on, and ``seqtag plot MODEL`` draws it later. With the
environment variable ``SEQTAG_TRAINING_PICTURE=0`` training draws none (a drawing costs about a tenth
of a second, which only a run of many very short epochs, such as a test suite's, notices). Neither file is
one of the model's files (the SHA-256 manifest in ``meta.json`` does not list them), so neither
changes what loading checks or what ``seqtag push`` uploads. :func:`draw_seeds` draws the curves of
the seeds of a multi-seed run (``seqtag train --seeds N``) in one picture.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from .atomic import atomic_write_bytes
from .errors import ConfigError, DataError, ModelLoadError

__all__ = ["HISTORY", "PICTURE", "SEEDS_PICTURE", "PICTURE_SETTING", "write_history", "pictures_wanted",
           "read_history", "draw_history", "draw_seeds", "seed_folders"]

HISTORY = "history.jsonl"
PICTURE = "training.png"
SEEDS_PICTURE = "seeds.png"  # beside seeds.json: the curves of every seed
_SEED_FOLDER = re.compile(r"^seed(\d+)$")
PICTURE_SETTING = "SEQTAG_TRAINING_PICTURE"  # 0, false, no or off: training draws no training.png
_warned = False  # a picture that failed was reported once in this process


def write_history(folder: str | Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write ``folder/history.jsonl`` from a run's history (:attr:`seqtag.trainer.TrainState.history`)
    and draw ``folder/training.png`` from it (a drawing that fails is a warning, once per process;
    ``SEQTAG_TRAINING_PICTURE=0`` draws none)."""
    text = "".join(json.dumps(dict(entry), sort_keys=False) + "\n" for entry in history)
    atomic_write_bytes(Path(folder) / HISTORY, text.encode("utf-8"))
    if not pictures_wanted():
        return
    try:
        draw_history(folder, history)
    except Exception as exc:  # the picture is a convenience; the run it pictures matters more
        global _warned
        if not _warned:
            _warned = True
            print(f"warning: {Path(folder) / PICTURE} was not drawn ({type(exc).__name__}: "
                  f"{' '.join(str(exc).split())[:200]}); training goes on, and `seqtag plot {folder}` "
                  f"draws it from {HISTORY} later", file=sys.stderr)


def pictures_wanted() -> bool:
    """Whether training draws ``training.png`` (yes unless ``SEQTAG_TRAINING_PICTURE`` is 0, false, no or off)."""
    return os.environ.get(PICTURE_SETTING, "").strip().lower() not in ("0", "false", "no", "off")


def read_history(folder: str | Path) -> list[dict[str, Any]]:
    """The epochs of ``folder/history.jsonl`` (an empty list when there is none).

    Raises:
        DataError: A line is not a JSON object (``file:line``).
    """
    path = Path(folder) / HISTORY
    if not path.is_file():
        return []
    epochs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"not a JSON line ({exc.msg}); expected one epoch's JSON object", str(path),
                            number) from None
        if not isinstance(entry, dict) or not {"epoch", "loss", "dev"} <= set(entry):
            raise DataError("expected one epoch's JSON object with epoch, loss and dev", str(path), number)
        epochs.append(entry)
    return epochs


def _about(folder: Path) -> tuple[str | None, str]:
    """The task of the model in ``folder`` (``None`` when it holds none) and a title for its pictures."""
    from .modeldir import read_meta

    meta = read_meta(folder) or {}
    data = meta.get("data")
    corpus = data.get("corpus") if isinstance(data, dict) else None
    name = folder.resolve().name
    if corpus and len(str(corpus)) > 70:  # a list of split files: its start and its end
        corpus = f"{str(corpus)[:33]}\u2026{str(corpus)[-33:]}"
    return (str(meta["task"]) if "task" in meta else None), (f"{name} ({corpus})" if corpus else name)


def draw_history(folder: str | Path, history: Sequence[Mapping[str, Any]] | None = None,
                 output: str | Path | None = None, title: str | None = None) -> Path:
    """Draw the training curves of the run in ``folder``; returns the PNG's path.

    Args:
        folder: A model folder (the task, for the dev score's name, is read from its ``meta.json``).
        history: The run's epochs (default: ``folder/history.jsonl``).
        output: The PNG to write, atomically (default ``folder/training.png``).
        title: Above the curves (default: the folder's name and the corpus the model was trained on).

    Raises:
        ModelLoadError: ``folder`` is missing or has no history (a multi-seed run's folder is named as one).
        ConfigError: ``output`` is a folder or one of a model's own files.
    """
    from .plots import curves_figure, dev_metric, png_bytes, write_readable

    path = Path(folder)
    if history is None:
        if not path.is_dir():
            raise ModelLoadError(f"{path}: no such folder; expected a model folder that `seqtag train` wrote")
        history = read_history(path)
        if not history:
            hint = ("it holds a multi-seed run: pass --seeds N to draw its seeds"
                    if _seed_candidates(path) else "`seqtag train` writes one line per finished epoch")
            raise ModelLoadError(f"{path}: no {HISTORY} to draw; {hint}")
    out = _target(output, path / PICTURE)
    task, about = _about(path)
    png = png_bytes(curves_figure([("", history)], metric=dev_metric(task), title=title or about))
    write_readable(out, png)
    return out


def _target(output: str | Path | None, default: Path) -> Path:
    """Where a picture goes: ``output`` when given (never a model's own file, never a folder), else ``default``."""
    from .modeldir import owning_model

    if output is None:
        return default
    out = Path(output)
    if out.is_dir():
        raise ConfigError(f"{out}: a folder; --output names the PNG file to write")
    owner = owning_model(out)
    if owner is not None:
        raise ConfigError(f"{out}: a file of the model in {owner}; drawing would overwrite it, choose another --output")
    return out


def _seed_candidates(folder: Path) -> list[tuple[int, Path]]:
    """The seed folders of a multi-seed run: those ``seeds.json`` lists, else every ``seedN`` folder."""
    listed = folder / "seeds.json"
    seeds: list[int] = []
    if listed.is_file():
        try:
            runs = json.loads(listed.read_text(encoding="utf-8")).get("runs", [])
            seeds = [int(r["seed"]) for r in runs]
        except (ValueError, TypeError, KeyError, AttributeError):  # damaged: the folders tell
            seeds = []
    if not seeds and folder.is_dir():
        seeds = [int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := _SEED_FOLDER.match(p.name))]
    return [(s, folder / f"seed{s}") for s in sorted(set(seeds))]


def seed_folders(folder: str | Path, seeds: int | None = None) -> list[tuple[int, Path]]:
    """``(seed, folder)`` of the first ``seeds`` seeds (default: all) of the multi-seed run in ``folder``.

    Raises:
        ModelLoadError: ``folder`` holds no multi-seed run, or fewer seeds than asked for, or a seed
            folder without a history.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ModelLoadError(f"{path}: no such folder; expected the --output folder of `seqtag train --seeds N`")
    found = _seed_candidates(path)
    if not found:
        raise ModelLoadError(f"{path}: no seed folders (seed0, seed1, ...) in it; expected the --output folder of "
                             f"`seqtag train --seeds N`" + ("; draw this single run without --seeds"
                                                          if (path / HISTORY).is_file() else ""))
    if seeds is not None and seeds > len(found):
        raise ModelLoadError(f"{path}: holds {len(found)} seed run{'s' if len(found) > 1 else ''} "
                             f"({', '.join(p.name for _, p in found)}), fewer than the {seeds} asked for")
    chosen = found[:seeds] if seeds is not None else found
    for _, p in chosen:
        if not (p / HISTORY).is_file():
            raise ModelLoadError(f"{p}: no {HISTORY}; that seed finished no epoch")
    return chosen


def draw_seeds(folder: str | Path, seeds: int | None = None, output: str | Path | None = None,
               title: str | None = None) -> Path:
    """Draw the training curves of the seeds of a multi-seed run in one picture, a line per seed;
    returns the PNG's path (default ``folder/seeds.png``, written atomically). See :func:`seed_folders`."""
    from .plots import curves_figure, dev_metric, png_bytes, write_readable

    chosen = seed_folders(folder, seeds)
    out = _target(output, Path(folder) / SEEDS_PICTURE)
    runs = [(f"seed {s}", read_history(p)) for s, p in chosen]
    task, _ = _about(chosen[0][1])
    title = title or f"{Path(folder).resolve().name}: {len(chosen)} seed{'s' if len(chosen) > 1 else ''}"
    png = png_bytes(curves_figure(runs, metric=dev_metric(task), title=title))
    write_readable(out, png)
    return out
