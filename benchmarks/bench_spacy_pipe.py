"""Throughput of the spaCy component (``nlp.pipe``) against the tagger's own batch ``predict``.

Both run on the same pre-tokenized sentences: ``predict`` gets the token lists, ``nlp.pipe`` gets spaCy
Docs built with ``Doc(nlp.vocab, words=...)`` (built before the clock starts). Each side is warmed up
once and timed ``--repeat`` times, the two taking turns; the best run counts. The target is ``nlp.pipe`` within 15% of
``predict`` (ratio >= 0.85).

    python benchmarks/bench_spacy_pipe.py --model models/ner --dataset conll2003 --limit 2000

Prints a table and writes JSON to ``benchmarks/results/spacy_pipe.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

TARGET_RATIO = 0.85
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "spacy_pipe.json"


def best_times(fns: dict[str, Callable[[Any], Any]], setups: dict[str, Callable[[], Any]],
               repeat: int) -> dict[str, float]:
    """The shortest wall time of each ``fn(setup())`` over ``repeat`` rounds, after one warm-up round.

    The functions take turns within each round, so a busy moment on a shared machine hits both sides
    alike; ``setup`` (e.g. building fresh Docs) is not timed.
    """
    best = {name: float("inf") for name in fns}
    for round_ in range(repeat + 1):
        for name, fn in fns.items():
            arg = setups.get(name, lambda: None)()
            start = time.perf_counter()
            fn(arg)
            elapsed = time.perf_counter() - start
            if round_:  # round 0 warms up
                best[name] = min(best[name], elapsed)
    return best


def load_sentences(dataset: str, task: str, split: str, limit: int) -> tuple[str, list[list[str]]]:
    """Token lists of a split of ``dataset`` (a catalogue name, a folder or ``split=path`` list)."""
    from seqtag.data import load_corpus

    corpus = load_corpus(dataset, task)
    sents = [tokens for tokens, _ in corpus.sentences(split) if tokens]
    return corpus.name, sents[:limit] if limit else sents


def run(model: str, dataset: str, split: str = "test", limit: int = 0, batch_size: int = 128,
        pipe_batch_size: int = 1000, repeat: int = 5, threads: int = 1) -> dict[str, Any]:
    """Time ``Tagger.predict`` and ``nlp.pipe`` on the same sentences; return the figures."""
    import spacy
    import torch
    from spacy.tokens import Doc

    import seqtag

    torch.set_num_threads(threads)
    tagger = seqtag.load(model)
    name, sents = load_sentences(dataset, tagger.task, split, limit)
    n_tokens = sum(len(s) for s in sents)
    with_confidence = tagger.task == "ner"  # what the component asks for (NER spans carry a confidence)

    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(model), "batch_size": batch_size})
    nlp.get_pipe("seqtag").initialize()  # type: ignore[attr-defined]

    def predict(_: Any) -> None:
        tagger.predict(sents, batch_size=batch_size, with_confidence=with_confidence)

    def make_docs() -> list[Doc]:  # fresh, unannotated Docs for every run, built before the clock starts
        return [Doc(nlp.vocab, words=words) for words in sents]

    def pipe(docs: list[Doc]) -> None:
        for _ in nlp.pipe(docs, batch_size=pipe_batch_size):
            pass

    best = best_times({"predict": predict, "pipe": pipe}, {"pipe": make_docs}, repeat)
    t_predict, t_pipe = best["predict"], best["pipe"]
    start = time.perf_counter()
    make_docs()
    t_docs = time.perf_counter() - start
    ratio = t_predict / t_pipe
    return {
        "model": str(model),
        "task": tagger.task,
        "dataset": name,
        "split": split,
        "sentences": len(sents),
        "tokens": n_tokens,
        "batch_size": batch_size,
        "pipe_batch_size": pipe_batch_size,
        "threads": threads,
        "repeat": repeat,
        "predict": {"seconds": round(t_predict, 4), "tokens_per_s": round(n_tokens / t_predict, 1)},
        "spacy_pipe": {"seconds": round(t_pipe, 4), "tokens_per_s": round(n_tokens / t_pipe, 1)},
        "doc_construction_seconds": round(t_docs, 4),
        "ratio": round(ratio, 4),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio >= TARGET_RATIO,
        "versions": {"python": platform.python_version(), "spacy": spacy.__version__, "torch": torch.__version__,
                     "seqtag": seqtag.__version__},
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A saved seqtag tagger directory.")
    parser.add_argument("--dataset", required=True, help="Corpus name (e.g. conll2003), folder, or split=path.")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=0, help="Use the first N sentences (0: all).")
    parser.add_argument("--batch-size", type=int, default=128, help="Sentences per forward pass (both sides).")
    parser.add_argument("--pipe-batch-size", type=int, default=1000, help="Docs per nlp.pipe batch.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    from seqtag.errors import SeqtagError

    try:
        res = run(args.model, args.dataset, args.split, args.limit, args.batch_size, args.pipe_batch_size,
                  args.repeat, args.threads)
    except SeqtagError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    print(f"{res['dataset']} [{res['split']}]: {res['sentences']} sentences, {res['tokens']} tokens, "
          f"{res['task']} model {res['model']}, {res['threads']} thread(s)")
    print(f"{'':<22}{'seconds':>10}{'tokens/s':>12}")
    for key, label in (("predict", "Tagger.predict"), ("spacy_pipe", "nlp.pipe")):
        print(f"{label:<22}{res[key]['seconds']:>10.3f}{res[key]['tokens_per_s']:>12.0f}")
    print(f"ratio nlp.pipe / predict = {res['ratio']:.3f} (target >= {TARGET_RATIO}: "
          f"{'met' if res['within_target'] else 'NOT met'}); "
          f"building the Docs ({res['doc_construction_seconds']:.3f}s) "
          f"is not counted")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
