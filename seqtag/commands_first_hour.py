"""The first hour's commands: ``seqtag init-config`` (a complete, commented config) and ``seqtag debug-data``
(what a corpus holds and what training would make of it).

Each is a standalone :mod:`click` command that :mod:`seqtag.cli` registers with ``main.add_command``;
the work is done by :mod:`seqtag.init_config` and :mod:`seqtag.debug_data`. A user error is one
``error:`` line and exit 2, through :func:`seqtag.cli.handle_errors` (``seqtag.cli`` imports this
module only when one of its commands is asked for, so importing the CLI here makes no cycle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from .cli import CONTEXT_SETTINGS, examples, handle_errors
from .config.build import TASKS
from .errors import ConfigError
from .labels import SCHEMES

__all__ = ["init_config_command", "debug_data_command"]


def _part_option(kind: str, example: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(f"--{kind}", default=None, metavar="NAME",
                        help=f"The {kind} part, e.g. {example}, with its own defaults (default: the task's; "
                             f"`seqtag plugins` lists the parts).")


@click.command("init-config", context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag init-config --task ner -o ner.toml                 # the default NER config, every setting shown",
    "seqtag init-config --task pos --encoder gru.v1 -o pos.toml  # a GRU with its own defaults",
    "seqtag train --config ner.toml --dataset conll2003         # train from it"))
@click.option("--task", type=click.Choice(TASKS), default="ner", show_default=True,
              help="The task whose defaults the config holds.")
@_part_option("tokenizer", "whitespace.v1")
@_part_option("embedding", "word.v1")
@_part_option("encoder", "gru.v1")
@_part_option("head", "softmax.v1")
@click.option("--output", "-o", default="-", show_default=True, metavar="FILE",
              help="The TOML file to write; - for standard output.")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@handle_errors
def init_config_command(task: str, tokenizer: str | None, embedding: str | None, encoder: str | None,
                        head: str | None, output: str, force: bool) -> None:
    """Write a complete config: every setting at the value a run trains with, each with a comment.

    The file trains as it is (seqtag train --config FILE --dataset ...); a part chosen with --encoder,
    --head, --embedding or --tokenizer comes with its own defaults.
    """
    from .atomic import atomic_write_bytes
    from .init_config import config_text

    text = config_text(task, {"tokenizer": tokenizer, "embedding": embedding, "encoder": encoder, "head": head})
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.is_dir():
        raise ConfigError(f"--output {output!r} is a folder; expected the config file to write, e.g. {task}.toml")
    if path.exists() and not force:
        raise ConfigError(f"--output {output!r} exists; pass --force to replace it")
    atomic_write_bytes(path, text.encode("utf-8"))
    click.echo(f"wrote {path}; train with: seqtag train --config {path} --dataset DATASET", err=True)


@click.command("debug-data", context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag debug-data --dataset conll2003                     # the catalogue corpus (SEQTAG_CORPORA)",
    "seqtag debug-data --task pos --dataset ud_english_ewt",
    "seqtag debug-data --dataset train=a.conll,dev=b.conll --json"))
@click.option("--dataset", default=None,
              help="What seqtag train --dataset takes: a corpus name, file/folder, split=path,..., or hub id "
                   "(default: the task's corpus).")
@click.option("--task", type=click.Choice(TASKS), default="ner", show_default=True,
              help="ner (entity types, tag schemes) or pos (tags).")
@click.option("--tag-column", default=None, help="Tag column: a number (CoNLL), upos/xpos (CoNLL-U) or a name.")
@click.option("--scheme", type=click.Choice(SCHEMES), default=None,
              help="NER: the tag scheme of the data (default: the catalogue's, else detected).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@handle_errors
def debug_data_command(dataset: str | None, task: str, tag_column: str | None, scheme: str | None,
                       as_json: bool) -> None:
    """Report on a corpus before training: sentences, tokens and labels per split, the tag scheme and
    every repair loading makes (file:line), unknown words, entity overlap, sentence lengths, warnings."""
    from .debug_data import debug_data, render_report

    report = debug_data(dataset, task, tag_column=tag_column, scheme=scheme)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        render_report(report)
