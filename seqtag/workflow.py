"""What the CLI commands do, as functions: train (one seed or several), resume, evaluate (predict: predict_io).

The Python API (:mod:`seqtag.api`) goes through the same functions: data given in memory is loaded
into the same :class:`~seqtag.corpus.Corpus` a ``--dataset`` is, and trained and scored by the same code.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .atomic import atomic_write_json
from .corpus import Corpus, token_line
from .data import load_corpus
from .errors import DataError

__all__ = ["run_training", "resume_training", "evaluate_model", "evaluate_tagger", "format_scores", "corpus_for"]


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

    if corpus.has_split("dev"):
        dev = corpus.sentences("dev", eval_scheme)
        check_gold_labels(task, labels, corpus, "dev", dev, warn=warn, owner="training split")
    else:
        corpus = corpus.hold_out(fraction=0.1, seed=0)
        dev = corpus.sentences("dev", eval_scheme)
        log(f"no dev split: holding out {len(dev)} training sentences for model selection")
    train = corpus.sentences("train", train_scheme)
    test = None
    if corpus.has_split("test"):
        test = corpus.sentences("test", eval_scheme)
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
    the folder stays locked against other runs until this one ends.
    """
    from .outputs import claim_output
    from .trainer import train

    task = cfg["task"]
    with claim_output(output, force=force, overwrite=overwrite):
        corpus, train_sents, dev, test, meta = _prepare(cfg, log, warn=lambda m: log(f"warning: {m}"),
                                                        dataset=dataset)
        log(f"{corpus.name}: {len(train_sents)} training and {len(dev)} dev sentences, {len(corpus.labels)} labels"
            f"{f', data scheme {corpus.scheme}, training scheme ' + cfg['scheme'] if task == 'ner' else ''}")
        if seeds > 1:
            return _run_seeds(cfg, output, seeds, meta, train_sents, dev, test, progress, log, callbacks)
        tagger, summary = train(cfg, train_sents, dev, output, progress=progress, log=log, meta=meta,
                                callbacks=callbacks)
        return _finish(tagger, summary, test, output, log)


def _prepare(cfg: dict[str, Any], log: Callable[[str], None], warn: Callable[[str], None],
             dataset: Any = None) -> tuple[Corpus, list, list, list | None, dict[str, Any]]:
    """The corpus of a run, its training, dev and test sentences, and the ``meta`` that names the data
    (what a new run and a resumed one both start from)."""
    corpus = corpus_for(cfg["task"], cfg.get("data", {}), warn=warn, dataset=dataset)
    train_sents, dev, test = _splits(corpus, cfg, log)
    meta = {"data": {"corpus": corpus.name, "scheme": corpus.scheme, "sources": corpus.sources}}
    return corpus, train_sents, dev, test, meta


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


def _run_seeds(cfg: dict[str, Any], output: Path, seeds: int, meta: dict[str, Any], train_sents: list, dev: list,
               test: list | None, progress: bool, log: Callable[[str], None],
               callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    from .trainer import train

    base = int(cfg["training"]["seed"])
    runs = []
    for k in range(seeds):
        seed_cfg = json.loads(json.dumps(cfg))
        seed_cfg["training"]["seed"] = base + k
        out = output / f"seed{base + k}"
        log(f"--- seed {base + k} ---")
        tagger, summary = train(seed_cfg, train_sents, dev, out, progress=progress, log=log, meta=meta,
                                callbacks=callbacks)
        runs.append({"seed": base + k, **_finish(tagger, summary, test, out, log)})
    report: dict[str, Any] = {"runs": runs}
    for key in ("dev", "test", "seconds_to_best"):
        values = [r[key] for r in runs if key in r]
        if values:
            report[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    atomic_write_json(output / "seeds.json", report)
    log("over %d seeds: " % seeds + ", ".join(
        f"{k} median {v['median']:.2f} (min {v['min']:.2f}, max {v['max']:.2f})"
        for k, v in report.items() if isinstance(v, dict)))
    return report


def resume_training(output: Path, progress: bool = True, log: Callable[[str], None] = print,
                    callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Continue an interrupted run from ``output/checkpoint`` (with the output folder locked)."""
    from .checkpoint import read_checkpoint
    from .errors import ModelLoadError
    from .outputs import claim_output
    from .trainer import train

    if not Path(output).is_dir():
        raise ModelLoadError(f"{output}: no such folder; nothing to resume")
    with claim_output(output, resume=True):
        cfg = read_checkpoint(output)[0]["config"]  # one-line ModelLoadError when missing or damaged
        _, train_sents, dev, test, meta = _prepare(cfg, log, warn=lambda m: None)
        tagger, summary = train(cfg, train_sents, dev, output, resume=True, progress=progress, log=log, meta=meta,
                                callbacks=callbacks)
        return _finish(tagger, summary, test, output, log)


def evaluate_model(model: str, dataset: str | None, split: str, tag_column: str | None = None,
                   scheme: str | None = None, batch_size: int = 256, verify: bool = True) -> dict[str, Any]:
    """Scores of a saved tagger on a split, with breakdowns; NER gold is scored in IOB2."""
    from .tagger import Tagger

    return evaluate_tagger(Tagger.load(model, verify=verify), dataset, split, tag_column=tag_column,
                           scheme=scheme, batch_size=batch_size)


def evaluate_tagger(tagger: Any, dataset: Any, split: str = "test", tag_column: str | None = None,
                    scheme: str | None = None, batch_size: int = 256,
                    warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Scores of a tagger on a split of ``dataset``, with breakdowns (``seqtag evaluate`` and ``Tagger.evaluate``).

    Args:
        tagger: A :class:`~seqtag.tagger.Tagger`.
        dataset: What ``--dataset`` takes, or data in memory (see :func:`seqtag.data.load_corpus`);
            ``None``: the corpus the tagger was trained on.
        split: The split to score (a single file or dataset is every split).
        warn: Where warnings go (default: standard error).
    """
    from .evaluate import evaluate

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
    gold = corpus.sentences(split, "IOB2" if tagger.task == "ner" else None)
    check_gold_labels(tagger.task, tagger.labels, corpus, split, gold, warn=warn)
    if tagger.task == "pos":
        unknown = {t for _, tags in gold for t in tags} - set(tagger.labels)
        if unknown and len(unknown) == len({t for _, tags in gold for t in tags}):
            raise DataError(f"none of the gold tags ({', '.join(sorted(unknown)[:5])}) are the model's labels "
                            f"({', '.join(tagger.labels[:5])}...); choose the tag column with --tag-column")
    train_sents = corpus.sentences("train", "IOB2" if tagger.task == "ner" else None) \
        if corpus.has_split("train") else None
    scores = evaluate(tagger, gold, tagger.task, train_sentences=train_sents, batch_size=batch_size)
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


def format_scores(scores: dict[str, Any]) -> str:
    """A readable report of :func:`evaluate_model`'s scores."""
    lines = [f"{scores['dataset']} [{scores['split']}], {scores['sentences']} sentences"]
    if scores["task"] == "ner":
        s = scores["strict"]
        lines.append(f"entity F1 {scores['f1']:.2f}  precision {scores['precision']:.2f}  recall {scores['recall']:.2f}"
                     f"   (strict: F1 {s['f1']:.2f}  P {s['precision']:.2f}  R {s['recall']:.2f})")
        lines.append(f"{'type':<10}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
        for t, v in sorted(scores["per_type"].items()):
            lines.append(f"{t:<10}{v['precision']:8.2f}{v['recall']:8.2f}{v['f1']:8.2f}{v['support']:9d}")
        b = scores.get("breakdown", {})
        if b:
            lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(b["errors"].items())))
            if b.get("recall_seen") is not None:
                lines.append(f"recall on entities seen in training {b['recall_seen']:.2f} ({b['entities_seen']}), "
                             f"unseen {b['recall_unseen'] or 0:.2f} ({b['entities_unseen']})")
    else:
        unseen = ""
        if scores.get("unseen_tokens") is not None:
            acc = scores.get("unseen_accuracy")
            unseen = f"; on words unseen in training {'-' if acc is None else f'{acc:.2f}'} ({scores['unseen_tokens']})"
        lines.append(f"accuracy {scores['accuracy']:.2f} over {scores['tokens']} tokens{unseen}")
        lines.append("most frequent confusions: " + ", ".join(
            f"{c['gold']}->{c['predicted']} {c['count']}" for c in scores["confusions"][:8]))
    return "\n".join(lines)
