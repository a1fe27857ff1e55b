"""The ``seqtag`` command line: train, evaluate, predict, plugins, export, spacy-package, push, new-plugin,
and the commands of other modules (plot, init-config, debug-data; see :data:`LAZY_COMMANDS`).

Importing this module loads neither torch nor matplotlib: each command imports what it needs when it
runs, and the commands defined elsewhere are imported when they are asked for. Every option has a
help text and every command's help ends with examples; tables and progress bars are
:mod:`seqtag.tables`'s.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, TextIO

import click

from .about import DISTRIBUTION
from .config.build import TASKS
from .errors import Interrupted, SeqtagError
from .registry import KINDS
from .threads import prepare_environment

prepare_environment()  # OpenMP reads its settings when torch loads, which the commands do later


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error as one line and exit 2; Ctrl-C exits 130 without a traceback.

    Running out of memory is a user error too (a smaller batch or model fixes it), whether Python or torch
    reports it; any other exception is a bug and keeps its traceback (exit 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        restore = _terminate_as_interrupt()
        try:
            return fn(*args, **kwargs)
        except SeqtagError as exc:
            _fail(exc.one_line(), exc.exit_code)
        except KeyboardInterrupt as exc:  # 130 for Ctrl-C, 143 for SIGTERM (training saved a checkpoint first)
            click.echo("interrupted", err=True)
            sys.exit(128 + getattr(exc, "signum", 2))
        except (MemoryError, RuntimeError) as exc:  # torch reports a failed allocation as a RuntimeError
            from .resources import out_of_memory

            oom = out_of_memory(exc)
            if oom is None:  # any other RuntimeError is a bug: its traceback is wanted
                raise
            _fail(oom.one_line(), oom.exit_code)
        finally:
            restore()

    return wrapper


def _terminate_as_interrupt() -> Callable[[], None]:
    """For the whole command, SIGTERM (schedulers, ``docker stop``) raises :class:`~seqtag.errors.Interrupted`
    as Ctrl-C raises KeyboardInterrupt: it ends with "interrupted" and exit 143 instead of dying silently (as
    it did while training calibrated or scored test after its loop, which handles both at a step boundary).
    Gives what restores the handler before; nothing changes outside the main thread or where SIGTERM already
    has a handler (a command run by another)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


# commands defined in other modules: name -> (module, attribute); each is imported when it is asked for
# (run, or listed by --help), and left out while its module is not there
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "plot": ("seqtag.commands_plot", "plot"),
    "init-config": ("seqtag.commands_first_hour", "init_config_command"),
    "debug-data": ("seqtag.commands_first_hour", "debug_data_command"),
    "calibrate": ("seqtag.commands_calibrate", "calibrate"),
}


def examples(*lines: str) -> str:
    """A command's epilog: the ``Examples:`` section under its options, lines kept as written."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


class _OneLineErrors(click.Group):
    """A bad option or argument is one ``error:`` line too (click would print the usage and a hint above it).

    The group also holds the commands of :data:`LAZY_COMMANDS`, imported when asked for.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = {name for name, (module, _) in LAZY_COMMANDS.items() if importlib.util.find_spec(module) is not None}
        return sorted(set(super().list_commands(ctx)) | lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[cmd_name]
            if importlib.util.find_spec(module) is None:
                return None
            command = getattr(importlib.import_module(module), attribute, None)
            if isinstance(command, click.Command):
                self.add_command(command, cmd_name)
            else:
                command = None
        return command

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare `seqtag`: the help, as click shows it
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "seqtag"
            _fail(f"{' '.join(exc.format_message().split())} (see `{where} --help`)", exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:  # a file option that cannot be opened, ...
            _fail(" ".join(exc.format_message().split()), exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)


# every command's own, so `-h` works however the command is reached (click keeps the help option it first
# made on the command object)
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


@click.group(cls=_OneLineErrors, context_settings=CONTEXT_SETTINGS,
             epilog=examples("seqtag train --task ner                    # train the default NER model",
                              "seqtag evaluate models/ner                 # score it on its test split",
                              "echo 'Peter lives in Paris.' | seqtag predict models/ner",
                              "seqtag COMMAND --help                      # options and examples"))
@click.version_option(package_name=DISTRIBUTION, help="Show the version and exit.")
def main() -> None:
    """Train, evaluate and serve part-of-speech taggers and named-entity recognisers.

    Corpora are read from $SEQTAG_CORPORA; models are folders (models/ner by default).
    """


no_verify_option = click.option(
    "--no-verify", is_flag=True,
    help="Load the model even if its files differ from the SHA-256 manifest in its meta.json.")


def device_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--device", default=default, show_default=True, metavar="cpu|cuda|cuda:N|mps|auto",
        help="Where the network runs; auto: the first CUDA device when there is one, else the CPU.")


def gold_data_options(purpose: str, split: str, split_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options that choose gold data for a saved model (``evaluate``, ``calibrate``): ``--dataset``,
    ``--split``, ``--tag-column``, ``--scheme`` and ``--batch-size``; ``purpose`` completes "Corpus to ..."."""
    options = [
        click.option("--dataset", default=None, help=f"Corpus to {purpose}: a name, file/folder, split=path,... or "
                                                      "hub id (default: the model's)."),
        click.option("--split", default=split, show_default=True, help=split_help),
        click.option("--tag-column", default=None,
                     help="Tag column of the data: a number (CoNLL), upos/xpos (CoNLL-U) or a name."),
        click.option("--scheme", type=click.Choice(["IOB1", "IOB2", "BIOES"]), default=None,
                     help="NER: the tag scheme of the data (default: the model's data setting, else detected)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
                     help="Sentences per batch."),
    ]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="CPU threads for torch (default: the CPUs not busy with other work, or $SEQTAG_THREADS); "
         "on a shared machine fewer threads are often faster.")


def precision_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--int8`` and ``--bf16``: how a saved model runs (``predict``, ``evaluate``); :func:`_precision` reads them."""
    command = click.option(
        "--bf16", is_flag=True,
        help="Run the recurrences in bfloat16 (cast from the float32 weights at load time; CPUs with "
             "AVX512-BF16 or AMX only; the fast path with AMX and --threads 1; see docs/scale.md, Faster "
             "prediction on the CPU).")(command)
    return click.option(
        "--int8", is_flag=True,
        help="Run the LSTM/GRU and the output layer in int8 (PyTorch dynamic quantization of the float32 "
             "weights at load time; CPU only; see docs/scale.md, Faster prediction on the CPU).")(command)


def _precision(int8: bool, bf16: bool) -> str:
    """The precision ``--int8`` / ``--bf16`` ask for (``fp32`` without either); both is one line."""
    if int8 and bf16:
        from .quantize import QuantizeError

        raise QuantizeError("--int8 and --bf16 are two ways of running the model: choose one")
    return "int8" if int8 else "bf16" if bf16 else "fp32"


def _threads(threads: int | None) -> None:
    """Set torch's threads for a command that computes (see seqtag.threads)."""
    from .threads import configure_threads

    configure_threads(threads)


def _log(msg: str) -> None:
    click.echo(msg, err=False)


@main.command(context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag train --task ner                # CoNLL-2003 into models/ner",
    "seqtag train --config my.toml --dataset data/ --output models/mine",
    "seqtag train --resume models/ner       # continue an interrupted run"))
@click.option("--task", type=click.Choice(TASKS), default=None,
              help="ner or pos (default: ner, or the --config's task).")
@click.option("--dataset", default=None,
              help="Corpus name, file/folder, split=path,..., or hub id owner/name[:config].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="A TOML config file.")
@click.option("--set", "overrides", multiple=True, metavar="SLOT.KEY=VALUE", help="Override a config value.")
@click.option("--output", "-o", type=click.Path(file_okay=False), default=None,
              help="Model directory (default models/TASK).")
@click.option("--force", is_flag=True, help="Write the model into an existing folder that holds other files.")
@click.option("--overwrite", is_flag=True, help="Replace the model (and its run) already in the --output folder.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Stop after N epochs at most (training.max_epochs); with --resume, the run's new limit.")
@click.option("--seed", type=int, default=None, help="The random seed of the run (training.seed).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train N seeds and report median/min/max.")
@click.option("--tag-column", default=None, help="Tag column: a number (CoNLL), upos/xpos (CoNLL-U) or a name.")
@click.option("--scheme", type=click.Choice(["IOB1", "IOB2", "BIOES"]), default=None, help="Tag scheme of the data.")
@click.option("--strict", is_flag=True, help="Invalid tag sequences are an error instead of being repaired.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), default=None,
              help="Continue the interrupted run whose model directory this is.")
@click.option("--no-progress", is_flag=True, help="No progress bar (one is drawn on a terminal).")
@click.option("--report-to", type=click.Choice(["none", "tensorboard"]), default="none", show_default=True,
              help="Also log each epoch's loss, dev score and learning rate (tensorboard: OUTPUT/runs/).")
@click.option("--device", default=None, metavar="cpu|cuda|cuda:N|mps|auto",
              help="Where to train (default: the config's training.device, auto: CUDA when there is one).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: the config's training.threads; 0 there means the CPUs "
                   "not busy with other work, or $SEQTAG_THREADS).")
@click.option("--streaming", is_flag=True,
              help="Stream the training split instead of loading it (vocabulary and labels from a first pass "
                   "of data.stream_sample sentences; dev and test are loaded).")
@handle_errors
def train(task: str | None, dataset: str | None, config_path: str | None, overrides: tuple[str, ...],
          output: str | None, force: bool, overwrite: bool, max_epochs: int | None, seed: int | None, seeds: int,
          tag_column: str | None, scheme: str | None, strict: bool, resume_dir: str | None, no_progress: bool,
          report_to: str, device: str | None, threads: int | None, streaming: bool) -> None:
    """Train a tagger (NER on conll2003 and POS on ud_english_ewt by default) and keep the best one.

    One line per epoch shows the loss, the dev score and tokens/s; the model with the best dev score is
    kept in --output and scored on the test split. Under torchrun (torchrun --nproc_per_node N -m seqtag
    train ...) the N processes train one model with DistributedDataParallel; see docs/scale.md.
    """
    from .callbacks import reporting_callbacks
    from .config import build_config, load_config
    from .workflow import run_training

    if resume_dir is not None:
        from .workflow import resume_training

        given = [name for name, is_given in (
            ("--task", task is not None), ("--dataset", dataset is not None), ("--config", config_path is not None),
            ("--set", bool(overrides)), ("--output", output is not None), ("--force", force),
            ("--overwrite", overwrite), ("--seed", seed is not None),
            ("--seeds", seeds != 1), ("--tag-column", tag_column is not None), ("--scheme", scheme is not None),
            ("--strict", strict), ("--device", device is not None), ("--threads", threads is not None),
            ("--streaming", streaming)) if is_given]
        if given:
            raise click.UsageError(f"--resume continues with the run's own settings (its checkpoint's config, "
                                   f"whose epoch limit --max-epochs may change); {', '.join(given)} "
                                   f"{'is' if len(given) == 1 else 'are'} not taken with it")
        resume_training(Path(resume_dir), progress=not no_progress, log=_log,
                        callbacks=reporting_callbacks(report_to, resume_dir), max_epochs=max_epochs)
        return
    sets = list(overrides)
    if max_epochs is not None:
        sets.append(f"training.max_epochs={max_epochs}")
    if seed is not None:
        sets.append(f"training.seed={seed}")
    if device is not None:
        sets.append(f"training.device={json.dumps(device)}")
    if threads is not None:
        sets.append(f"training.threads={threads}")
    # every layer goes in before the one check: an unknown or conflicting task is refused there too
    cfg = build_config(task, load_config(config_path) if config_path else {}, overrides=sets,
                       data={"dataset": dataset, "tag_column": tag_column, "scheme": scheme, "strict": strict,
                             "streaming": streaming})
    out = Path(output or f"models/{cfg['task']}")
    run_training(cfg, out, seeds=seeds, progress=not no_progress, log=_log, force=force, overwrite=overwrite,
                 callbacks=reporting_callbacks(report_to, out))


@main.command(context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag evaluate models/ner             # its corpus's test split",
    "seqtag evaluate models/pos --dataset data/ --split dev --json",
    "seqtag evaluate models/ner --output metrics.json --report reports/ner",
    "seqtag evaluate models/ner --bf16 --threads 1      # the F1 of the faster bfloat16 path"))
@click.argument("model", type=click.Path())
@gold_data_options("score on", "test", "The split to score (train, dev, test; a single file is every split).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as one JSON object instead of tables.")
@click.option("--output", "output", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write the scores to FILE as JSON (the object --json prints), atomically.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Also write an HTML report (tables and pictures, one report.html) into DIR.")
@click.option("--no-progress", is_flag=True, help="No progress bar (one is drawn on a terminal's standard error).")
@precision_options
@device_option("auto")
@threads_option
@no_verify_option
@handle_errors
def evaluate(model: str, dataset: str | None, split: str, tag_column: str | None, scheme: str | None,
             batch_size: int, as_json: bool, output: str | None, report_dir: str | None, no_progress: bool,
             int8: bool, bf16: bool, device: str, threads: int | None, no_verify: bool) -> None:
    """Score the saved tagger MODEL: seqeval entity P/R/F1 (NER) or token accuracy (POS).

    NER: seqeval's report (each entity type, then the micro, macro and weighted averages), strict-mode
    scores and the errors by kind; POS: the accuracy, each tag's accuracy and the most frequent
    confusions.
    """
    from .predict_io import counting_tokens
    from .quantize import load_precision
    from .tables import format_scores, is_terminal, progress_bar
    from .workflow import evaluate_tagger

    _threads(threads)
    tagger = load_precision(model, _precision(int8, bf16), verify=not no_verify, device=device)
    with progress_bar("scoring", "tokens", enabled=False if no_progress else None) as bar, \
            counting_tokens(tagger, bar):
        scores = evaluate_tagger(tagger, dataset, split, tag_column=tag_column, scheme=scheme,
                                 batch_size=batch_size, warn=lambda m: bar.print(f"warning: {m}"),
                                 confusion=report_dir is not None)
    written = []
    if output is not None:
        _write_scores(Path(output), scores)
        written.append(f"scores written to {output}")
    if report_dir is not None:
        from .report import write_report

        page = write_report(scores, report_dir, title=f"{Path(model).name}: {scores['dataset']} [{split}]")
        written.append(f"report written to {page}")
    click.echo(json.dumps(scores) if as_json else format_scores(scores, color=is_terminal(sys.stdout)))
    for line in written:
        click.echo(line, err=True)


def _write_scores(path: Path, scores: dict[str, Any]) -> None:
    """``evaluate --output``: the scores as JSON, written atomically; a path that cannot be written is one line."""
    from .atomic import atomic_write_json
    from .errors import ConfigError

    try:
        atomic_write_json(path, scores)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the scores ({exc.strerror or exc}); choose another --output") \
            from None


@main.command(context_settings=CONTEXT_SETTINGS, epilog=examples(
    "echo 'Peter lives in Paris.' | seqtag predict models/ner   # JSON lines",
    "seqtag predict models/ner texts.txt > tagged.jsonl",
    "seqtag predict models/pos tokens.conll --output-format conll",
    "seqtag predict models/ner texts.txt --int8 --threads 1 > tagged.jsonl"))
@click.argument("model", type=click.Path())
@click.argument("input", type=click.File("r", encoding="utf-8"), default="-", metavar="[FILE]")
@click.option("--input-format", type=click.Choice(["auto", "text", "conll"]), default="auto", show_default=True,
              help="text: one text per line, tokenized by the model; conll: a token per line (first column); "
                   "auto: by the file name (.conll...), else by the first lines.")
@click.option("--output-format", type=click.Choice(["auto", "conll", "jsonl"]), default="auto", show_default=True,
              help="jsonl: one JSON object per input (tokens, tags, scores, entities); conll: token and tag "
                   "columns; auto: conll for CoNLL input, else jsonl.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Sentences per batch.")
@click.option("--no-progress", is_flag=True,
              help="No progress bar (one is drawn on a terminal's standard error while the output goes elsewhere).")
@precision_options
@device_option("auto")
@threads_option
@no_verify_option
@handle_errors
def predict(model: str, input: TextIO, input_format: str, output_format: str, batch_size: int, no_progress: bool,
            int8: bool, bf16: bool, device: str, threads: int | None, no_verify: bool) -> None:
    """Tag raw text or CoNLL tokens from FILE (default: standard input) with the saved tagger MODEL.

    With --input-format auto, a file named *.conll (.conllu, .iob, .bio, .tsv...) is read as CoNLL
    columns, and any other input by what its first lines look like (said on standard error); a terminal
    is read as text and answered line by line. MODEL may be hf://owner/name, a model on the hub.
    """
    from .predict_io import predict_lines

    _threads(threads)
    for line in predict_lines(model, input, input_format, output_format, batch_size,
                              log=lambda msg: click.echo(msg, err=True), verify=not no_verify, device=device,
                              progress=False if no_progress else None, precision=_precision(int8, bf16)):
        click.echo(line)  # flushed line by line, which a terminal's user waits for


@main.command(context_settings=CONTEXT_SETTINGS, epilog=examples("seqtag plugins", "seqtag plugins --json"))
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of the parts (kind, name, distribution, version, description).")
@handle_errors
def plugins(as_json: bool) -> None:
    """List every registered part by kind, with its distribution and a description.

    Third-party parts come from installed distributions' entry points (SEQTAG_DISABLE_PLUGIN_AUTOLOAD=1
    turns them off); use a part with --set model.KIND.type=NAME.
    """
    from .registry import REGISTRIES, autoload_enabled

    rows: list[dict[str, Any]] = []
    for kind, reg in REGISTRIES.items():
        for info in reg.all():
            rows.append({"kind": kind, "name": info.name, "distribution": info.distribution,
                         "version": info.version, "description": info.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from .tables import format_plugins, is_terminal

    click.echo(format_plugins(rows, list(REGISTRIES), color=is_terminal(sys.stdout)))
    if not autoload_enabled():
        click.echo("(third-party plugins are off: SEQTAG_DISABLE_PLUGIN_AUTOLOAD is set)")


@main.command("spacy-package", context_settings=CONTEXT_SETTINGS, epilog=examples(
    "seqtag spacy-package models/ner pipelines/ner",
    "seqtag spacy-package models/ner pipelines/ner --package-dir dist"))
@click.argument("model", type=click.Path())
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--lang", default="en", show_default=True, help="Language of the spaCy tokenizer (spacy.blank code).")
@click.option("--name", default=None, help="Pipeline name in meta.json (default seqtag_TASK).")
@click.option("--version", "version", default=None,
              help="Pipeline version in meta.json (default: the model's, else 0.1.0).")
@click.option("--meta", "meta_path", type=click.Path(dir_okay=False), default=None,
              help="A JSON file of entries merged into the pipeline's meta.json (author, license, requirements...).")
@click.option("--spans-key", default=None, help="NER: write the span group doc.spans[KEY] instead of doc.ents.")
@click.option("--package-dir", default=None, type=click.Path(file_okay=False),
              help="Also build an installable package of the pipeline here (spacy package).")
@click.option("--build", "formats", default="wheel", show_default=True,
              help="With --package-dir: the archives to build, sdist and/or wheel (comma-separated).")
@click.option("--force", is_flag=True, help="Write into OUTPUT_DIR even when it is not empty (never into a model).")
@no_verify_option
@handle_errors
def spacy_package(model: str, output_dir: str, lang: str, name: str | None, version: str | None,
                  meta_path: str | None, spans_key: str | None, package_dir: str | None, formats: str,
                  force: bool, no_verify: bool) -> None:
    """Turn the saved tagger MODEL into a spaCy pipeline in OUTPUT_DIR that spacy.load opens (and a package).

    The pipeline's meta.json pins this seqtag and each plugin distribution the model needs, and
    carries the model's test scores.
    """
    from .spacy_package import build_package, package_pipeline, read_meta_file

    extra = read_meta_file(meta_path) if meta_path is not None else None
    out = package_pipeline(model, output_dir, lang=lang, name=name, spans_key=spans_key, force=force,
                           verify=not no_verify, version=version, meta=extra)
    click.echo(f"spaCy pipeline written to {out}; open it with spacy.load({str(out)!r})")
    if package_dir is not None:
        for archive in build_package(out, package_dir, [f.strip() for f in formats.split(",") if f.strip()]):
            click.echo(f"package built: {archive}; install it with pip install {archive}")


@main.command(context_settings=CONTEXT_SETTINGS, epilog=examples("seqtag push models/ner owner/name",
                              "seqtag push models/ner owner/name --private --revision v1"))
@click.argument("model", type=click.Path(file_okay=False))
@click.argument("repo_id", metavar="OWNER/NAME")
@click.option("--private", is_flag=True, help="Create the repository as private (when it does not exist yet).")
@click.option("--revision", default=None, help="The branch to push to (created if needed; default main).")
@click.option("--commit-message", default=None, help="The commit message on the hub.")
@handle_errors
def push(model: str, repo_id: str, private: bool, revision: str | None, commit_message: str | None) -> None:
    """Upload the saved tagger MODEL to the Hugging Face hub model repository OWNER/NAME, with a generated model
    card; load it back with seqtag.load('hf://OWNER/NAME')."""
    from .hub_models import push_model

    url = push_model(model, repo_id, private=private, revision=revision, commit_message=commit_message)
    click.echo(f"pushed {model} to {url}; load it with seqtag.load('hf://{repo_id}')")


@main.command("new-plugin", context_settings=CONTEXT_SETTINGS, epilog=examples("seqtag new-plugin window",
                                             "seqtag new-plugin bio_embeddings --kind embedding --dir plugins"))
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="encoder",
              show_default=True, help="The kind of part the plugin provides.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The folder to create the plugin package in.")
@handle_errors
def new_plugin(name: str, kind: str, directory: str) -> None:
    """Write a plugin package seqtag-NAME: pyproject with the entry point, a working part, README and a test.

    NAME is the plugin's name (the part is registered as NAME.v1).
    """
    from .scaffold import new_plugin as scaffold
    from .scaffold import plugin_names

    root = scaffold(name, kind, Path(directory))
    names = plugin_names(name, kind)
    click.echo(f"wrote {root}/ ({names.distribution}: the {kind} {names.part!r}, class {names.package}.{names.cls})")
    click.echo(f"next:  pip install -e {root}  &&  pytest {root / 'tests'}")
    click.echo(f"use:   seqtag train --set model.{kind}.type={names.part} ...")


@main.command(context_settings=CONTEXT_SETTINGS,
              epilog=examples("seqtag export models/ner               # writes models/ner/model.onnx",
                              "seqtag export models/ner -o ner.onnx --no-confidence"))
@click.argument("model", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format (the whole tagger, CRF decoding included).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="The file to write (default MODEL/model.onnx).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset version.")
@click.option("--no-confidence", is_flag=True, help="Leave out the per-tag confidences (faster CRF decoding).")
@click.option("--no-verify", is_flag=True, help="Skip the check of the model's files against the SHA-256 "
              "manifest in its meta.json, and the run of the exported file against PyTorch.")
@device_option("cpu")
@threads_option
@handle_errors
def export(model: str, fmt: str, output: str | None, opset: int, no_confidence: bool, no_verify: bool,
           device: str, threads: int | None) -> None:
    """Export the saved tagger MODEL to ONNX; run it with seqtag.export.OnnxTagger or onnxruntime.

    The exported file runs on any device; --device is where the model is traced and checked.
    """
    from .export import export_onnx

    _threads(threads)
    out = export_onnx(model, output, opset=opset, confidence=not no_confidence, verify=not no_verify,
                      device=device)
    click.echo(f"ONNX model written to {out}; run it with seqtag.export.OnnxTagger({model!r}, {str(out)!r})")


if __name__ == "__main__":  # pragma: no cover
    main()
