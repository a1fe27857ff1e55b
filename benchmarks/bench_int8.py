"""int8 and bf16 against float32 on a trained NER model: CoNLL-2003 test F1 and tokens/s.

Measures, on the whole pre-tokenized CoNLL-2003 test set (eng.testb from $SEQTAG_CORPORA, read by
seqtag.data like the other benchmarks), batch 256, ``--threads`` torch threads (1 by default):

- ``torch-fp32``: the saved tagger as ``seqtag.load`` gives it;
- ``torch-int8``: the same weights through ``seqtag.quantize.load_int8`` (``seqtag predict --int8``:
  PyTorch dynamic quantization of the BiLSTM and the emission layer);
- ``torch-bf16``: the same weights through ``seqtag.quantize.load_bf16`` (``seqtag predict --bf16``: the
  recurrences in bfloat16; skipped, and said, on a CPU without native bfloat16);
- with ``--onnx`` also ``onnx-fp32`` and ``onnx-int8``: the ONNX export run by onnxruntime, and that
  graph quantized by onnxruntime's ``quantize_dynamic`` (written to a temporary folder, never to the
  model), for the comparison of the two ways of getting int8.

For each: seqeval entity F1 (IOB2) and tokens/s tags only and with confidences, each the median of 3
timed passes after a first, untimed one (caches warm). The runtimes are measured in one child process,
their passes interleaved round by round, so that all meet the same load on a shared machine; the paired
speedup is the median over the rounds of each round's ratio. The verdict is the issue's: int8 (or bf16) is
the fast path if it is at least 1.5x float32's tokens/s at no more than 0.2 F1 points lost.

    SEQTAG_CORPORA=/work/shared/corpora python benchmarks/bench_int8.py --model /tmp/bench/ner-seed0
    python benchmarks/bench_int8.py --model models/ner --threads 2 --onnx --output /tmp/int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seqtag.atomic import atomic_write_json
from seqtag.quantize import cpu_summary

HERE = Path(__file__).resolve().parent
RUNTIMES = ("torch-fp32", "torch-int8", "torch-bf16", "onnx-fp32", "onnx-int8")
SPEEDUP, MAX_F1_LOSS = 1.5, 0.2  # the bar for the documented fast path


def test_set() -> list[tuple[list[str], list[str]]]:
    root = os.environ.get("SEQTAG_CORPORA")
    if not root or not (Path(root) / "conll2003" / "eng.testb").is_file():
        sys.exit("error: set SEQTAG_CORPORA to the folder of the corpora (with conll2003/eng.testb)")
    from seqtag.data import load_corpus

    return load_corpus("conll2003", "ner", warn=lambda m: None).sentences("test", "IOB2")


def load(runtime: str, model: str, threads: int, work: str) -> Any:
    """The tagger of ``runtime`` (the ONNX files go to ``work``)."""
    if runtime == "torch-fp32":
        import seqtag

        return seqtag.load(model)
    if runtime == "torch-int8":
        from seqtag.quantize import load_int8

        return load_int8(model)
    if runtime == "torch-bf16":
        from seqtag.quantize import load_bf16

        return load_bf16(model)
    from seqtag.export import OnnxTagger, export_onnx

    onnx_path = Path(work) / "model.onnx"
    if not onnx_path.exists():
        export_onnx(model, onnx_path)
    if runtime == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = Path(work) / "model.int8.onnx"
        quantize_dynamic(str(onnx_path), str(quantized), weight_type=QuantType.QInt8)
        onnx_path = quantized
    return OnnxTagger(model, onnx_path, threads=threads)


def measure(runtimes: tuple[str, ...], model: str, threads: int, work: str) -> dict[str, Any]:
    """Every runtime in this process, passes interleaved: on a shared machine speed drifts from one minute to
    the next, so each round times each runtime once (in a rotating order) and each runtime's figure is the
    median of its 3 rounds; the paired ratio to torch-fp32 is the median of the rounds' ratios."""
    import torch
    from seqeval.metrics import f1_score

    torch.set_num_threads(threads)
    gold = test_set()
    words = [w for w, _ in gold]
    n_tokens = sum(len(w) for w in words)
    taggers: dict[str, Any] = {}
    out: dict[str, dict[str, Any]] = {}
    for runtime in runtimes:
        t0 = time.perf_counter()
        taggers[runtime] = load(runtime, model, threads, work)
        out[runtime] = {"tokens": n_tokens, "sentences": len(words), "load_s": round(time.perf_counter() - t0, 2)}
    for confidence in (False, True):
        key = "with_confidence" if confidence else "tags_only"
        times: dict[str, list[float]] = {r: [] for r in runtimes}
        for runtime in runtimes:  # the first pass: caches warm up; its tags give the F1
            pred = taggers[runtime].predict(words, batch_size=256, with_confidence=confidence)
            if not confidence:
                out[runtime]["f1"] = round(100 * f1_score([g for _, g in gold], [p.tags for p in pred]), 2)
        for rnd in range(3):
            for runtime in runtimes[rnd % len(runtimes):] + runtimes[: rnd % len(runtimes)]:
                t0 = time.perf_counter()
                taggers[runtime].predict(words, batch_size=256, with_confidence=confidence)
                times[runtime].append(time.perf_counter() - t0)
        for runtime in runtimes:
            out[runtime][f"tokens_per_s_{key}"] = round(n_tokens / statistics.median(times[runtime]), 1)
            out[runtime][f"pass_seconds_{key}"] = [round(t, 3) for t in times[runtime]]
            out[runtime][f"paired_speedup_{key}"] = round(statistics.median(
                a / b for a, b in zip(times["torch-fp32"], times[runtime])), 3)
    return out


def run_child(runtimes: tuple[str, ...], model: str, threads: int, work: str) -> dict[str, Any]:
    env = dict(os.environ, SEQTAG_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, __file__, "--child", ",".join(runtimes), "--model", model, "--threads",
                           str(threads), "--work", work], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: the measuring process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def verdict(fp32: dict[str, Any], fast: dict[str, Any]) -> dict[str, Any]:
    speed = {key: round(fast[f"tokens_per_s_{key}"] / fp32[f"tokens_per_s_{key}"], 3)
             for key in ("tags_only", "with_confidence")}
    loss = round(fp32["f1"] - fast["f1"], 2)
    paired = {key: fast[f"paired_speedup_{key}"] for key in ("tags_only", "with_confidence")}
    return {"speedup": speed, "paired_speedup_vs_torch_fp32": paired, "f1_loss": loss,
            "meets_bar": speed["tags_only"] >= SPEEDUP and loss <= MAX_F1_LOSS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="A trained NER model folder (CoNLL-2003).")
    ap.add_argument("--threads", type=int, default=1, help="torch (and onnxruntime) threads (default 1).")
    ap.add_argument("--onnx", action="store_true", help="Also measure onnxruntime, float32 and its int8 graph.")
    ap.add_argument("--output", default=str(HERE / "results" / "int8.json"), help="The JSON result to write.")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(tuple(args.child.split(",")), args.model, args.threads, args.work)))
        return
    runtimes: tuple[str, ...] = RUNTIMES if args.onnx else RUNTIMES[:3]
    from seqtag.quantize import native_bf16

    if not native_bf16():
        print("torch-bf16: skipped, this CPU has no native bfloat16 (AVX512-BF16 or AMX)", flush=True)
        runtimes = tuple(r for r in runtimes if r != "torch-bf16")
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as work:
        results = run_child(runtimes, args.model, args.threads, work)
    for runtime, m in results.items():
        print(f"{runtime:11s} F1 {m['f1']:.2f}  tags only {m['tokens_per_s_tags_only']:>9,.0f} tokens/s  "
              f"with confidences {m['tokens_per_s_with_confidence']:>9,.0f} tokens/s  (paired vs torch-fp32: "
              f"{m['paired_speedup_tags_only']:.2f}x, {m['paired_speedup_with_confidence']:.2f}x)", flush=True)
    import torch

    meta = json.loads((Path(args.model) / "meta.json").read_text(encoding="utf-8"))
    report: dict[str, Any] = {
        "model": str(args.model), "model_test_f1_saved": (meta.get("scores") or {}).get("test", {}).get("f1"),
        "dataset": "conll2003 eng.testb, pre-tokenized, batch 256", "threads": args.threads,
        "timing": "median of 3 timed passes after one untimed pass; runtimes interleaved round by round in one process",
        "torch": torch.__version__, "quantized_engine": torch.backends.quantized.engine,
        "cpu": cpu_summary(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"), "bar": {"speedup": SPEEDUP, "max_f1_loss": MAX_F1_LOSS},
        "results": results, "torch_int8_vs_fp32": verdict(results["torch-fp32"], results["torch-int8"]),
    }
    if "torch-bf16" in results:
        report["torch_bf16_vs_fp32"] = verdict(results["torch-fp32"], results["torch-bf16"])
    if args.onnx:
        report["onnx_int8_vs_onnx_fp32"] = verdict(results["onnx-fp32"], results["onnx-int8"])
        report["onnx_int8_vs_torch_fp32"] = verdict(results["torch-fp32"], results["onnx-int8"])
    for key in ("torch_int8_vs_fp32", "torch_bf16_vs_fp32", "onnx_int8_vs_onnx_fp32", "onnx_int8_vs_torch_fp32"):
        if key in report:
            v = report[key]
            print(f"{key}: {v['speedup']['tags_only']:.2f}x tags only, {v['speedup']['with_confidence']:.2f}x with "
                  f"confidences, F1 loss {v['f1_loss']:+.2f}; meets >= {SPEEDUP}x at <= {MAX_F1_LOSS} F1 loss: "
                  f"{'yes' if v['meets_bar'] else 'no'}")
    atomic_write_json(args.output, report)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
