"""Peak memory of streamed training: CoNLL-2003 repeated 10 times should peak within 15% of the corpus once.

Two corpus folders are written to a temporary folder: ``x1/`` with ``eng.train`` as it is and ``x10/``
with ``eng.train`` repeated 10 times, each with ``eng.testa`` (dev) and ``eng.testb`` (test) beside it
(links to ``$SEQTAG_CORPORA/conll2003``; nothing is copied into the repository). Each size runs in its
own subprocess, and the parent reads that child's peak RSS from ``os.wait4`` (its own rusage, not
the maximum over every child so far that ``RUSAGE_CHILDREN`` gives); the parent imports neither torch
nor datasets, since Linux carries a parent's peak RSS over ``fork``/``exec`` into the child's.

Modes:

- ``train`` (default) runs ``seqtag train --streaming --dataset FOLDER --max-epochs 1`` with a small
  model (``--config``, written to the temporary folder; ``--model default`` keeps the NER defaults).
- ``batches`` reads one epoch of ``StreamedSplit.batches`` alone (``seqtag.streaming.stream_corpus``),
  no model: what the data side holds.

    python benchmarks/bench_streaming_memory.py                  # train, small model
    python benchmarks/bench_streaming_memory.py --mode batches
    python benchmarks/bench_streaming_memory.py --dry-run        # write the corpora, print the commands

Prints both figures and the ratio, and writes JSON to ``benchmarks/results/streaming_memory.json`` (or
``--output``), one entry per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "streaming_memory.json"
TARGET = 1.15
REPEAT = 10
SMALL_CONFIG = """\
task = "ner"
scheme = "BIOES"

[model]
dropout = 0.3

[model.tokenizer]
type = "whitespace.v1"

[model.embedding]
type = "concat.v1"
parts = [
    { type = "word.v1", dim = 50, casing_dim = 8 },
    { type = "char_cnn.v1", char_dim = 16, filters = 30 },
]

[model.encoder]
type = "lstm.v1"
hidden_size = 64

[training]
batch_size = 32
lr = 0.01
threads = 1
"""


def conll2003() -> Path:
    """``$SEQTAG_CORPORA/conll2003`` (exits with a message when it is not there)."""
    root = os.environ.get("SEQTAG_CORPORA")
    folder = Path(root) / "conll2003" if root else None
    if folder is None or not all((folder / n).is_file() for n in ("eng.train", "eng.testa", "eng.testb")):
        sys.exit("set SEQTAG_CORPORA to the folder that holds conll2003/eng.train, eng.testa and eng.testb")
    return folder


def write_corpus(source: Path, dest: Path, repeat: int) -> Path:
    """A corpus folder ``dest``: ``eng.train`` repeated ``repeat`` times (a link when once), and links
    to ``eng.testa``/``eng.testb``. Returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("eng.testa", "eng.testb") + (("eng.train",) if repeat == 1 else ()):
        link = dest / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source / name)
    if repeat > 1:
        with open(source / "eng.train", "rb") as f:
            text = f.read()
        if not text.endswith(b"\n\n"):  # each copy ends its last sentence
            text = text.rstrip(b"\n") + b"\n\n"
        with open(dest / "eng.train", "wb") as out:
            for _ in range(repeat):
                out.write(text)
    return dest


def seqtag_command() -> list[str]:
    """The ``seqtag`` command of this Python (its console script, else the CLI's module run by Python)."""
    script = Path(sys.executable).with_name("seqtag")
    if script.is_file():
        return [str(script)]
    found = shutil.which("seqtag")
    return [found] if found else [sys.executable, "-c", "import sys; from seqtag.cli import main; sys.exit(main())"]


def train_command(folder: Path, out: Path, config: Path | None) -> list[str]:
    return seqtag_command() + ["train", "--streaming", "--dataset", str(folder), "--max-epochs", "1",
                               "--output", str(out), "--overwrite", "--no-progress", "--task", "ner"] + \
        (["--config", str(config)] if config is not None else [])


def batches_command(folder: Path, batch_size: int, buffer_size: int) -> list[str]:
    return [sys.executable, __file__, "--child-batches", str(folder), "--batch-size", str(batch_size),
            "--buffer-size", str(buffer_size)]


def peak_rss_mib(kib: float) -> float:
    """``ru_maxrss`` in MiB (KiB on Linux, bytes on macOS)."""
    return kib / (1 << 20) if sys.platform == "darwin" else kib / 1024


def run_measured(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` (output to ``log``) and return its exit status, seconds and peak RSS (``os.wait4``)."""
    start = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mib": round(peak_rss_mib(usage.ru_maxrss), 1)}


def child_batches(folder: str, batch_size: int, buffer_size: int) -> dict[str, Any]:
    """Runs in the subprocess of ``--mode batches``: one epoch of batches, counted."""
    import resource

    from seqtag.streaming import stream_corpus

    start = time.perf_counter()
    corpus = stream_corpus(folder, "ner", train_scheme="BIOES", warn=lambda m: None)
    sentences = tokens = batches = 0
    for batch in corpus.train.batches(0, batch_size, 0, buffer_size=buffer_size):
        batches += 1
        sentences += len(batch)
        tokens += sum(len(toks) for toks, _ in batch)
    return {"sentences": sentences, "tokens": tokens, "batches": batches,
            "seconds": round(time.perf_counter() - start, 2),
            "peak_rss_mib": round(peak_rss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["train", "batches"], default="train")
    ap.add_argument("--model", choices=["small", "default"], default="small",
                    help="train mode: a small model (seconds per 10k sentences) or the NER defaults.")
    ap.add_argument("--repeat", type=int, default=REPEAT, help="How many times the large corpus repeats eng.train.")
    ap.add_argument("--batch-size", type=int, default=32, help="batches mode: sentences per batch.")
    ap.add_argument("--buffer-size", type=int, default=10_000, help="batches mode: the shuffle buffer.")
    ap.add_argument("--workdir", type=Path, default=None, help="Where the corpora go (default: a temporary folder).")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--dry-run", action="store_true", help="Write the corpora and print the commands; run nothing.")
    ap.add_argument("--child-batches", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_batches is not None:
        print(json.dumps(child_batches(args.child_batches, args.batch_size, args.buffer_size)))
        return
    source = conll2003()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    config = None
    if args.model == "small":
        config = work / "small.toml"
        work.mkdir(parents=True, exist_ok=True)
        config.write_text(SMALL_CONFIG, encoding="utf-8")
    runs: dict[str, Any] = {}
    for repeat in (1, args.repeat):
        folder = write_corpus(source, work / f"x{repeat}", repeat)
        if args.mode == "train":
            cmd = train_command(folder, work / f"model-x{repeat}", config)
        else:
            cmd = batches_command(folder, args.batch_size, args.buffer_size)
        if args.dry_run:
            print(" ".join(cmd))
            continue
        log = work / f"x{repeat}.log"
        run = run_measured(cmd, log)
        if run["returncode"] != 0:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            sys.exit(f"the x{repeat} run failed (exit {run['returncode']}):\n{tail}")
        if args.mode == "batches":
            lines = log.read_text(encoding="utf-8").strip().splitlines()
            run["child"] = json.loads(lines[-1])
        runs[f"x{repeat}"] = run
        print(f"{args.mode} x{repeat}: peak RSS {run['peak_rss_mib']:.1f} MiB, {run['seconds']:.1f}s"
              + (f", {run['child']['sentences']:,} sentences in {run['child']['batches']:,} batches"
                 if "child" in run else ""), flush=True)
    if args.dry_run:
        print(f"corpora in {work}")
        return
    small, large = runs["x1"], runs[f"x{args.repeat}"]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    verdict = "ok" if ratio <= TARGET else "ABOVE TARGET"
    print(f"peak RSS ratio x{args.repeat}/x1: {ratio:.3f} (target <= {TARGET:.2f}): {verdict}")
    key = args.mode + (f"-{args.model}" if args.mode == "train" else "")
    results: dict[str, Any] = {}
    if args.output.is_file():
        results = json.loads(args.output.read_text(encoding="utf-8"))
    results[key] = {"source": str(source), "repeat": args.repeat, "runs": runs, "ratio": round(ratio, 4),
                    "target": TARGET, "ok": ratio <= TARGET, "python": platform.python_version(),
                    "machine": platform.machine(), "batch_size": args.batch_size if args.mode == "batches" else None,
                    "buffer_size": args.buffer_size if args.mode == "batches" else None}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
