"""``seqtag plot``: draw a run's training curves again, or the curves of every seed of a multi-seed run.

The command is a standalone :func:`click.command` that :mod:`seqtag.cli` registers (importing this
module only when the command is asked for, so importing the CLI here makes no cycle); it draws through
:mod:`seqtag.history` (the same picture training draws after each epoch).
"""

from __future__ import annotations

import click

from .cli import CONTEXT_SETTINGS, examples, handle_errors

__all__ = ["plot"]


@click.command("plot", context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag plot models/ner                      # redraw models/ner/training.png",
    "seqtag plot models/ner -o curves.png",
    "seqtag plot models/ner-3 --seeds 3          # after seqtag train --seeds 3 -o models/ner-3"))
@click.argument("model", type=click.Path())
@click.option("--seeds", type=click.IntRange(min=1), default=None, metavar="N",
              help="MODEL is the --output folder of `seqtag train --seeds N`: draw the curves of its first N "
                   "seeds in one picture (default MODEL/seeds.png).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="The PNG to write (default MODEL/training.png, or MODEL/seeds.png with --seeds).")
@handle_errors
def plot(model: str, seeds: int | None, output: str | None) -> None:
    """Draw the training loss and dev score per epoch of the run in MODEL, from its history.jsonl.

    Training draws MODEL/training.png after each epoch; this draws it again (after a resume, or where
    drawing failed), or with --seeds N the seeds of a multi-seed run, a line each.
    """
    from .history import draw_history, draw_seeds

    out = draw_seeds(model, seeds, output) if seeds is not None else draw_history(model, output=output)
    click.echo(f"training curves drawn in {out}")
