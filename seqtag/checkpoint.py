"""Training checkpoints as plain data: model and optimizer tensors in safetensors, the rest in JSON.

A checkpoint is a directory written atomically (write, fsync, rename), so an interrupted write
leaves the previous checkpoint intact. It holds the model, the optimizer and scheduler state, the RNG
states (Python and torch), the epoch and step, and the best score so far.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from .atomic import atomic_directory, recover_directory, write_json
from .errors import Interrupted, ModelLoadError
from .modeldir import check_plugins, plugin_requirements, read_meta

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "recover_checkpoint", "deferred_interrupt",
           "Interrupted", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoint"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        entry: dict[str, Any] = {}
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().contiguous().cpu()
                entry[key] = {"tensor": f"optimizer.{pid}.{key}"}
            else:
                entry[key] = value
        plain["state"][str(pid)] = entry
    return tensors, plain


def _unflatten_optimizer(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, entry in plain["state"].items():
        state[int(pid)] = {k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
                           for k, v in entry.items()}
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, progress: dict[str, Any], py_rng: random.Random,
                    assets: dict[str, Any] | None = None, extra: dict[str, torch.Tensor] | None = None) -> None:
    """Write a checkpoint directory atomically (``assets``, the vocabularies, go in as ``assets.json``;
    ``extra`` tensors, e.g. the weight average, beside the model's, named ``extra.NAME``)."""
    from safetensors.torch import save_file

    opt_tensors, opt_plain = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors.update({f"extra.{k}": v.detach().contiguous().cpu() for k, v in (extra or {}).items()})
    tensors["rng.torch"] = torch.get_rng_state()
    state = py_rng.getstate()
    data = {
        "progress": progress,
        # read back by --resume: the plugin check runs before anything is built
        "plugins": plugin_requirements((progress.get("config") or {}).get("model") or {}),
        "optimizer": opt_plain,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": {"python": [state[0], list(state[1]), state[2]], "global_python": _global_state()},
    }

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / "state.safetensors"))
        with open(tmp / "state.safetensors", "rb") as f:
            os.fsync(f.fileno())
        write_json(tmp / "trainer.json", data)
        if assets is not None:
            write_json(tmp / "assets.json", assets)

    atomic_directory(path, fill)


def _global_state() -> list[Any]:
    s = random.getstate()
    return [s[0], list(s[1]), s[2]]


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, py_rng: random.Random,
                    extra: Callable[[dict[str, torch.Tensor]], None] | None = None) -> dict[str, Any]:
    """Restore a checkpoint into the given objects; returns the saved progress. ``extra`` is called with
    the ``extra`` tensors :func:`save_checkpoint` wrote (their names without ``extra.``)."""
    from safetensors.torch import load_file

    p = Path(path)
    try:
        tensors = load_file(str(p / "state.safetensors"))
        data = json.loads((p / "trainer.json").read_text(encoding="utf-8"))
    except Exception as exc:
        raise ModelLoadError(f"{p}: not a readable checkpoint ({' '.join(str(exc).split())[:160]})") from None
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")},
                              strict=True)
        optimizer.load_state_dict(_unflatten_optimizer(data["optimizer"], tensors))
        if scheduler is not None and data.get("scheduler") is not None:
            scheduler.load_state_dict(data["scheduler"])
        if extra is not None:
            extra({k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")})
        torch.set_rng_state(tensors["rng.torch"])
        st = data["rng"]["python"]
        py_rng.setstate((st[0], tuple(st[1]), st[2]))
        gs = data["rng"]["global_python"]
        random.setstate((gs[0], tuple(gs[1]), gs[2]))
        return dict(data["progress"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{p}: the checkpoint does not fit this model or is damaged "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None


def recover_checkpoint(model_dir: str | Path) -> None:
    """Finish directory swaps of the model directory and its checkpoint that a crash interrupted."""
    recover_directory(model_dir, keep_others=True)
    recover_directory(Path(model_dir) / CHECKPOINT_DIR)


def read_checkpoint(model_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The saved progress (with ``config`` and ``labels``) and the vocabularies of ``MODEL_DIR/checkpoint``.

    Raises :class:`ModelLoadError` (one line) when there is no checkpoint or it cannot be read, and
    :class:`PluginMissingError` when a plugin distribution it needs is not installed.
    """
    recover_checkpoint(model_dir)
    ckpt = Path(model_dir) / CHECKPOINT_DIR
    if not (ckpt / "trainer.json").is_file():
        raise ModelLoadError(f"{model_dir}: nothing to resume ({ckpt / 'trainer.json'} is missing); "
                             f"checkpoints are written every training.checkpoint_every steps and at each epoch end")
    try:
        trainer = json.loads((ckpt / "trainer.json").read_text(encoding="utf-8"))
        progress = trainer["progress"]
        assets = json.loads((ckpt / "assets.json").read_text(encoding="utf-8"))
        missing = [k for k in ("config", "labels", "epoch", "step_in_epoch") if k not in progress]
        if missing:
            raise KeyError(f"no {missing[0]!r} in trainer.json")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ModelLoadError(f"{ckpt}: not a readable checkpoint ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:160]})") from None
    check_plugins(model_dir, _recorded_plugins(model_dir, trainer), progress["config"].get("model") or {})
    return progress, assets


def _recorded_plugins(model_dir: str | Path, trainer: Mapping[str, Any]) -> Any:
    """The plugin distributions a checkpoint records; for one written before it did, the model folder's."""
    if "plugins" in trainer:
        return trainer["plugins"]
    meta = read_meta(Path(model_dir))  # None: no model saved yet, or not readable: nothing recorded
    return None if meta is None else meta.get("plugins")


# the signals a run stops on at its next step boundary, after saving a checkpoint
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], int]]:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request that training honours at its next safe point.

    Yields a function that gives the signal number of a requested stop (0: none). Training checks it
    after each step, saves a checkpoint of a consistent state and raises :class:`Interrupted` itself.
    A second signal interrupts at once (the last checkpoint written stays). Outside the main thread,
    or for a signal that is ignored (SIGINT of a job started in the background by a shell), nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return
    hits: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        hits.append(signum)
        if len(hits) > 1:
            raise Interrupted(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield lambda: hits[0] if hits else 0
    finally:
        for sig, prev in previous.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
