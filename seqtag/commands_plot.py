"""``seqtag plot``: draw a run's training curves again, or the curves of every seed of a multi-seed run.

The command is a standalone :func:`click.command` that :mod:`seqtag.cli` registers; it draws through
:mod:`seqtag.history` (the same picture training draws after each epoch).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

__all__ = ["plot"]


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`seqtag.cli.handle_errors` around ``fn``, looked up when the command runs (the CLI module
    imports this one to register the command, so importing it here first would be circular)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .cli import handle_errors

        return handle_errors(fn)(*args, **kwargs)

    return wrapper


@click.command("plot")
@click.argument("model", type=click.Path())
@click.option("--seeds", type=click.IntRange(min=1), default=None, metavar="N",
              help="MODEL is the --output folder of `seqtag train --seeds N`: draw the curves of its first N "
                   "seeds in one picture (default MODEL/seeds.png).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="The PNG to write (default MODEL/training.png, or MODEL/seeds.png with --seeds).")
@_handle_errors
def plot(model: str, seeds: int | None, output: str | None) -> None:
    """Draw the training loss and dev score per epoch of the run in MODEL, from its history.jsonl.

    Training draws MODEL/training.png after each epoch; this draws it again (after a resume, or where
    drawing failed), or with --seeds N the seeds of a multi-seed run, a line each.
    """
    from .history import draw_history, draw_seeds

    out = draw_seeds(model, seeds, output) if seeds is not None else draw_history(model, output=output)
    click.echo(f"training curves drawn in {out}")
