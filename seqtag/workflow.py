"""What the CLI commands do, as functions: train (one seed or several), resume, evaluate (predict: predict_io).

The Python API (:mod:`seqtag.api`) goes through the same functions: data given in memory is loaded
into the same :class:`~seqtag.corpus.Corpus` a ``--dataset`` is, and trained and scored by the same code.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .atomic import atomic_write_json
from .context import context_size
from .corpus import Corpus, token_line
from .data import DEFAULT_CORPUS, load_corpus
from .errors import DataError

__all__ = ["run_training", "resume_training", "evaluate_tagger", "corpus_for"]


def corpus_for(task: str, data: dict[str, Any], warn: Callable[[str], None] | None = None,
               dataset: Any = None) -> Corpus:
    """Load the corpus named in a config's ``data`` table (or ``dataset``, data given in memory, read with
    the table's ``tag_column``, ``scheme`` and ``strict``)."""
    return load_corpus(data.get("dataset") if dataset is None else dataset, task, tag_column=data.get("tag_column"),
                       scheme=data.get("scheme"), strict=bool(data.get("strict", False)), warn=warn)


def _splits(corpus: Corpus, cfg: dict[str, Any], log: Callable[[str], None]) -> tuple[list, list, list | None]:
    """The training sentences (in the training scheme), the dev sentences (IOB2 for NER; held out from
    train when the corpus has no dev split) and the test sentences (``None`` without a test split).

    A dev or test tag that the training data lacks is answered as ``seqtag evaluate`` answers it
    (:func:`check_gold_labels`), before any training.
    """
    task = cfg["task"]
    train_scheme = cfg["scheme"] if task == "ner" else None
    eval_scheme = "IOB2" if task == "ner" else None
    if not (corpus.has_split("train") or corpus.single):
        raise DataError(f"the corpus {corpus.name!r} has no train split; its splits: {', '.join(corpus.split_names)}")
    # the training split's tags as read: their entity types (NER) and tags (POS) are those of any scheme
    labels = sorted({t for _, tags in corpus.sentences("train") for t in tags})

    def warn(message: str) -> None:
        log(f"warning: {message}")

    context = context_size(cfg["model"])  # document context: the sentences come with their windows
    if corpus.has_split("dev"):
        dev = corpus.sentences("dev", eval_scheme, context)
        check_gold_labels(task, labels, corpus, "dev", dev, warn=warn, owner="training split")
    else:
        corpus = corpus.hold_out(fraction=0.1, seed=0)
        dev = corpus.sentences("dev", eval_scheme, context)
        log(f"no dev split: holding out {len(dev)} training sentences for model selection")
    train = corpus.sentences("train", train_scheme, context)
    test = None
    if corpus.has_split("test"):
        test = corpus.sentences("test", eval_scheme, context)
        check_gold_labels(task, labels, corpus, "test", test, warn=warn, owner="training split")
    return train, dev, test


def run_training(cfg: dict[str, Any], output: Path, seeds: int = 1, progress: bool = True,
                 log: Callable[[str], None] = print, force: bool = False, overwrite: bool = False,
                 dataset: Any = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train on the configured corpus, keep the best model in ``output``, score it on the test split.

    ``dataset`` is data given in memory, trained on instead of the config's ``data.dataset``
    (see :func:`corpus_for`); ``callbacks`` follow each run (see :mod:`seqtag.callbacks`).
    ``output`` is claimed first (see :func:`seqtag.outputs.claim_output`): a folder holding a model is
    replaced only with ``overwrite``, another non-empty folder is written into only with ``force``, and
    the folder stays locked against other runs until this one ends. Under ``torchrun`` every process
    runs this function and rank 0 alone claims the folder, logs and writes (see :mod:`seqtag.distributed`).
    """
    from .distributed import session
    from .outputs import claim_output
    from .trainer import train

    task = cfg["task"]
    with session(cfg["training"].get("device")) as (dist, device):
        if not dist.main:
            log, progress, callbacks = _quiet, False, ()
        claim = claim_output(output, force=force, overwrite=overwrite) if dist.main else contextlib.nullcontext()
        with claim:
            run = _prepare(cfg, log, warn=lambda m: log(f"warning: {m}"), dataset=dataset)
            scheme = f", data scheme {run.scheme}, training scheme {cfg['scheme']}" if task == "ner" else ""
            log(f"{run.name}: {run.describe_train()} and {len(run.dev)} dev sentences, {len(run.labels)} labels"
                f"{scheme}" + (f"; {dist.world_size} processes ({device})" if dist.enabled else
                               f"; on {device}" if device.type != "cpu" else ""))
            kwargs = {"progress": progress, "log": log, "meta": run.meta, "callbacks": callbacks, "dist": dist,
                      "device": device, "stream": run.stream}
            if seeds > 1:
                return _run_seeds(cfg, output, seeds, run, kwargs)
            tagger, summary = train(cfg, run.train, run.dev, output, **kwargs)
            return _finish(tagger, summary, run.test if dist.main else None, output, log)


def _quiet(message: str) -> None:
    """The log of a rank other than 0: its lines are rank 0's."""


@dataclass
class _Data:
    """What a run trains and scores on: the training sentences (or, streamed, the first pass's sample
    and the stream), dev and test sentences, and the ``meta`` that names the data."""

    name: str
    scheme: str | None
    labels: list[str]
    train: list
    dev: list
    test: list | None
    meta: dict[str, Any]
    stream: Any = None

    def describe_train(self) -> str:
        if self.stream is None:
            return f"{len(self.train)} training sentences"
        return f"training sentences streamed from {self.stream.source} (first pass: {len(self.train)})"


def _prepare(cfg: dict[str, Any], log: Callable[[str], None], warn: Callable[[str], None],
             dataset: Any = None) -> _Data:
    """The data of a run (what a new run and a resumed one both start from): the corpus loaded, or with
    ``data.streaming`` its training split streamed (:mod:`seqtag.streaming`)."""
    data = cfg.get("data", {})
    if data.get("streaming"):
        if dataset is not None:
            raise DataError("streaming reads a corpus by name, path or hub id (--dataset), not data given in memory")
        from .streaming import STREAM_SAMPLE, stream_corpus

        task = cfg["task"]
        sc = stream_corpus(data.get("dataset") or DEFAULT_CORPUS[task], task,
                           train_scheme=cfg["scheme"] if task == "ner" else None,
                           tag_column=data.get("tag_column"), scheme=data.get("scheme"),
                           strict=bool(data.get("strict", False)),
                           sample_size=int(data.get("stream_sample") or STREAM_SAMPLE), warn=warn)
        assert sc.dev is not None and sc.corpus is not None  # stream_corpus refuses a corpus without dev
        for split, gold in (("dev", sc.dev), ("test", sc.test)):  # as for a loaded corpus (see _splits)
            if gold is not None:
                check_gold_labels(task, sc.train.labels, sc.corpus, split, gold, warn=warn, owner="training split")
        meta = {"data": {"corpus": sc.name, "scheme": sc.train.scheme, "sources": sc.sources, "streamed": True}}
        return _Data(sc.name, sc.train.scheme, list(sc.train.labels), sc.train.sample, sc.dev, sc.test, meta,
                     stream=sc.train)
    corpus = corpus_for(cfg["task"], data, warn=warn, dataset=dataset)
    train_sents, dev, test = _splits(corpus, cfg, log)
    meta = {"data": {"corpus": corpus.name, "scheme": corpus.scheme, "sources": corpus.sources}}
    return _Data(corpus.name, corpus.scheme, list(corpus.labels), train_sents, dev, test, meta)


def _finish(tagger: Any, summary: dict[str, Any], test: list | None, output: Path,
            log: Callable[[str], None]) -> dict[str, Any]:
    from .evaluate import evaluate, main_score

    task = tagger.task
    result = {"dev": summary["best_dev"], "best_epoch": summary["best_epoch"],
              "seconds_to_best": summary["seconds_to_best"], "seconds": summary["seconds"],
              "epochs": summary["epochs"], "history": summary["history"]}
    if test is not None:
        scores = evaluate(tagger, test, task, breakdown=False)
        result["test"] = main_score(task, scores)
        meta_scores = dict(tagger.meta.get("scores", {}))
        meta_scores["test"] = {k: round(float(scores[k]), 4) for k in
                               (("f1", "precision", "recall") if task == "ner" else ("accuracy",))}
        tagger.save(output, scores=meta_scores)
    metric = "F1" if task == "ner" else "accuracy"
    log(f"best dev {metric} {summary['best_dev']:.2f} at epoch {summary['best_epoch']} "
        f"({summary['seconds_to_best']:.0f}s)" + (f"; test {metric} {result['test']:.2f}" if "test" in result else "")
        + f"; model saved in {output}")
    return result


def _run_seeds(cfg: dict[str, Any], output: Path, seeds: int, run: _Data, kwargs: dict[str, Any]) -> dict[str, Any]:
    from .trainer import train

    base = int(cfg["training"]["seed"])
    log, main = kwargs["log"], kwargs["dist"].main
    runs = []
    for k in range(seeds):
        seed_cfg = json.loads(json.dumps(cfg))
        seed_cfg["training"]["seed"] = base + k
        out = output / f"seed{base + k}"
        log(f"--- seed {base + k} ---")
        tagger, summary = train(seed_cfg, run.train, run.dev, out, **kwargs)
        runs.append({"seed": base + k, **_finish(tagger, summary, run.test if main else None, out, log)})
    report: dict[str, Any] = {"runs": runs}
    for key in ("dev", "test", "seconds_to_best"):
        values = [r[key] for r in runs if key in r]
        if values:
            report[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    if main:
        atomic_write_json(output / "seeds.json", report)
    log("over %d seeds: " % seeds + ", ".join(
        f"{k} median {v['median']:.2f} (min {v['min']:.2f}, max {v['max']:.2f})"
        for k, v in report.items() if isinstance(v, dict)))
    return report


def resume_training(output: Path, progress: bool = True, log: Callable[[str], None] = print,
                    callbacks: Sequence[Any] = (), max_epochs: int | None = None) -> dict[str, Any]:
    """Continue an interrupted run from ``output/checkpoint`` (with the output folder locked; under
    ``torchrun``, with as many processes as the run had); ``max_epochs``: its new epoch limit, e.g. to
    train on a run that ended at its old one (the checkpoint keeps it for later resumes)."""
    from .checkpoint import read_checkpoint
    from .config import TrainingConfig
    from .distributed import session, world_from_env
    from .errors import ModelLoadError
    from .outputs import claim_output
    from .trainer import train

    if not Path(output).is_dir():
        raise ModelLoadError(f"{output}: no such folder; nothing to resume")
    with contextlib.ExitStack() as stack:
        if world_from_env().main:  # the lock first: it recovers a checkpoint that a kill left half swapped
            stack.enter_context(claim_output(output, resume=True))
        cfg = read_checkpoint(output)[0]["config"]  # one-line ModelLoadError when missing or damaged
        if max_epochs is not None:
            cfg = {**cfg, "training": {**cfg["training"], "max_epochs": max_epochs}}
            TrainingConfig.from_dict(cfg["training"])  # a limit below 1: one-line ConfigError
        dist, device = stack.enter_context(session(cfg["training"].get("device")))
        if not dist.main:
            log, progress, callbacks = _quiet, False, ()
        run = _prepare(cfg, log, warn=lambda m: None)
        tagger, summary = train(cfg, run.train, run.dev, output, resume=True, progress=progress, log=log,
                                meta=run.meta, callbacks=callbacks, dist=dist, device=device, stream=run.stream)
        return _finish(tagger, summary, run.test if dist.main else None, output, log)


def gold_split(tagger: Any, dataset: Any, split: str, tag_column: str | None = None, scheme: str | None = None,
               warn: Callable[[str], None] | None = None) -> tuple[Corpus, list[tuple[list[str], list[str]]]]:
    """The corpus and the gold ``(tokens, tags)`` of ``split`` to score or calibrate ``tagger`` on (NER tags in
    IOB2), checked against the tagger's labels (:func:`evaluate_tagger`, ``seqtag calibrate``).

    Raises:
        DataError: The data was given in memory at training and ``dataset`` is ``None``; or no gold tag is
            one of the tagger's labels.
    """
    warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr))
    data = dict(tagger.config.get("data", {}))
    if dataset is not None:
        data = {}
    elif "dataset" not in data and str(tagger.meta.get("data", {}).get("corpus", "")).startswith("<"):
        raise DataError(f"the tagger was trained on data given in memory ({tagger.meta['data']['corpus']}), "
                        f"which was not saved; pass the data to score it on")
    if tag_column is not None:
        data["tag_column"] = tag_column
    if scheme is not None:
        data["scheme"] = scheme
    corpus = corpus_for(tagger.task, data, warn=lambda m: None, dataset=dataset)
    gold = corpus.sentences(split, "IOB2" if tagger.task == "ner" else None, context_size(tagger.config["model"]))
    check_gold_labels(tagger.task, tagger.labels, corpus, split, gold, warn=warn)
    if tagger.task == "pos":
        unknown = {t for _, tags in gold for t in tags} - set(tagger.labels)
        if unknown and len(unknown) == len({t for _, tags in gold for t in tags}):
            raise DataError(f"none of the gold tags ({', '.join(sorted(unknown)[:5])}) are the model's labels "
                            f"({', '.join(tagger.labels[:5])}...); choose the tag column with --tag-column")
    return corpus, gold


def evaluate_tagger(tagger: Any, dataset: Any, split: str = "test", tag_column: str | None = None,
                    scheme: str | None = None, batch_size: int = 256,
                    warn: Callable[[str], None] | None = None, confusion: bool = False,
                    calibration: bool = True) -> dict[str, Any]:
    """Scores of a tagger on a split of ``dataset``, with breakdowns (``seqtag evaluate`` and ``Tagger.evaluate``;
    ``confusion``: also the confusion matrix, which ``--report`` draws; ``calibration``: how calibrated the
    confidences are, :func:`seqtag.calibration.calibration_report`).

    Args:
        tagger: A :class:`~seqtag.tagger.Tagger`.
        dataset: What ``--dataset`` takes, or data in memory (see :func:`seqtag.data.load_corpus`);
            ``None``: the corpus the tagger was trained on.
        split: The split to score (a single file or dataset is every split).
        warn: Where warnings go (default: standard error).
    """
    from .evaluate import evaluate

    corpus, gold = gold_split(tagger, dataset, split, tag_column=tag_column, scheme=scheme, warn=warn)
    train_sents = corpus.sentences("train", "IOB2" if tagger.task == "ner" else None) \
        if corpus.has_split("train") else None
    scores = evaluate(tagger, gold, tagger.task, train_sentences=train_sents, batch_size=batch_size,
                      confusion=confusion, calibration=calibration)
    scores.update({"task": tagger.task, "split": split, "dataset": corpus.name, "sentences": len(gold)})
    return scores


def check_gold_labels(task: str, labels: Iterable[str], corpus: Corpus, split: str, gold: list,
                      warn: Callable[[str], None], owner: str = "model") -> None:
    """A gold tag outside ``labels`` (a model's, or the training data's) is an error for NER (another tag
    set) and a warning for POS (a rare tag missing from a small training set; its tokens count as errors).

    The same check serves ``seqtag evaluate`` and ``seqtag train`` (for its dev and test splits), so a
    corpus that one accepts the other does not refuse. The message names the first such tag's
    ``file:line`` and the labels of ``owner`` (``"model"`` or ``"training split"``).
    """
    from .labels import split_tag

    ner = task == "ner"
    known = {split_tag(t)[1] for t in labels} - {""} if ner else set(labels)
    lines = corpus.lines(split)
    src = corpus.source(split)
    expected = "data with the tag set the model was trained on" if owner == "model" else \
        f"{split} data with no tag the training split lacks"
    for (_, tags), line in zip(gold, lines):
        for i, tag in enumerate(tags):
            key = split_tag(tag)[1] if ner else tag
            if key and key not in known:
                where = f"{src}:{token_line(src, line, i)}"
                found = f"the entity type {key!r} ({tag})" if ner else f"the tag {tag!r}"
                msg = (f"{where}: {found} is not among the {owner}'s {'types' if ner else 'labels'} "
                       f"({', '.join(sorted(known)) or 'none'}); expected {expected}"
                       f"{'' if ner else ' (choose the column with --tag-column)'}")
                if ner:
                    raise DataError(msg)
                warn(f"{msg}; its tokens count as errors")
                return
