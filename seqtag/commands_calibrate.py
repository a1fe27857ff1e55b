"""``seqtag calibrate``: fit a saved tagger's confidence temperature on a gold split (dev by default).

Training does this at its end (``training.calibrate``); the command does it for a model trained
without it, or on other data. Both go through :func:`seqtag.calibration.calibrate_and_save`. The
command is registered lazily by :mod:`seqtag.cli`.
"""

from __future__ import annotations

import json

import click

from .cli import (
    CONTEXT_SETTINGS,
    _threads,
    device_option,
    examples,
    gold_data_options,
    handle_errors,
    no_verify_option,
    threads_option,
)

__all__ = ["calibrate"]


@click.command("calibrate", context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag calibrate models/ner                        # on the dev split of its corpus",
    "seqtag calibrate models/pos --dataset data/ --split dev",
    "seqtag calibrate models/ner --json"))
@click.argument("model", type=click.Path())
@gold_data_options("fit on", "dev", "The split to fit on; never the test split you report on.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@device_option("auto")
@threads_option
@no_verify_option
@handle_errors
def calibrate(model: str, dataset: str | None, split: str, tag_column: str | None, scheme: str | None,
              batch_size: int, as_json: bool, device: str, threads: int | None, no_verify: bool) -> None:
    """Fit the temperature of the saved tagger MODEL so that its confidences are calibrated.

    The head's scores are divided by a temperature before confidences are computed, chosen on the
    split to minimise their log loss; the tags never change. MODEL is saved again (atomically) with the
    temperature in config.json and the figures (ECE before and after) in meta.json.
    """
    from .calibration import calibrate_and_save
    from .errors import ConfigError
    from .tagger import Tagger
    from .workflow import gold_split

    _threads(threads)
    tagger = Tagger.load(model, verify=not no_verify, device=device)
    _, gold = gold_split(tagger, dataset, split, tag_column=tag_column, scheme=scheme,
                         warn=lambda m: click.echo(f"warning: {m}", err=True))
    if not gold:
        raise ConfigError(f"the {split} split has no sentences to calibrate on; choose another --split")
    figures = calibrate_and_save(tagger, gold, model, batch_size=batch_size,
                                 log=lambda m: None if as_json else click.echo(m))
    if figures is None:
        raise ConfigError(f"{model}: its head ({type(tagger.model.head).__name__}) takes no temperature, "
                          "so its confidences cannot be calibrated")
    if as_json:
        click.echo(json.dumps(figures))
    else:
        click.echo(f"saved in {model}")
