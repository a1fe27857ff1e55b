"""The config a run trains with, built in one pass: task defaults, the user's config, ``--set``, flags; checked once.

The layers, each over the one before:

1. the task's defaults, ``seqtag/configs/ner.toml`` or ``pos.toml`` (:func:`default_config`);
2. the user's config (a ``--config`` file, or a dict given to :func:`build_config`);
3. ``--set slot.key=value`` overrides, applied to the user's config (a changed part ``type`` drops the
   old part's keys, whichever layer they came from);
4. the data flags (``--dataset``, ``--tag-column``, ``--scheme``, ``--strict``) into ``[data]``.

Only the whole is checked, once: the tables' keys, every part's arguments (with every default filled
in), ``[training]``, and the tag scheme for the task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..registry import KINDS
from .files import apply_overrides, load_config, merge
from .parts import resolve
from .tables import check_model_table, check_top_level
from .training import TrainingConfig

__all__ = ["TASKS", "CONFIG_DIR", "default_config", "build_config", "absolute_dataset"]

TASKS = ("ner", "pos")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # seqtag/configs: package data
NER_SCHEMES = ("IOB2", "BIOES")  # the schemes an NER model trains on (IOB1 data is converted)


def default_config(task: str) -> dict[str, Any]:
    """The default config of a task (``ner`` or ``pos``)."""
    path = CONFIG_DIR / f"{task}.toml"
    if task not in TASKS or not path.is_file():
        raise ConfigError(f"unknown task {task!r}; expected 'ner' or 'pos'")
    return load_config(path)


def build_config(task: str | None, config: Mapping[str, Any] | None = None, *, overrides: Iterable[str] = (),
                 data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The task's defaults under ``config``, ``overrides`` and ``data``, every part's defaults filled in, checked.

    Args:
        task: ``ner`` or ``pos``; ``None`` takes the task the config names (after ``overrides``), else ``ner``.
        config: The user's config, e.g. from :func:`~seqtag.config.load_config`.
        overrides: ``slot.key=value`` strings (``--set``), applied to ``config`` in order.
        data: Values for the ``[data]`` table from command-line flags (``dataset``, ``tag_column``,
            ``scheme``, ``strict``); ``None`` and ``False`` mean the flag was not given.

    Returns:
        The complete config: ``task``, ``scheme``, ``data``, ``model`` (each part resolved) and ``training``.

    Raises:
        ConfigError: One line naming what is wrong, whichever layer it came from.
    """
    user = apply_overrides(config or {}, overrides)
    task = task or user.get("task") or "ner"
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected 'ner' or 'pos'")
    given = user.get("task", task)
    if given != task:
        raise ConfigError(f"the config's task {given!r} is not the task trained ({task!r}); "
                          f"expected 'ner' or 'pos', the same in the config, --set task=... and --task")
    cfg = merge(default_config(task), user)
    flags = {k: v for k, v in (data or {}).items() if v is not None and v is not False}
    table = cfg.setdefault("data", {})
    if isinstance(table, Mapping):  # a [data] that is not a table is reported by the check below
        cfg["data"] = {**table, **flags}
    check_top_level(cfg)
    cfg["task"] = task
    model = cfg.setdefault("model", {})
    check_model_table(model)
    for slot in KINDS:
        if slot not in model:
            raise ConfigError(f"the config has no [model.{slot}] table")
        model[slot] = resolve(slot, model[slot])
    cfg["training"] = TrainingConfig.from_dict(cfg.get("training", {})).to_dict()
    if task == "ner" and cfg.get("scheme") not in NER_SCHEMES:
        raise ConfigError(f"scheme must be 'IOB2' or 'BIOES' for NER, got {cfg.get('scheme')!r}")
    if task == "pos":
        cfg["scheme"] = "none"
    if "dataset" in cfg["data"]:
        cfg["data"]["dataset"] = absolute_dataset(cfg["data"]["dataset"])
    return cfg


def absolute_dataset(spec: Any) -> Any:
    """A dataset given by local path is saved absolute, so ``--resume`` and ``evaluate`` work from any folder.

    Catalogue names, hub ids and paths that do not exist stay as they are; so does a value that is
    not a string (loading the corpus reports it).
    """
    from ..data import catalogue

    if not isinstance(spec, str) or spec in catalogue():
        return spec
    try:
        if Path(spec).exists():
            return str(Path(spec).resolve())
        if "=" in spec:
            items = [item.partition("=") for item in spec.split(",")]
            return ",".join(f"{k}={Path(v.strip()).resolve() if Path(v.strip()).exists() else v}"
                            for k, _, v in items)
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: not a local path
        pass
    return spec
