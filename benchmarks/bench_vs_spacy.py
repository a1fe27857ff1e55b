"""seqtag and spaCy side by side: train both on the same files, then score, time and measure them.

For each task (NER on CoNLL-2003, UPOS on UD English EWT) and each seed, this script trains

- seqtag with its default config (``seqtag train --task ner|pos``), and
- spaCy's own ``ner``/``tagger`` from scratch with its efficiency config, no vectors, gold tokens
  (the recipe in ../shared/PEERS.md),

then prints and writes (JSON) for each: the test score (seqeval entity F1 in IOB2, or UPOS accuracy),
the training time to the best dev score, inference tokens/s over the whole test set (batch predict,
pre-tokenized input, median of 3 runs) and the peak memory of that inference. It also times a bare
``torch.nn.LSTM`` of the tagger's size as the ceiling. Scores are reported as median (min, max) over
the seeds.

    SEQTAG_CORPORA=../shared/corpora python benchmarks/bench_vs_spacy.py --task ner --seeds 3
    python benchmarks/bench_vs_spacy.py --task both --seeds 1 --quick     # a smoke run (minutes)
    python benchmarks/bench_vs_spacy.py --task pos --seeds 3 --jobs 2     # two trainings at a time

Each measurement of speed and memory runs in its own subprocess with ``--threads`` threads (2).
With ``--jobs 2`` two training runs share the machine, each with one thread (spaCy's longer runs start
first); every run then meets the same conditions, one other single-threaded training beside it. Speed
and memory are measured after all training is done, one process at a time.

"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
FILES = {
    "ner": ("conll2003", ["eng.train", "eng.testa", "eng.testb"]),
    "pos": ("ud_english_ewt", ["en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu", "en_ewt-ud-test.conllu"]),
}


def corpora() -> Path:
    root = os.environ.get("SEQTAG_CORPORA")
    if not root or not Path(root).is_dir():
        sys.exit("error: set SEQTAG_CORPORA to the folder of the corpora (e.g. ../shared/corpora)")
    return Path(root)


# -- spaCy data and training ---------------------------------------------------------------------
def spacy_data(task: str, work: Path) -> dict[str, Path]:
    folder, names = FILES[task]
    out: dict[str, Path] = {}
    for split, name in zip(("train", "dev", "test"), names):
        src = corpora() / folder / name
        copy = work / f"{task}-{split}{'.conllu' if task == 'pos' else '.iob'}"
        lines = src.read_text(encoding="utf-8").splitlines()
        if task == "ner":  # drop -DOCSTART- lines (and the blank line after each)
            kept, skip = [], False
            for line in lines:
                if line.startswith("-DOCSTART-"):
                    skip = True
                    continue
                if skip and not line.strip():
                    skip = False
                    continue
                skip = False
                kept.append(line)
            lines = kept
        else:  # blank XPOS so UPOS lands in token.tag_
            lines = [("\t".join(c[:4] + ["_"] + c[5:]) if len(c := ln.split("\t")) == 10 else ln) for ln in lines]
        copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
        conv = "ner" if task == "ner" else "conllu"
        subprocess.run([sys.executable, "-m", "spacy", "convert", "-c", conv, "-n", "1", str(copy), str(work)],
                       check=True, capture_output=True)
        out[split] = work / (copy.stem + ".spacy")
    return out


def train_spacy(task: str, data: dict[str, Path], work: Path, seed: int, quick: bool, threads: int) -> dict[str, Any]:
    cfg = work / f"spacy-{task}.cfg"
    pipe = "ner" if task == "ner" else "tagger"
    subprocess.run([sys.executable, "-m", "spacy", "init", "config", "-l", "en", "-p", pipe, "-o", "efficiency",
                    "--force", str(cfg)], check=True, capture_output=True)
    out = work / f"spacy-{task}-seed{seed}"
    cmd = [sys.executable, "-m", "spacy", "train", str(cfg), "--output", str(out), "--paths.train", str(data["train"]),
           "--paths.dev", str(data["dev"]), "--training.seed", str(seed), "--corpora.train.gold_preproc", "true",
           "--corpora.dev.gold_preproc", "true"]
    if quick:
        cmd += ["--training.max_steps", "400"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.time()
    best, best_t = -1.0, 0.0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        cols = line.split()
        # table rows: E  #  LOSS_TOK2VEC  LOSS_X  SCORE...  SCORE
        if len(cols) >= 5 and cols[0].isdigit() and cols[1].isdigit():
            score = float(cols[-1])
            if score > best:
                best, best_t = score, time.time() - t0
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"spacy train failed ({proc.returncode})")
    return {"model": str(out / "model-best"), "dev": 100 * best, "seconds_to_best": round(best_t, 1),
            "seconds": round(time.time() - t0, 1)}


_RUNNING: set[subprocess.Popen[str]] = set()  # the seqtag trainings under way
_STOPPING = threading.Event()  # SIGTERM came: stop the trainings running, start no more


class Stopped(RuntimeError):
    """A training not started, or stopped before its first epoch ended, because the benchmark was stopped."""


def stop_trainings_on_sigterm() -> None:
    """On SIGTERM, stop the running trainings as at a time limit (each keeps its best model, scored on test),
    start no more, and let the benchmark write what they gave; a second SIGTERM ends it at once. Without
    this, killing a benchmark left its trainings running."""
    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _STOPPING.set()
        print("SIGTERM: stopping the running trainings (each keeps its best model, scored on test) and "
              "writing the results; send it again to end at once", file=sys.stderr, flush=True)
        for proc in list(_RUNNING):
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)


def stopping() -> bool:
    """Whether the benchmark was told to stop (see :func:`stop_trainings_on_sigterm`)."""
    return _STOPPING.is_set()


def wait_peak_rss_mb(proc: subprocess.Popen[str]) -> float | None:
    """Wait for ``proc`` to end and return its peak resident memory in MB (``wait4``'s ``ru_maxrss``, of that
    process and those it waited for, whatever else runs beside it); ``None`` where ``os.wait4`` is missing (Windows)."""
    if not hasattr(os, "wait4"):
        proc.wait()
        return None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


def train_seqtag(task: str, work: Path, seed: int, quick: bool, threads: int, overrides: Sequence[str] = (),
                 name: str = "seqtag", time_limit: float | None = None) -> dict[str, Any]:
    """``seqtag train`` (the default config, with ``--set`` ``overrides``) into ``work/NAME-TASK-seedN``, timed
    like spaCy: wall time from the process start to the epoch line of the best dev score. ``test_in_training``
    is the test score training wrote in meta.json (bench_vs_spacy.py measures its own).

    ``time_limit`` (seconds): training is sent SIGTERM then and stops at a step boundary, as on Ctrl-C (which
    a program started in the background of a script ignores); the model kept is its best so far, and its test
    score is ``seqtag evaluate``'s (``"interrupted": true``), as when the benchmark is stopped (:class:`Stopped`
    if it is stopped before the training starts or ends its first epoch)."""
    if stopping():
        raise Stopped(f"{name} seed {seed}: not started, the benchmark was stopped")
    out = work / f"{name}-{task}-seed{seed}"
    cmd = [sys.executable, "-m", "seqtag.cli", "train", "--task", task, "-o", str(out), "--seed", str(seed),
           "--no-progress", "--overwrite", "--set", f"training.threads={threads}"]  # a rerun replaces its own models
    for item in overrides:
        cmd += ["--set", item]
    if quick:
        cmd += ["--max-epochs", "1"]
    t0 = time.time()
    best_t, lines = 0.0, []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    _RUNNING.add(proc)
    if stopping():  # the signal came as it started
        proc.send_signal(signal.SIGTERM)
    timer = threading.Timer(time_limit, proc.send_signal, (signal.SIGTERM,)) if time_limit else None
    if timer is not None:
        timer.start()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("epoch") and " * " in line:  # an improved dev score
                best_t = time.time() - t0
        peak_mb = wait_peak_rss_mb(proc)
    finally:
        _RUNNING.discard(proc)
        if timer is not None:
            timer.cancel()
    # SIGTERM in the training loop stops it at a step boundary; after it (calibrating, scoring test) it ends the
    # command: "interrupted" either way, the best model saved (atomically), only the test score missing
    interrupted = any(line.startswith("interrupted") for line in lines[-3:])
    if interrupted and not (out / "meta.json").is_file():
        if stopping():
            raise Stopped(f"{name} seed {seed}: stopped before its first epoch ended")
        raise RuntimeError(f"seqtag train of {out} reached the time limit ({time_limit} s) before its first "
                           "epoch ended")
    if proc.returncode != 0 and not interrupted:
        raise RuntimeError(f"seqtag train failed: {lines[-1:]}")
    run = {**model_scores(out), "seconds_to_best": round(best_t, 1), "seconds": round(time.time() - t0, 1),
           "train_peak_rss_mb": peak_mb, "log": lines[-1]}
    if interrupted:
        run.update(interrupted=True, epochs=sum(line.startswith("epoch") for line in lines),
                   test_in_training=evaluate_test(out, task, threads))
    return run


def evaluate_test(model: Path, task: str, threads: int) -> float:
    """The test score of a saved model, as ``seqtag evaluate --json`` gives it (F1 for NER, accuracy for POS)."""
    cmd = [sys.executable, "-m", "seqtag.cli", "evaluate", str(model), "--split", "test", "--json",
           "--no-progress", "--threads", str(threads)]
    scores = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return float(scores["f1"] if task == "ner" else scores["accuracy"])


def model_scores(model: Path) -> dict[str, Any]:
    """What a trained model's meta.json says: its dev score, the test score training wrote, the best epoch and
    training's own time to it (``train_seconds_to_best``, from the start of the training loop)."""
    scores = json.loads((model / "meta.json").read_text())["scores"]
    dev, test = scores["dev"], scores.get("test") or {}
    return {"model": str(model), "dev": dev.get("f1", dev.get("accuracy")),
            "test_in_training": test.get("f1", test.get("accuracy")), "best_epoch": scores.get("epoch"),
            "train_seconds_to_best": scores.get("train_seconds_to_best")}


# -- measuring (in a child process) --------------------------------------------------------------
def test_sentences(task: str) -> list[tuple[list[str], list[str]]]:
    from seqtag.data import load_corpus

    name = FILES[task][0]
    return load_corpus(name, task, warn=lambda m: None).sentences("test", "IOB2" if task == "ner" else None)


def measure(system: str, task: str, model: str, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    gold = test_sentences(task)
    words = [t for t, _ in gold]
    n_tokens = sum(len(w) for w in words)
    if system == "seqtag":
        import seqtag

        tagger = seqtag.load(model)

        def run(confidence: bool = False) -> list[list[str]]:
            # tags only, as spaCy gives; the figure with confidences is reported beside it
            return [p.tags for p in tagger.predict(words, batch_size=256, with_confidence=confidence)]
    else:
        import spacy
        from spacy.tokens import Doc

        nlp = spacy.load(model)

        def run(confidence: bool = False) -> list[list[str]]:
            docs = nlp.pipe((Doc(nlp.vocab, words=w) for w in words), batch_size=256)
            if task == "ner":
                return [[f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in d] for d in docs]
            return [[t.tag_ for t in d] for d in docs]
    t0 = time.perf_counter()
    pred = run()  # the first pass: caches still cold (seqtag's word features, spaCy's lexemes)
    first = time.perf_counter() - t0
    # seqtag's passes with confidences alternate with its tags-only ones, round by round, so that a ratio
    # meets one machine (on a shared machine, speed drifts between minutes)
    times, conf_times = [], []
    for _ in range(3):
        times.append(timed(run))
        if system == "seqtag":
            conf_times.append(timed(lambda: run(confidence=True)))
    if task == "ner":
        from seqeval.metrics import f1_score

        score = 100 * f1_score([g for _, g in gold], pred)
    else:
        ok = sum(a == b for (_, g), p in zip(gold, pred) for a, b in zip(g, p))
        score = 100 * ok / n_tokens
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"test": score, "tokens": n_tokens, "tokens_per_s": n_tokens / statistics.median(times),
           "first_pass_tokens_per_s": n_tokens / first, "peak_rss_mb": round(peak, 1)}
    if system == "seqtag":
        out["tokens_per_s_with_confidence"] = n_tokens / statistics.median(conf_times)
        out["paired_confidence_fraction"] = statistics.median(t / c for t, c in zip(times, conf_times))
        # the ceiling measured in this same process, alternating with seqtag's passes, so both meet the
        # same machine (on a shared machine, speed drifts between minutes)
        lstm = torch.nn.LSTM(166, 200, bidirectional=True, batch_first=True).eval()
        x = torch.randn(256, 25, 166)
        with torch.inference_mode():
            lstm(x)
            pairs = paired_rates(run, n_tokens, lambda: lstm(x), 256 * 25, rounds=5, bare_runs=10)
        out["paired_tokens_per_s"] = statistics.median(p[0] for p in pairs)
        out["paired_bare_bilstm_tokens_per_s"] = statistics.median(p[1] for p in pairs)
        out["paired_fraction_of_ceiling"] = statistics.median(p[0] / p[1] for p in pairs)
    return out


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn: Callable[[], Any], runs: int, warmup: int = 1) -> float:
    """The median seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(max(1, runs)))


def paired_rates(run: Callable[[], Any], tokens: int, bare: Callable[[], Any], bare_tokens: int, rounds: int,
                 bare_runs: int) -> list[tuple[float, float]]:
    """``(tokens/s of one run(), tokens/s of bare())`` per round, ``bare`` timed right after ``run`` (median of
    ``bare_runs`` calls), so that both meet the same machine: on a shared machine, speed drifts between minutes."""
    return [(tokens / timed(run), bare_tokens / median_time(bare, bare_runs, warmup=0)) for _ in range(rounds)]


def bare_lstm(input_dim: int, hidden: int, threads: int, task: str) -> dict[str, float]:
    """The ceiling: a bare bidirectional ``torch.nn.LSTM`` of the tagger's size, on random input.

    ``fixed``: batches of 256 x 25, median of 30 runs. ``test_set``: the test sentences' own lengths,
    sorted and cut in batches of 256, padded (what the plain loop over this corpus would run).
    """
    import torch

    torch.set_num_threads(threads)
    lstm = torch.nn.LSTM(input_dim, hidden, bidirectional=True, batch_first=True).eval()
    x = torch.randn(256, 25, input_dim)
    lengths = sorted(len(w) for w, _ in test_sentences(task))
    batches = [torch.randn(len(chunk), max(chunk), input_dim)
               for chunk in (lengths[i: i + 256] for i in range(0, len(lengths), 256))]
    with torch.inference_mode():
        for _ in range(3):
            lstm(x)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            lstm(x)
            times.append(time.perf_counter() - t0)
        test_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for b in batches:
                lstm(b)
            test_times.append(time.perf_counter() - t0)
    return {"tokens_per_s": 256 * 25 / statistics.median(times),
            "test_set_tokens_per_s": sum(lengths) / statistics.median(test_times)}


def child(args: list[str]) -> dict[str, Any]:
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip()[-500:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["ner", "pos", "both"], default="ner")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1,
                    help="training runs at once (each with one thread); 2 halves the wall time on 2 cores")
    ap.add_argument("--quick", action="store_true", help="short training, for a smoke run")
    ap.add_argument("--skip-spacy", action="store_true")
    ap.add_argument("--seqtag-model", default=None, help="measure this trained model instead of training seqtag")
    ap.add_argument("--spacy-model", default=None, help="measure this trained spaCy model instead of training spaCy")
    ap.add_argument("--work", default=None, help="folder for models and converted data (default: a temp folder)")
    ap.add_argument("--output", default=None,
                    help="the JSON result, {task} replaced by the task (default: results/{task}.json for a full "
                         "run, results/{task}-quick.json with --quick, and results/{task}-measured.json when a "
                         "system is skipped or given as a trained model, so the seeds' record stays)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        kind = args.child[0]
        if kind == "measure":
            print(json.dumps(measure(args.child[1], args.child[2], args.child[3], int(args.child[4]))))
        else:
            print(json.dumps(bare_lstm(int(args.child[1]), int(args.child[2]), int(args.child[3]), args.child[4])))
        return
    corpora()
    work = Path(args.work or tempfile.mkdtemp(prefix="seqtag-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tasks = ["ner", "pos"] if args.task == "both" else [args.task]
    for task in tasks:
        results: dict[str, Any] = {"task": task, "corpus": FILES[task][0], "threads": args.threads, "seeds": args.seeds,
                                   "quick": args.quick, "runs": {"seqtag": [], "spacy": []}}
        data = None if args.skip_spacy or args.spacy_model else spacy_data(task, work)
        train_threads = 1 if args.jobs > 1 else args.threads
        results["training_jobs"], results["training_threads"] = args.jobs, train_threads
        jobs: list[tuple[str, int]] = []
        trained_runs: dict[tuple[str, int], dict[str, Any]] = {}
        for seed in range(args.seeds):
            for system, given in [("seqtag", args.seqtag_model)] + \
                    ([] if args.skip_spacy else [("spacy", args.spacy_model)]):
                if given:
                    trained_runs[system, seed] = {"model": given}
                else:
                    jobs.append((system, seed))

        def train_one(job: tuple[str, int], task: str = task, data: Any = data,
                      train_threads: int = train_threads) -> dict[str, Any]:
            system, seed = job
            if system == "seqtag":
                return train_seqtag(task, work, seed, args.quick, train_threads)
            return train_spacy(task, data, work, seed, args.quick, train_threads)

        # spaCy's runs are the longest: start them first so the pool ends together
        jobs.sort(key=lambda j: (j[0] != "spacy", j[1]))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for job, trained in zip(jobs, pool.map(train_one, jobs)):
                trained_runs[job] = trained
                print(f"{task} {job[0]:7s} seed {job[1]}: trained, best dev {trained.get('dev', float('nan')):.2f} "
                      f"after {trained.get('seconds_to_best', float('nan')):.0f}s", flush=True)
        # speed and memory are measured after all training, one process at a time, on a quiet machine
        for seed in range(args.seeds):
            for system in ("seqtag", "spacy"):
                if (system, seed) not in trained_runs:
                    continue
                trained = trained_runs[system, seed]
                m = child(["measure", system, task, trained["model"], str(args.threads)])
                run = {"seed": seed, **trained, **m}
                results["runs"][system].append(run)
                print(f"{task} {system:7s} seed {seed}: test {m['test']:.2f}  "
                      f"best dev after {trained.get('seconds_to_best', float('nan')):.0f}s  "
                      f"{m['tokens_per_s']:,.0f} tokens/s  peak {m['peak_rss_mb']:.0f} MB", flush=True)
        # the ceiling: a bare BiLSTM of the default tagger's size (embedding 166 = 100 + 16 + 50, hidden 200)
        bare = child(["bare", "166", "200", str(args.threads), task])
        results["bare_bilstm_tokens_per_s"] = bare["tokens_per_s"]
        results["bare_bilstm_test_set_tokens_per_s"] = bare["test_set_tokens_per_s"]
        for system, runs in results["runs"].items():
            if runs:
                results[system] = {k: summary([r[k] for r in runs if r.get(k) is not None])
                                   for k in ("test", "dev", "seconds_to_best", "tokens_per_s",
                                             "tokens_per_s_with_confidence", "paired_confidence_fraction",
                                             "first_pass_tokens_per_s", "peak_rss_mb",
                                             "paired_tokens_per_s", "paired_bare_bilstm_tokens_per_s",
                                             "paired_fraction_of_ceiling")
                                   if any(r.get(k) is not None for r in runs)}
        if results.get("seqtag") and results.get("spacy"):
            results["speedup_vs_spacy"] = round(results["seqtag"]["tokens_per_s"]["median"]
                                                / results["spacy"]["tokens_per_s"]["median"], 2)
        if results.get("seqtag"):
            results["fraction_of_ceiling"] = round(results["seqtag"]["tokens_per_s"]["median"]
                                                   / results["bare_bilstm_tokens_per_s"], 2)
            results["fraction_of_test_set_ceiling"] = round(results["seqtag"]["tokens_per_s"]["median"]
                                                            / results["bare_bilstm_test_set_tokens_per_s"], 2)
        print(f"{task}: bare BiLSTM ceiling {results['bare_bilstm_tokens_per_s']:,.0f} tokens/s (256 x 25), "
              f"{results['bare_bilstm_test_set_tokens_per_s']:,.0f} tokens/s (test-set batches); "
              + json.dumps({k: results.get(k) for k in ("seqtag", "spacy", "speedup_vs_spacy", "fraction_of_ceiling",
                                                        "fraction_of_test_set_ceiling")}))
        partial = args.skip_spacy or args.seqtag_model or args.spacy_model
        suffix = "-quick" if args.quick else "-measured" if partial else ""
        out = Path(args.output.replace("{task}", task)) if args.output else HERE / "results" / f"{task}{suffix}.json"
        from seqtag.atomic import atomic_write_json

        atomic_write_json(out, results)
        print(f"wrote {out}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
