"""Peak memory of streamed prediction: ~100k tokens against ~1M tokens should peak at the same RSS.

Each size runs in its own subprocess, which reads its own peak RSS (``resource.getrusage(RUSAGE_SELF)
.ru_maxrss``) when done. Sentences come from cycling the CoNLL-2003 test sentences (``$SEQTAG_CORPORA/
conll2003/eng.testb``), or the sample corpus when ``SEQTAG_CORPORA`` is unset, with new words in each
pass (capitalized words get the pass number appended); they are generated lazily, so the input itself
takes no memory that grows with its size. The target: the 1M run's peak within 10% of the 100k run's.
The parent imports no torch and trains in a subprocess too: Linux carries a parent's peak RSS over
``fork``/``exec`` into the child's ``ru_maxrss``.

Modes: ``api`` feeds a generator of token lists to ``Tagger.predict_stream``; ``cli`` writes the input as a
text file (one sentence a line) and runs the ``seqtag predict MODEL FILE`` command in-process (output to
``/dev/null``), which reads the file line by line through ``predict_io.predict_lines``.

    python benchmarks/bench_memory.py --model models/ner --mode api
    python benchmarks/bench_memory.py            # trains a small model on the sample corpus first
    python benchmarks/bench_memory.py --no-mkldnn   # the same with oneDNN (mkldnn) kernels off

oneDNN keeps a cache of compiled kernels ("primitives"), one per input shape and direction of the
recurrences (the character CNN is a plain matrix product and compiles none), up to 1024 by default
(seqtag sets 32); batches of many shapes fill it, which grows RSS for a long while.
``--no-mkldnn`` (``torch.backends.mkldnn.enabled = False``) shows RSS without that cache, and
``--onednn-cache N`` with the cache capped at ``N`` kernels (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``).

Prints both figures and the ratio, and writes JSON to ``benchmarks/results/memory.json`` (or ``--output``),
one entry per mode.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "memory.json"
TARGET = 1.10
SMALL = {  # a small NER model: trains in seconds, tags ~20k tokens/s on one thread
    "model": {"tokenizer": {"type": "whitespace.v1"}, "dropout": 0.3,
              "embedding": {"type": "concat.v1", "parts": [{"type": "word.v1", "dim": 50, "casing_dim": 8},
                                                           {"type": "char_cnn.v1", "char_dim": 16, "filters": 30}]},
              "encoder": {"type": "lstm.v1", "hidden_size": 64}},
    "training": {"max_epochs": 3, "batch_size": 8, "lr": 0.01, "threads": 1},
}


def source_file() -> Path:
    """CoNLL-2003 test (``eng.testb``) under ``SEQTAG_CORPORA``, else the sample NER test file."""
    root = os.environ.get("SEQTAG_CORPORA")
    if root and (Path(root) / "conll2003" / "eng.testb").is_file():
        return Path(root) / "conll2003" / "eng.testb"
    return ROOT / "corpora" / "sample_ner" / "test.conll"


def read_sentences(path: Path) -> list[list[str]]:
    """The token column of a CoNLL file, ``-DOCSTART-`` lines skipped."""
    sents: list[list[str]] = []
    cur: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts:
                if cur:
                    sents.append(cur)
                    cur = []
            elif parts[0] != "-DOCSTART-":
                cur.append(parts[0])
    if cur:
        sents.append(cur)
    return sents


def stream(sents: list[list[str]], n_tokens: int) -> Iterator[list[str]]:
    """Sentences cycled until ``n_tokens`` tokens, made lazily (copies, as a reader would make them).

    From the second pass on, capitalized words get the pass number appended (``Blackburn2``), so the
    vocabulary keeps growing as in real text (new names), and seqtag's per-word caches meet new words
    all along instead of filling once."""
    total = 0
    for turn in itertools.count():
        for s in sents:
            if total >= n_tokens:
                return
            total += len(s)
            yield [w + str(turn) if turn and w[:1].isupper() else w for w in s] if turn else list(s)


def peak_rss_mib() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / (1 << 20) if sys.platform == "darwin" else kib / 1024


def rss_now_mib() -> float | None:
    """The current RSS (Linux ``/proc/self/statm``), or ``None`` elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return None


def child(model: str, n_tokens: int, mode: str, batch_size: int, mkldnn: bool = True) -> dict[str, Any]:
    """Runs in the subprocess: warm up, then tag ``n_tokens`` streamed tokens; report peak RSS."""
    import torch

    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = mkldnn  # type: ignore[assignment]
    from seqtag.tagger import Tagger

    sents = read_sentences(source_file())
    tagger = Tagger.load(model)
    list(tagger.predict_stream(stream(sents, 2000), batch_size=batch_size))  # warm-up: allocator, lazy imports
    text = None
    if mode == "cli":
        text = Path(tempfile.mkstemp(prefix="bench-memory-", suffix=".txt")[1])
        with text.open("w", encoding="utf-8") as f:
            for s in stream(sents, n_tokens):
                f.write(" ".join(s) + "\n")
    base = peak_rss_mib()
    start = time.perf_counter()
    tokens = sentences = 0
    if mode == "api":
        for pred in tagger.predict_stream(stream(sents, n_tokens), batch_size=batch_size):
            tokens += len(pred.tags)
            sentences += 1
    else:
        from seqtag.cli import main

        assert text is not None
        saved = sys.stdout
        try:
            with open(os.devnull, "w", encoding="utf-8") as sink:
                sys.stdout = sink
                main(["predict", model, str(text), "--batch-size", str(batch_size)], standalone_mode=False)
        finally:
            sys.stdout = saved
        tokens = sum(len(s) for s in stream(sents, n_tokens))
        sentences = sum(1 for _ in stream(sents, n_tokens))
        text.unlink()
    seconds = time.perf_counter() - start
    now = rss_now_mib()
    return {"tokens": tokens, "sentences": sentences, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds), "rss_before_mib": round(base, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1), "rss_end_mib": None if now is None else round(now, 1)}


def train_small_model(out: Path) -> None:
    """A small NER model on the sample corpus (a few seconds)."""
    import torch

    torch.set_num_threads(1)
    from seqtag.data import load_corpus
    from seqtag.trainer import build_config, train

    cfg = build_config("ner", json.loads(json.dumps(SMALL)))
    corpus = load_corpus(str(ROOT / "corpora" / "sample_ner"), "ner")
    train(cfg, corpus.sentences("train", cfg["scheme"]), corpus.sentences("dev", "IOB2"), out, progress=False,
          log=lambda m: None)


def run_child(model: str, n_tokens: int, mode: str, batch_size: int, mkldnn: bool,
              onednn_cache: int | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(n_tokens), "--model", model, "--mode", mode,
           "--batch-size", str(batch_size)] + ([] if mkldnn else ["--no-mkldnn"])
    env = dict(os.environ)
    if onednn_cache is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(onednn_cache)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.exit(f"the {n_tokens}-token run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="A saved tagger (default: train a small one on the sample corpus).")
    ap.add_argument("--mode", choices=["api", "cli"], default="api")
    ap.add_argument("--small", type=int, default=100_000, help="Tokens of the small run.")
    ap.add_argument("--large", type=int, default=1_000_000, help="Tokens of the large run.")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--no-mkldnn", action="store_true", help="Turn oneDNN (mkldnn) kernels off in the runs.")
    ap.add_argument("--onednn-cache", type=int, default=None, help="Cap oneDNN's kernel cache in the runs.")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--train-to", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.model, args.child, args.mode, args.batch_size, not args.no_mkldnn)))
        return
    if args.train_to is not None:
        train_small_model(args.train_to)
        return
    model = args.model
    if model is None:
        model = str(Path(tempfile.mkdtemp(prefix="bench-memory-")) / "ner")
        print(f"training a small model in {model} ...", flush=True)
        subprocess.run([sys.executable, __file__, "--train-to", model], check=True, cwd=ROOT)
    key = args.mode + ("-no-mkldnn" if args.no_mkldnn else "") + \
        (f"-onednn-cache-{args.onednn_cache}" if args.onednn_cache is not None else "")
    runs = {}
    for n in (args.small, args.large):
        runs[str(n)] = run_child(model, n, args.mode, args.batch_size, not args.no_mkldnn, args.onednn_cache)
        r = runs[str(n)]
        print(f"{key} {r['tokens']:>9,} tokens ({r['sentences']:,} sentences): peak RSS {r['peak_rss_mib']:.1f} MiB "
              f"(before predicting {r['rss_before_mib']:.1f} MiB), {r['seconds']:.1f}s, "
              f"{r['tokens_per_second']:,} tok/s", flush=True)
    small, large = runs[str(args.small)], runs[str(args.large)]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    verdict = "ok" if ratio <= TARGET else "ABOVE TARGET"
    print(f"peak RSS ratio large/small: {ratio:.3f} (target <= {TARGET:.2f}): {verdict}")
    results: dict[str, Any] = {}
    if args.output.is_file():
        results = json.loads(args.output.read_text(encoding="utf-8"))
    results[key] = {"model": model, "source": str(source_file()), "batch_size": args.batch_size, "runs": runs,
                          "ratio": round(ratio, 4), "target": TARGET, "ok": ratio <= TARGET,
                          "python": platform.python_version(), "machine": platform.machine()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
