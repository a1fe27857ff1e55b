"""How calibrated a trained tagger's confidences are on test, before and after temperature scaling on dev.

For each model given (a folder written by ``seqtag train``), the script

1. sets the head's temperature to 1 (the confidences as trained) and scores the test split: the ECE
   of span (NER) or token (POS) confidences over 10 bins, the mean confidence, the share right and
   the reliability bins;
2. fits the temperature on the dev split (:func:`seqtag.calibration.fit_temperature`, what training
   does at its end) and scores the test split again;
3. checks that the tags of every test sentence are the same before and after.

The model folder is not changed (the model is loaded, never saved). The corpus is the model's own
(``$SEQTAG_CORPORA``), or ``--dataset``.

    SEQTAG_CORPORA=../shared/corpora python benchmarks/bench_calibration.py models/ner models/pos

Prints the figures and writes JSON to ``benchmarks/results/calibration.json`` (``--output``), one entry
per model.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def measure(model: Path, dataset: str | None, threads: int) -> dict[str, Any]:
    import torch

    from seqtag.calibration import calibration_report, fit_temperature
    from seqtag.tagger import Tagger
    from seqtag.workflow import gold_split

    torch.set_num_threads(threads)
    tagger = Tagger.load(model)
    head: Any = tagger.model.head  # the CRF head, which holds the temperature
    trained_with = float(head.temperature)
    head.temperature = 1.0
    _, dev = gold_split(tagger, dataset, "dev")
    _, test = gold_split(tagger, dataset, "test")
    words, gold = [w for w, _ in test], [g for _, g in test]
    before = tagger.predict(words)
    t0 = time.perf_counter()
    fitted = fit_temperature(tagger, dev)
    fit_seconds = time.perf_counter() - t0
    after = tagger.predict(words)
    same = sum(p.tags == q.tags for p, q in zip(before, after))
    return {"model": str(model), "task": tagger.task, "temperature_saved": trained_with,
            "temperature": round(fitted.temperature, 4), "fit_seconds": round(fit_seconds, 1),
            "dev": {"ece_before": round(fitted.ece_before, 4), "ece_after": round(fitted.ece_after, 4)},
            "test_before": calibration_report(tagger.task, before, gold),
            "test_after": calibration_report(tagger.task, after, gold),
            "test_sentences": len(test), "tags_identical": same == len(test), "threads": threads}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="Model folders written by seqtag train.")
    ap.add_argument("--dataset", default=None, help="The corpus (default: each model's own).")
    ap.add_argument("--threads", type=int, default=1, help="torch threads.")
    ap.add_argument("--output", type=Path, default=HERE / "results" / "calibration.json")
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    if args.output.is_file():
        results = json.loads(args.output.read_text(encoding="utf-8"))
    for model in args.models:
        r = measure(model, args.dataset, args.threads)
        unit = "spans" if r["task"] == "ner" else "tokens"
        right = "precision" if r["task"] == "ner" else "accuracy"
        for when in ("before", "after"):
            c = r[f"test_{when}"]
            print(f"{model} test {when:6s} T={1.0 if when == 'before' else r['temperature']:<7} ECE {c['ece']:.4f} "
                  f"over {c['count']} {unit}; mean confidence {c['mean_confidence']:.3f}, {right} {c['accuracy']:.3f}")
        print(f"{model}: dev ECE {r['dev']['ece_before']:.4f} -> {r['dev']['ece_after']:.4f}; "
              f"tags identical: {r['tags_identical']}; fit {r['fit_seconds']} s")
        results[r["task"]] = {**r, "machine": platform.machine(), "python": platform.python_version()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
