"""The save/load check: a saved tagger, deleted and moved, loads here and in a fresh Python process and
predicts what it predicted before saving."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .. import registry
from ..modeldir import read_meta
from .common import TINY_CORPUS, CheckOptions, fail

if TYPE_CHECKING:
    from ..tagger import Tagger

__all__ = ["check_save_load", "predictions"]

# Inputs whose predictions must survive saving and loading: the training sentences, unseen words,
# and raw texts (these go through the tagger's tokenizer).
_UNSEEN_TOKENS = [["Zorblax", "visited", "Quuxville", "on", "Tuesday", "."], ["x"],
                  ["Peter", "Smith", "and", "Globex", "Corp", "met", "in", "Rome", "."]]
_TEXTS = ["John Smith visited Tokyo with Mary.", "Acme Corp opened an office in Madrid .", "Berlin"]

_MARK = "@@PREDICTIONS@@"
_FRESH = f"""\
import importlib, json, sys
import torch
torch.set_num_threads(1)
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
from seqtag.tagger import Tagger
from seqtag.testing.roundtrip import predictions
print("{_MARK}" + json.dumps(predictions(Tagger.load(sys.argv[1]))))
"""


def predictions(tagger: "Tagger") -> list[dict[str, Any]]:
    """The tagger's tokens, tags and confidences for the tiny corpus, unseen words and raw texts."""
    inputs: list[Any] = [t for t, _ in TINY_CORPUS] + _UNSEEN_TOKENS
    preds = tagger.predict(inputs, batch_size=5) + tagger.predict(_TEXTS, batch_size=2)
    return [{"tokens": p.tokens, "tags": p.tags, "scores": p.scores} for p in preds]


def _compare(where: str, kind: str, name: str, before: list[dict[str, Any]], after: list[dict[str, Any]],
             atol: float) -> None:
    if len(before) != len(after):
        raise fail("save/load", kind, name, f"{where}: {len(after)} predictions, expected {len(before)}")
    for b, a in zip(before, after):
        if b["tokens"] != a["tokens"]:
            raise fail("save/load", kind, name, f"{where}: tokens {a['tokens']} differ from {b['tokens']} "
                       "(the tokenizer is not restored)")
        if b["tags"] != a["tags"]:
            raise fail("save/load", kind, name, f"{where}: tags for {b['tokens']} changed from {b['tags']} to "
                       f"{a['tags']}; something the part needs is not saved (vocabularies belong in get_assets(), "
                       "weights in parameters or persistent buffers, settings in __init__ arguments)")
        diff = max((abs(x - y) for x, y in zip(b["scores"], a["scores"])), default=0.0)
        if diff > atol:
            raise fail("save/load", kind, name, f"{where}: confidences for {b['tokens']} changed by {diff:.2e}")


def _fresh_imports(info: registry.PartInfo, group: str, extra: Sequence[str]) -> list[str]:
    """The modules a fresh process must import: ``extra``, and the part's own module when it is
    registered in code rather than found through an entry point."""
    modules = list(extra)
    from_ep = any(ep.name == info.name for ep in entry_points(group=group)) and registry.autoload_enabled()
    module = getattr(info.obj, "__module__", "") or ""
    if not from_ep and module and module != "__main__" and not module.startswith("seqtag."):
        modules.append(module)
    return modules


def _load_fresh(folder: Path, modules: list[str], timeout: float) -> list[dict[str, Any]] | str:
    """The predictions of the tagger in ``folder`` loaded by a new Python process, or why there are none."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryDirectory() as cwd:  # another working directory: relative paths cannot help
        proc = subprocess.run([sys.executable, "-c", _FRESH, str(folder), json.dumps(modules)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        return f"loading in a fresh Python process failed (exit {proc.returncode}):\n{tail}"
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)), None)
    if line is None:
        return f"the fresh process printed no predictions: {proc.stdout[-400:]!r}"
    loaded: list[dict[str, Any]] = json.loads(line[len(_MARK):])
    return loaded


def check_save_load(kind: str, name: str, tagger: "Tagger", workdir: str | Path,
                    options: CheckOptions | None = None, info: registry.PartInfo | None = None) -> None:
    """Save ``tagger``, delete it, move the folder, load it here and in a fresh process: same predictions.

    Raises:
        AssertionError: ``[seqtag.testing save/load] KIND 'NAME': ...``.
    """
    from ..tagger import Tagger

    opts = options or CheckOptions()
    info = info or registry.get_registry(kind).info(name)
    before = predictions(tagger)
    saved, moved = Path(workdir) / "saved", Path(workdir) / "moved"
    for p in (saved, moved):
        if p.exists():
            shutil.rmtree(p)
    try:
        tagger.save(saved)
    except Exception as exc:
        raise fail("save/load", kind, name, f"saving failed: {type(exc).__name__}: {exc}") from exc
    meta = read_meta(saved) or {}
    if info.distribution != registry.BUILTIN_DIST and info.distribution not in (meta.get("plugins") or {}):
        raise fail("save/load", kind, name, f"meta.json does not record the plugin distribution "
                   f"{info.distribution!r}: {meta.get('plugins')!r}")
    del tagger
    gc.collect()
    shutil.move(str(saved), str(moved))  # nothing may point at the folder it was saved to
    try:
        loaded = Tagger.load(moved)
    except Exception as exc:
        hint = ""
        if kind == "embedding" and "assets" in str(exc) and "JSON object" in str(exc):
            hint = " (get_assets() must return a dict, {} when nothing was built from the data, not None)"
        raise fail("save/load", kind, name, f"loading the saved tagger failed: {type(exc).__name__}: "
                   f"{' '.join(str(exc).split())[:400]}{hint}") from exc
    _compare("loaded in this process", kind, name, before, predictions(loaded), opts.atol)
    del loaded
    gc.collect()
    if not opts.fresh_process:
        return
    fresh = _load_fresh(moved, _fresh_imports(info, registry.get_registry(kind).group, opts.imports), opts.timeout)
    if isinstance(fresh, str):
        raise fail("save/load", kind, name, fresh)
    _compare("loaded in a fresh process", kind, name, before, fresh, opts.atol)
