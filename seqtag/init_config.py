"""``seqtag init-config``: a task's complete config written out as TOML, every key filled and commented.

:func:`init_config` builds the config with :func:`~seqtag.config.build_config`, so every value is the
one a run would train with: the task's defaults (``seqtag/configs/ner.toml`` or ``pos.toml``), and for
a part chosen in a slot (``--encoder gru.v1``) that part's own defaults in place of the default part's.
:func:`render_toml` writes it with a comment on each key: for a part's arguments, the annotation from
its signature and the text of its docstring's ``Args:`` section (the classes it inherits from
included); for ``[data]``, ``[model]`` and ``[training]``, the descriptions below. A key whose default
is ``None`` (TOML has no null) is written commented out; left out, it takes the same default.

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
from .config.tables import DATA_KEYS
from .data import DEFAULT_CORPUS
from .errors import ConfigError

__all__ = ["init_config", "render_toml", "config_text", "part_arg_docs", "TOP_HELP", "MODEL_HELP", "DATA_HELP",
           "TRAINING_HELP"]

TOP_HELP = {
    "task": "ner or pos",
    "scheme": "NER: the tag scheme the model trains on, BIOES or IOB2 (scores are always IOB2); POS: none",
}
MODEL_HELP = {"dropout": "dropout after the embedding and after the encoder, in [0, 1)"}
# [data]: every key, as (the value shown when it is left out, what it does); None shown: written as set
DATA_HELP: dict[str, tuple[str | None, str]] = {
    "dataset": ('"{corpus}"', "a catalogue name, a file or folder, train=PATH,dev=PATH,..., or a hub id "
                              "owner/name[:config]; left out: {corpus} (--dataset)"),
    "tag_column": ('"3"', "CoNLL: a column number; CoNLL-U: upos or xpos; datasets: a column name; "
                          "left out: the last column, upos, or the dataset's tag column (--tag-column)"),
    "scheme": ('"IOB1"', "NER: the data's tag scheme, IOB1, IOB2 or BIOES; left out: detected (--scheme)"),
    "strict": (None, "invalid tag sequences are an error instead of being repaired (--strict)"),
    "streaming": (None, "stream the training split instead of loading it (--streaming; docs/scale.md)"),
    "stream_sample": (None, "streamed: the first pass's sentences, for the vocabulary, labels and scheme"),
}
TRAINING_HELP = {
    "optimizer": "adam, adamw or sgd",
    "lr": "the learning rate",
    "weight_decay": "weight decay (L2; decoupled in adamw)",
    "momentum": "sgd's momentum",
    "batch_size": "sentences per batch, batches bucketed by length",
    "max_epochs": "epochs at most (--max-epochs)",
    "max_steps": "batches at most over the run (0: no limit)",
    "patience": "stop after this many epochs without a better dev score",
    "grad_clip": "clip the gradients' norm to this (0: no clipping)",
    "lr_decay": "multiply the lr by this when dev stalls for lr_patience epochs (1.0: no decay)",
    "lr_patience": "epochs without a better dev score before the lr decays",
    "seed": "the random seed (--seed)",
    "threads": "CPU threads for torch; 0: the CPUs not busy with other work (--threads; docs/scale.md)",
    "checkpoint_every": "also checkpoint every N batches (0: at each epoch's end only)",
    "eval_batch_size": "sentences per batch when scoring dev",
    "max_train_sentences": "train on the first N training sentences (0: all)",
    "device": "cpu, cuda, cuda:N, mps or auto (CUDA when there is one; --device)",
    "precision": "fp32, bf16 or fp16 (CUDA): mixed precision through torch.autocast",
}
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

_ARG_LINE = re.compile(r"^\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_SECTION = ("Args:", "Arguments:", "Parameters:")


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``:class:`~a.B``` as ``B``, double backquotes dropped."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"\1", text)
    return " ".join(text.replace("``", "").split())


def _args_section(doc: str) -> dict[str, str]:
    """The entries of a Google-style ``Args:`` section: argument name to its text (on one line)."""
    out: dict[str, str] = {}
    inside, indent, current = False, -1, ""
    for line in inspect.cleandoc(doc).splitlines():
        text = line.strip()
        if not inside:
            inside, indent = text in _SECTION, -1
            continue
        lead = len(line) - len(line.lstrip())
        if not text or lead == 0:  # a blank line or the next section ends it
            inside, current = False, ""
            continue
        indent = lead if indent < 0 else indent
        match = _ARG_LINE.match(text) if lead == indent else None
        if match:
            current = match.group(1)
            out[current] = match.group(2)
        elif current and lead > indent:
            out[current] += " " + text
    return {k: _plain(v) for k, v in out.items()}


def part_arg_docs(factory: Callable[..., Any]) -> dict[str, str]:
    """The text each argument of a part has in its docstrings: its ``Args:`` section, else those of the
    classes it inherits from (``lstm.v1`` documents its arguments on ``GatedEncoder``), nearest first."""
    owners = inspect.getmro(factory) if isinstance(factory, type) else (factory,)
    docs: dict[str, str] = {}
    for owner in owners:
        init = vars(owner).get("__init__") if isinstance(owner, type) else None
        for doc in (getattr(owner, "__doc__", None), getattr(init, "__doc__", None)):
            if isinstance(doc, str):
                for key, text in _args_section(doc).items():
                    docs.setdefault(key, text)
    return docs


def _summary(factory: Callable[..., Any]) -> str:
    """A part's docstring's first paragraph, on one line."""
    doc = inspect.getdoc(factory) or ""
    return _plain(doc.split("\n\n")[0]).rstrip(".")


def _parameters(factory: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}


def _annotation(param: inspect.Parameter | None) -> str:
    """A parameter's annotation as written in the source (``int | None``), or ``""``."""
    if param is None or param.annotation is inspect.Parameter.empty:
        return ""
    ann = param.annotation
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


# -- TOML -----------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL, which JSON leaves, is escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str | None:
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
        items = [_value(v) for v in value]
        written = [i for i in items if i is not None]
        return "[" + ", ".join(written) + "]" if len(written) == len(items) else None
    if isinstance(value, Mapping):
        pairs = [f"{_key(str(k))} = {_value(v)}" for k, v in value.items() if _value(v) is not None]
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
    text = _value(value)
    if text is not None:
        return f"{_key(key)} = {text}", comment
    left_out = "left out: none" if value is None else f"left out: {value!r}"
    return f"# {_key(key)} = {shown or '...'}", f"{left_out}; {comment}" if comment else left_out


def _part_lines(kind: str, path: str, cfg: Mapping[str, Any], array: bool = False) -> list[str]:
    """A part's table at ``path`` (``[[path]]`` for an entry of a nested list), then its nested parts'."""
    name = cfg["type"]
    reg = registry.get_registry(kind)
    factory = reg.get(name)
    params, docs = _parameters(factory), part_arg_docs(factory)
    others = [n for n in reg.names() if n != name]
    about = f"{kind}: {_summary(factory)}" + (f"; others: {', '.join(others)}" if others else "")
    rows = [(f"type = {_string(name)}", about)]
    nested = registry.nested_slots(factory)
    for key, value in cfg.items():
        if key == "type" or key in nested:
            continue
        param = params.get(key)
        ann = _annotation(param)
        help_text = docs.get(key, "")
        if _value(value) is None:  # written commented out, its annotation as the value shown
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
           *_block([_assignment(k, cfg[k], TOP_HELP.get(k, "")) for k in ("task", "scheme") if k in cfg]),
           "", "[data]"]
    data = {**DATA_DEFAULTS, "stream_sample": STREAM_SAMPLE, **cfg.get("data", {})}
    rows = []
    for key in DATA_KEYS:
        shown, text = DATA_HELP.get(key, (None, ""))
        text = text.format(corpus=corpus)
        if key in data:
            rows.append(_assignment(key, data[key], text))
        else:
            rows.append((f"# {key} = {(shown or '...').format(corpus=corpus)}", text))
    out += _block(rows)
    model = cfg["model"]
    out += ["", "[model]", *_block([_assignment(k, v, MODEL_HELP.get(k, "")) for k, v in model.items()
                                    if k not in registry.KINDS])]
    for kind in registry.KINDS:
        out += ["", *_part_lines(kind, f"model.{kind}", model[kind])]
    out += ["", "[training]", *_block([_assignment(k, v, TRAINING_HELP.get(k, "")) for k, v in
                                       cfg["training"].items()])]
    return "\n".join(out) + "\n"
