"""What a config's keys and a part's arguments mean: the one source of the configuration reference
(``docs/reference/config.md``, written by ``docs/generate.py``) and of the comments ``seqtag init-config``
writes (:mod:`seqtag.init_config`).

The descriptions stand beside the keys they describe: the top-level, ``[data]`` and ``[model]`` keys' in
:mod:`seqtag.config.tables` (:data:`TOP_HELP`, :data:`DATA_HELP`, :data:`MODEL_HELP`), each ``[training]``
setting's in its field's ``help`` metadata on :class:`~seqtag.config.TrainingConfig`
(:func:`training_help`). They are markdown, a link written relative to ``docs/reference/``. A part's
arguments are described in the ``Args:`` section of its docstring, in reST markup, or in those of the
classes it inherits from (:func:`part_arg_docs`). :func:`markdown` and :func:`plain` give either as the
reference or a TOML comment shows it.
"""

from __future__ import annotations

import dataclasses
import inspect
import posixpath
import re
from typing import Any, Callable

from .tables import DATA_HELP, MODEL_HELP, TOP_HELP
from .training import TrainingConfig

__all__ = ["TOP_HELP", "DATA_HELP", "MODEL_HELP", "training_help", "docstring_sections", "part_arg_docs",
           "part_summary", "annotation", "markdown", "plain"]

_HEADER = re.compile(r"^[A-Z][A-Za-z ]*:$")  # a section's header: Args:, Returns:, Raises:, ...
_ENTRY = re.compile(r"^\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")  # name: text, name (type): text, **name: text
ARGS_SECTIONS = ("Args:", "Arguments:", "Parameters:")
_ROLE = re.compile(r":\w+:`(~?)([^`]+)`")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
_LINKS_FROM = "docs/reference"  # where the descriptions' relative links start


def training_help() -> dict[str, str]:
    """Each ``[training]`` setting's description, in the fields' order: its ``help`` metadata, then the
    values it takes where it takes only some (``One of `adam`, `adamw`, `sgd`.``)."""
    out = {}
    for f in dataclasses.fields(TrainingConfig):
        text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            text += " One of " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
        out[f.name] = text
    return out


def docstring_sections(doc: str) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's summary (its text before the first section, as written) and the entries
    of its ``Args:`` section: each argument's name (``*`` dropped) and text, on one line, markup kept.

    An entry is a line at the section's first indent; the lines indented deeper continue it. A line
    back at the docstring's own indent ends the section.
    """
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    indent, current = -1, ""
    for line in inspect.cleandoc(doc).splitlines():
        text = line.strip()
        lead = len(line) - len(line.lstrip())
        header = bool(lead == 0 and _HEADER.match(text))
        if header or (text and lead == 0 and section is not None):
            section = text if header else ""  # "": past a section's end, in none
            indent, current = -1, ""
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in ARGS_SECTIONS or not text:
            continue
        indent = lead if indent < 0 else indent
        entry = _ENTRY.match(text) if lead == indent else None
        if entry:
            current = entry.group(1)
            args[current] = entry.group(2)
        elif current:
            args[current] += " " + text
    return "\n".join(summary).strip(), args


def part_arg_docs(factory: Callable[..., Any]) -> dict[str, str]:
    """The text of each argument of a part (a registered class or function): the ``Args:`` sections of
    its docstring and its ``__init__``'s, else of the classes it inherits from (``lstm.v1`` documents
    its arguments on ``GatedEncoder``), nearest first; markup kept."""
    owners = inspect.getmro(factory) if isinstance(factory, type) else (factory,)
    docs: dict[str, str] = {}
    for owner in owners:
        init = vars(owner).get("__init__") if isinstance(owner, type) else None
        for doc in (getattr(owner, "__doc__", None), getattr(init, "__doc__", None)):
            if isinstance(doc, str):
                for key, text in docstring_sections(doc)[1].items():
                    docs.setdefault(key, text)
    return docs


def part_summary(factory: Callable[..., Any]) -> str:
    """A part's docstring before its sections (its first paragraph is the one-line description); markup
    kept, ``""`` when it has none."""
    doc = inspect.getdoc(factory)
    return docstring_sections(doc)[0] if doc else ""


def annotation(param: inspect.Parameter | None) -> str:
    """A parameter's annotation as written in the source (``int | None``), or ``""``."""
    if param is None or param.annotation is inspect.Parameter.empty:
        return ""
    ann = param.annotation
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def markdown(text: str) -> str:
    """reST inline markup as markdown: ``x`` and :class:`~a.B` become `x` and `B` (:class:`a.B`: `a.B`);
    markdown is left as it is."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    return text.replace("``", "`")


def _target(m: re.Match[str]) -> str:
    url = m.group(2)
    return url if "://" in url else posixpath.normpath(posixpath.join(_LINKS_FROM, url))


def plain(text: str) -> str:
    """A description as plain text on one line, for a comment: code marks dropped, a link as the file it
    names from the repository's root (``[scale.md](../scale.md)``: ``docs/scale.md``)."""
    return " ".join(_LINK.sub(_target, markdown(text)).replace("`", "").split())
