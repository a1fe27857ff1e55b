"""How close seqtag runs to its limits: prediction and training speed as fractions of a bare recurrent
encoder of the same size and of the machine's fp32 matmul rate.

At ``--threads`` torch threads (1 by default), for a trained model (``--model``, e.g. a default CoNLL-2003
NER model: 166-dim input, BiLSTM 200 per direction, CRF) and the corpora in $SEQTAG_CORPORA, it measures

- the fp32 matmul rate (GFLOP/s, ``torch.mm``, median of ``--repeats`` timings) at the encoder's shapes
  (one recurrent step 256 x H @ H x 4H, the gates 256 x (I+H) @ (I+H) x 4H, the input projection
  (256*25) x I @ I x 4H) and 1024^3; the best of them is "the limit";
- the multiply-adds per token of the encoder (per layer and direction ``gates * H * (I + H)``, read from
  the model), and for information those of the emission layer (2H * k) and the CRF (k * k); FLOP = 2 MACs;
- a bare ``torch.nn.LSTM`` of the encoder's size (same class, layers, directions): inference tokens/s on
  random 256 x 25 batches (``torch.inference_mode``), and training tokens/s (forward, ``out.sum()``
  backward, the model's optimizer from ``make_optimizer``; no clipping) on 256 x 25 batches and on the
  batch shapes seqtag trains with (CoNLL train cut by ``make_batches`` at ``training.batch_size``, epoch 0);
- seqtag's ``predict`` over the whole CoNLL-2003 test set (pre-tokenized, batch 256), tags only and with
  confidences, each pass alternating with bare 256 x 25 runs as bench_vs_spacy.py does, so drift cancels;
- seqtag's training step as ``seqtag.trainer`` runs it (``make_batch`` on the cached ids, the model's loss,
  backward, clipping as configured, the optimizer step; not the loop's thread rebalancing, checkpoints or
  logging), after ``--warmup-steps`` steps, for ``--train-steps`` steps in ``--repeats`` rounds, each round
  followed by the bare trainings above.

Fractions of the limit count the encoder's FLOPs only, and real tokens (not padding); training is taken
as 3x the forward FLOPs (backward ~ 2x forward). Paired fractions are medians of per-round ratios.

    SEQTAG_CORPORA=../shared/corpora python benchmarks/bench_limits.py --model /tmp/exp/base/seed0
    python benchmarks/bench_limits.py --model models/ner --threads 2 --output /tmp/limits-2t.json
    python benchmarks/bench_limits.py --model models/ner --quick --output /tmp/limits-smoke.json  # seconds
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_spacy import FILES, corpora, median_time, paired_rates, summary, test_sentences  # noqa: E402

from seqtag.atomic import atomic_write_json  # noqa: E402
from seqtag.quantize import cpu_summary  # noqa: E402

HERE = Path(__file__).resolve().parent
BATCH, SEQ = 256, 25  # the fixed batch of the bare encoder (as bench_vs_spacy.py)
TRAIN_FACTOR = 3  # training ~ forward + backward (~2x forward)


def matmul_rates(i: int, h: int, gates: int, runs: int) -> dict[str, dict[str, Any]]:
    """GFLOP/s of ``torch.mm`` (m x k @ k x n, 2mnk FLOP), each timing a loop of about 2 GFLOP."""
    shapes = {"recurrent_step": (BATCH, h, gates * h), "gates": (BATCH, i + h, gates * h),
              "input_projection": (BATCH * SEQ, i, gates * h), "square_1024": (1024, 1024, 1024)}
    out = {}
    for name, (m, k, n) in shapes.items():
        a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        loops = max(1, round(2e9 / (2 * m * n * k)))

        def run(a: torch.Tensor = a, b: torch.Tensor = b, c: torch.Tensor = c, loops: int = loops) -> None:
            for _ in range(loops):
                torch.mm(a, b, out=c)
        seconds = median_time(run, runs, warmup=2) / loops
        out[name] = {"m": m, "k": k, "n": n, "seconds": seconds, "gflops": round(2 * m * n * k / seconds / 1e9, 2)}
    return out


def recurrent(model: Any) -> torch.nn.RNNBase:
    """The encoder's ``torch.nn`` LSTM (or GRU, RNN)."""
    rnn = getattr(model.encoder, "rnn", None)
    if not isinstance(rnn, torch.nn.RNNBase):
        sys.exit(f"error: the encoder ({type(model.encoder).__name__}) is not a torch recurrent one")
    return rnn


def encoder_shapes(model: Any) -> dict[str, Any]:
    """The recurrent encoder's sizes and the multiply-adds per token of it and of the head."""
    rnn = recurrent(model)
    gates, dirs = int(getattr(model.encoder, "gates", 4)), 2 if rnn.bidirectional else 1
    i, h, layers, k = rnn.input_size, rnn.hidden_size, rnn.num_layers, model.head.num_tags
    encoder = sum(dirs * gates * h * ((i if layer == 0 else dirs * h) + h) for layer in range(layers))
    crf = k * k if hasattr(model.head, "transitions") else 0
    macs = {"encoder": encoder, "output_projection": dirs * h * k, "crf": crf}
    return {"rnn": type(rnn).__name__, "input_size": i, "hidden_size": h, "layers": layers, "directions": dirs,
            "gates": gates, "num_tags": k, "macs_per_token": {**macs, "total": sum(macs.values())},
            "flops_per_token": {name: 2 * v for name, v in {**macs, "total": sum(macs.values())}.items()}}


def train_batches(lengths: list[int], batch_size: int, seed: int, n: int) -> list[list[int]]:
    """The first ``n`` batches the trainer takes (epoch 0's ``make_batches``, then epoch 1's...)."""
    from seqtag.trainer import make_batches

    out: list[list[int]] = []
    epoch = 0
    while len(out) < n:
        out += make_batches(lengths, batch_size, random.Random(seed * 1000 + epoch))
        epoch += 1
    return out[:n]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import seqtag
    from seqtag.data import index_sentences, load_corpus
    from seqtag.devices import autocast, grad_scaler
    from seqtag.model import make_batch
    from seqtag.trainer import TrainingConfig, _drop_empty, apply_step, make_optimizer

    torch.manual_seed(0)
    tagger = seqtag.load(args.model)
    model, tc = tagger.model, TrainingConfig.from_dict(tagger.config["training"])
    shapes = encoder_shapes(model)
    i, flops = shapes["input_size"], shapes["flops_per_token"]["encoder"]
    res: dict[str, Any] = {"encoder": shapes}

    # 1. the matmul limit
    res["matmul"] = matmul_rates(i, shapes["hidden_size"], shapes["gates"], args.repeats)
    best = max(res["matmul"], key=lambda name: res["matmul"][name]["gflops"])
    limit = res["matmul"][best]["gflops"] * 1e9
    res["limit"] = {"name": best, "gflops": res["matmul"][best]["gflops"]}

    def of_limit(tokens_per_s: float, factor: int = 1) -> float:
        return round(tokens_per_s * factor * flops / limit, 4)

    # 3. the bare encoder, inference
    bare = copy.deepcopy(recurrent(model))  # its own copy: same class, sizes, layers, directions, batch_first
    x = torch.randn(BATCH, SEQ, i)

    def bare_forward() -> None:
        with torch.inference_mode():
            bare(x)
    bare_tps = BATCH * SEQ / median_time(bare_forward, args.bare_runs * args.repeats, warmup=3)
    res["bare_inference"] = {"batch": [BATCH, SEQ], "tokens_per_s": round(bare_tps, 1),
                             "fraction_of_limit": of_limit(bare_tps)}

    # 4. seqtag predict, each pass paired with bare runs
    words = [w for w, _ in test_sentences("ner")]
    n_test = sum(len(w) for w in words)
    res["predict"] = {"tokens": n_test, "sentences": len(words), "batch_size": 256}
    for key, confidence in (("tags_only", False), ("with_confidence", True)):
        def run(confidence: bool = confidence) -> None:
            tagger.predict(words, batch_size=256, with_confidence=confidence)

        run()  # the first pass: caches warm
        pairs = paired_rates(run, n_test, bare_forward, BATCH * SEQ, args.repeats, args.bare_runs)
        ours, ceil = [a for a, _ in pairs], [b for _, b in pairs]
        res["predict"][key] = {
            "tokens_per_s": summary(ours), "paired_bare_tokens_per_s": summary(ceil),
            "paired_fraction_of_bare": round(statistics.median(a / b for a, b in zip(ours, ceil)), 4),
            "fraction_of_limit": of_limit(statistics.median(ours)), "rounds_tokens_per_s": [round(v) for v in ours]}

    # 5 and 6. training: seqtag's step and the bare encoder's, round by round on the same batch shapes
    train = _drop_empty(load_corpus(FILES["ner"][0], "ner", warn=lambda m: None).sentences("train", tagger.scheme))
    index = {t: n for n, t in enumerate(tagger.labels)}
    lengths = [len(w) for w, _ in train]
    ids = [[index[t] for t in tags] for _, tags in train]
    indexed = index_sentences(model.embedding, [w for w, _ in train], progress=False)
    per_round = max(1, args.train_steps // args.repeats)
    batches = train_batches(lengths, tc.batch_size, tc.seed, args.warmup_steps + per_round * args.repeats)
    device = torch.device("cpu")
    optimizer, scaler = make_optimizer(model, tc), grad_scaler(device, tc.precision)
    model.train()

    def seqtag_step(idx: list[int]) -> None:  # the body of seqtag.trainer.train's step loop
        batch = make_batch(model, [train[j][0] for j in idx], [ids[j] for j in idx],
                           columns=None if indexed is None else indexed[idx])
        with autocast(device, tc.precision):
            loss = model.loss(batch)
        apply_step(model, optimizer, scaler, loss, tc.grad_clip)
        loss.item()

    bare.train()
    bare_opt = make_optimizer(bare, tc)

    def bare_step(inputs: torch.Tensor) -> None:
        out, _ = bare(inputs)
        bare_opt.zero_grad(set_to_none=True)
        out.sum().backward()
        bare_opt.step()

    for idx in batches[: args.warmup_steps]:
        seqtag_step(idx)
        bare_step(torch.randn(len(idx), max(lengths[j] for j in idx), i))
    rounds: dict[str, list[float]] = {"seqtag": [], "bare_same_shapes": [], "bare_same_shapes_padded": [],
                                      "bare_fixed": []}
    for r in range(args.repeats):
        chunk = batches[args.warmup_steps + r * per_round: args.warmup_steps + (r + 1) * per_round]
        real = sum(lengths[j] for idx in chunk for j in idx)
        padded = sum(len(idx) * max(lengths[j] for j in idx) for idx in chunk)
        t0 = time.perf_counter()
        for idx in chunk:
            seqtag_step(idx)
        rounds["seqtag"].append(real / (time.perf_counter() - t0))
        inputs = [torch.randn(len(idx), max(lengths[j] for j in idx), i) for idx in chunk]
        t0 = time.perf_counter()
        for t in inputs:
            bare_step(t)
        seconds = time.perf_counter() - t0
        rounds["bare_same_shapes"].append(real / seconds)
        rounds["bare_same_shapes_padded"].append(padded / seconds)
        rounds["bare_fixed"].append(BATCH * SEQ / median_time(lambda: bare_step(x), args.bare_runs, warmup=0))
    med = {k: statistics.median(v) for k, v in rounds.items()}

    def paired(key: str) -> float:
        return round(statistics.median(a / b for a, b in zip(rounds["seqtag"], rounds[key])), 4)
    res["bare_training"] = {
        "fixed": {"batch": [BATCH, SEQ], "tokens_per_s": summary(rounds["bare_fixed"]),
                  "fraction_of_limit": of_limit(med["bare_fixed"], TRAIN_FACTOR)},
        "same_shapes": {"real_tokens_per_s": summary(rounds["bare_same_shapes"]),
                        "padded_tokens_per_s": summary(rounds["bare_same_shapes_padded"]),
                        "fraction_of_limit": of_limit(med["bare_same_shapes"], TRAIN_FACTOR),
                        "padded_fraction_of_limit": of_limit(med["bare_same_shapes_padded"], TRAIN_FACTOR)}}
    res["training"] = {
        "batch_size": tc.batch_size, "optimizer": tc.optimizer, "grad_clip": tc.grad_clip, "precision": tc.precision,
        "warmup_steps": args.warmup_steps, "steps": per_round * len(rounds["seqtag"]), "steps_per_round": per_round,
        "real_tokens_per_s": summary(rounds["seqtag"]), "rounds_tokens_per_s": [round(v) for v in rounds["seqtag"]],
        "paired_fraction_of_bare_fixed": paired("bare_fixed"),
        "paired_fraction_of_bare_same_shapes": paired("bare_same_shapes"),
        "fraction_of_limit": of_limit(med["seqtag"], TRAIN_FACTOR)}
    return res


def report(res: dict[str, Any]) -> None:
    enc, lim = res["encoder"], res["limit"]
    print(f"encoder: {enc['rnn']} {enc['input_size']} -> {enc['hidden_size']} x {enc['directions']} dir x "
          f"{enc['layers']} layer(s); MACs/token: encoder {enc['macs_per_token']['encoder']:,}, emissions "
          f"{enc['macs_per_token']['output_projection']:,}, CRF {enc['macs_per_token']['crf']:,}")
    for name, m in res["matmul"].items():
        print(f"matmul {name:16s} {m['m']:>5} x {m['k']:>4} @ {m['k']:>4} x {m['n']:>4}: {m['gflops']:8.1f} GFLOP/s")
    print(f"limit: {lim['gflops']:.1f} GFLOP/s ({lim['name']}); fractions below count the encoder's FLOPs only")
    b = res["bare_inference"]
    print(f"bare inference 256x25:        {b['tokens_per_s']:>10,.0f} tokens/s  {b['fraction_of_limit']:.1%} of limit")
    for key in ("tags_only", "with_confidence"):
        p = res["predict"][key]
        print(f"seqtag predict {key:15s} {p['tokens_per_s']['median']:>10,.0f} tokens/s  "
              f"{p['paired_fraction_of_bare']:.1%} of bare (paired)  {p['fraction_of_limit']:.1%} of limit")
    bt, t = res["bare_training"], res["training"]
    print(f"bare training 256x25:         {bt['fixed']['tokens_per_s']['median']:>10,.0f} tokens/s  "
          f"{bt['fixed']['fraction_of_limit']:.1%} of limit (training = {TRAIN_FACTOR}x forward FLOPs)")
    s = bt["same_shapes"]
    print(f"bare training seqtag batches: {s['real_tokens_per_s']['median']:>10,.0f} real tokens/s  "
          f"({s['padded_tokens_per_s']['median']:,.0f} with padding)  {s['fraction_of_limit']:.1%} of limit")
    print(f"seqtag training (batch {t['batch_size']}):   {t['real_tokens_per_s']['median']:>10,.0f} real tokens/s  "
          f"{t['paired_fraction_of_bare_fixed']:.1%} of bare 256x25, {t['paired_fraction_of_bare_same_shapes']:.1%} "
          f"of bare same shapes (paired)  {t['fraction_of_limit']:.1%} of limit  ({t['steps']} steps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="A trained seqtag NER model folder (CoNLL-2003).")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    ap.add_argument("--repeats", type=int, default=5,
                    help="Paired rounds of prediction and training, and timings per matmul shape (default 5).")
    ap.add_argument("--bare-runs", type=int, default=10, help="Bare 256x25 runs (or training steps) per round.")
    ap.add_argument("--train-steps", type=int, default=300, help="Timed seqtag training steps, over all rounds.")
    ap.add_argument("--warmup-steps", type=int, default=5, help="Untimed training steps first (each kind).")
    ap.add_argument("--quick", action="store_true",
                    help="A smoke run: 1 round, 2 bare runs, 10 training steps after 2 warm-up steps.")
    ap.add_argument("--output", default=str(HERE / "results" / "limits.json"), help="The JSON result to write.")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.bare_runs, args.train_steps, args.warmup_steps = 1, 2, 10, 2
    if min(args.repeats, args.bare_runs, args.train_steps, args.threads) < 1 or args.warmup_steps < 0:
        ap.error("--repeats, --bare-runs, --train-steps and --threads must be positive")
    corpora()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    res = measure(args)
    out: dict[str, Any] = {
        "model": str(args.model), "dataset": "conll2003: eng.testb (predict), eng.train (training batches)",
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "cpu": cpu_summary(),
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        # oneDNN's kernel cache (seqtag's cap, or the user's own setting): smaller than a pass's batch
        # shapes, it compiles every recurrence kernel again on each pass
        "onednn_primitive_cache_capacity": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"),
        "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(time.time() - t0, 1),
        "settings": {k: getattr(args, k) for k in ("repeats", "bare_runs", "train_steps", "warmup_steps", "quick")},
        "assumptions": {"fraction_of_limit": "encoder FLOPs (2 x MACs) per real token x tokens/s / the limit",
                        "training_flops": f"{TRAIN_FACTOR}x the forward FLOPs",
                        "bare_training_loss": "out.sum(); the model's optimizer (make_optimizer), no clipping"},
        **res}
    report(out)
    atomic_write_json(args.output, out)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
