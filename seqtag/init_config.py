"""``seqtag init-config``: a task's complete config written out as TOML, every key filled and commented.

:func:`init_config` builds the config with :func:`~seqtag.config.build_config`, so every value is the
one a run would train with: the task's defaults (``seqtag/configs/ner.toml`` or ``pos.toml``), and for
a part chosen in a slot (``--encoder gru.v1``) that part's own defaults in place of the default part's.
:func:`render_toml` writes it with a comment on each key: for a part's arguments, the annotation from
its signature and the text of its docstring's ``Args:`` section (the classes it inherits from
included); for the top-level keys, ``[data]``, ``[model]`` and ``[training]``, the keys' descriptions
(the ones the configuration reference shows, :mod:`seqtag.config.help`), as plain text. A key whose
default is ``None`` (TOML has no null) is written commented out; left out, it takes the same default.

Read back, the text builds the same config: ``build_config(task, tomllib.loads(text))`` equals
``build_config(task, {})`` but for the ``[data]`` table, which also holds ``strict``, ``streaming``
and ``stream_sample`` at their defaults.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from typing import Any, Callable, Mapping

from . import registry
from .config.build import build_config, default_config
from .config.help import DATA_HELP, MODEL_HELP, TOP_HELP, annotation, part_arg_docs, part_summary, plain, training_help
from .data import DEFAULT_CORPUS
from .errors import ConfigError

__all__ = ["init_config", "render_toml", "config_text", "toml_value"]

# a [data] key left out of the file is written commented out, with this value as an example
DATA_EXAMPLES = {"dataset": '"{corpus}"', "tag_column": '"3"', "scheme": '"IOB1"'}
DATA_DEFAULTS: dict[str, Any] = {"strict": False, "streaming": False}  # and stream_sample: STREAM_SAMPLE


def init_config(task: str = "ner", parts: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """The complete config of ``task`` with the parts chosen in ``parts``, every default filled in.

    Args:
        task: ``ner`` or ``pos``.
        parts: A registered part name per slot (``{"encoder": "gru.v1"}``); ``None`` keeps the slot's
            default part. A chosen part other than the default comes with its own defaults; one that
            nests parts (``stack.v1``, ``concat.v1``) gets the task's default part of the nested kind
            as its one entry, so the config trains as it is.

    Returns:
        The config :func:`~seqtag.config.build_config` builds (``data`` empty).

    Raises:
        ConfigError: An unknown task, slot or part name (one line naming the known ones).
    """
    defaults = default_config(task)
    model: dict[str, Any] = {}
    for slot, name in (parts or {}).items():
        if slot not in registry.KINDS:
            raise ConfigError(f"unknown part slot {slot!r}; slots: {', '.join(registry.KINDS)}")
        if name is None or name == defaults["model"][slot].get("type"):
            continue
        factory = registry.get_registry(slot).get(name)  # an unknown name: one line listing the known ones
        table: dict[str, Any] = {"type": name}
        for key, sub_kind in registry.nested_slots(factory).items():
            param = _parameters(factory).get(key)
            if param is not None and not param.default and sub_kind in defaults["model"]:
                table[key] = [defaults["model"][sub_kind]]
        model[slot] = table
    return build_config(task, {"model": model} if model else {})


def config_text(task: str = "ner", parts: Mapping[str, str | None] | None = None) -> str:
    """The TOML text ``seqtag init-config`` writes: :func:`render_toml` of :func:`init_config`."""
    return render_toml(init_config(task, parts))


# -- the comments: docstrings and signatures ------------------------------------------------------------

def _summary(factory: Callable[..., Any]) -> str:
    """A part's docstring's first paragraph, on one line."""
    return plain(part_summary(factory).split("\n\n")[0]).rstrip(".")


def _parameters(factory: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}


# -- TOML -----------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL, which JSON leaves, is escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str | None:
    """``value`` as a TOML value, or ``None`` when TOML cannot hold it (``None``, an object of a part's own)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        items = [toml_value(v) for v in value]
        written = [i for i in items if i is not None]
        return "[" + ", ".join(written) + "]" if len(written) == len(items) else None
    if isinstance(value, Mapping):
        pairs = [f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items() if toml_value(v) is not None]
        if len(pairs) < len(value):
            return None
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    return None


def _block(rows: list[tuple[str, str]]) -> list[str]:
    """``key = value`` lines with their comments aligned (``rows``: the assignment and the comment)."""
    width = min(max((len(a) for a, _ in rows), default=0), 40)
    return [f"{a:<{width}}  # {c}" if c else a for a, c in rows]


def _assignment(key: str, value: Any, comment: str, shown: str | None = None) -> tuple[str, str]:
    """One key's line: ``key = value``, or commented out with ``shown`` when TOML cannot hold the value."""
    text = toml_value(value)
    if text is not None:
        return f"{_key(key)} = {text}", comment
    left_out = "left out: none" if value is None else f"left out: {value!r}"
    return f"# {_key(key)} = {shown or '...'}", f"{left_out}; {comment}" if comment else left_out


def _part_lines(kind: str, path: str, cfg: Mapping[str, Any], array: bool = False) -> list[str]:
    """A part's table at ``path`` (``[[path]]`` for an entry of a nested list), then its nested parts'."""
    name = cfg["type"]
    reg = registry.get_registry(kind)
    factory = reg.get(name)
    params = _parameters(factory)
    docs = {key: plain(text) for key, text in part_arg_docs(factory).items()}
    others = [n for n in reg.names() if n != name]
    about = f"{kind}: {_summary(factory)}" + (f"; others: {', '.join(others)}" if others else "")
    rows = [(f"type = {_string(name)}", about)]
    nested = registry.nested_slots(factory)
    for key, value in cfg.items():
        if key == "type" or key in nested:
            continue
        param = params.get(key)
        ann = annotation(param)
        help_text = docs.get(key, "")
        if toml_value(value) is None:  # written commented out, its annotation as the value shown
            rows.append(_assignment(key, value, help_text, f"<{ann}>" if ann else None))
        else:
            rows.append(_assignment(key, value, f"{ann}: {help_text}" if ann and help_text else ann or help_text))
    lines = [f"[[{path}]]" if array else f"[{path}]", *_block(rows)]
    for key, sub_kind in nested.items():
        subs = cfg.get(key)
        if isinstance(subs, (list, tuple)) and subs:
            lines.append(f"# {key}: {docs.get(key, f'the nested {sub_kind}s')} (one [[{path}.{key}]] table each)")
            for sub in subs:
                lines += ["", *_part_lines(sub_kind, f"{path}.{key}", sub, array=True)]
    return lines


def render_toml(cfg: Mapping[str, Any]) -> str:
    """A complete config (as :func:`init_config` returns it) as commented TOML."""
    from .streaming import STREAM_SAMPLE

    task = cfg["task"]
    corpus = DEFAULT_CORPUS.get(task, "")
    out = [f"# seqtag config for {task.upper()}: every setting at the value a run trains with (seqtag init-config).",
           "# Train with:  seqtag train --config THIS_FILE --dataset DATASET",
           "# A key left out takes the same default; `seqtag plugins` lists the parts a [model.*] table can name.",
           "",
           *_block([_assignment(k, cfg[k], plain(TOP_HELP[k])) for k in ("task", "scheme") if k in cfg]),
           "", "[data]"]
    data = {**DATA_DEFAULTS, "stream_sample": STREAM_SAMPLE, **cfg.get("data", {})}
    rows = []
    for key, (default, meaning) in DATA_HELP.items():
        text = plain(meaning)
        if key in data:
            rows.append(_assignment(key, data[key], text))
        else:
            left_out = plain(default.format(default_corpus=corpus, stream_sample=STREAM_SAMPLE))
            rows.append((f"# {key} = {DATA_EXAMPLES.get(key, '...').format(corpus=corpus)}",
                         f"left out: {left_out}; {text}"))
    out += _block(rows)
    model = cfg["model"]
    out += ["", "[model]", *_block([_assignment(k, v, plain(MODEL_HELP[k])) for k, v in model.items()
                                    if k not in registry.KINDS])]
    for kind in registry.KINDS:
        out += ["", *_part_lines(kind, f"model.{kind}", model[kind])]
    training = training_help()
    out += ["", "[training]", *_block([_assignment(k, v, plain(training[k])) for k, v in cfg["training"].items()])]
    return "\n".join(out) + "\n"
