"""flair 0.15 as a peer of seqtag and spaCy: train its ``SequenceTagger`` from scratch on the same files.

Run it with the python of flair's own virtual environment, not seqtag's. It reads the corpora and scores
the predictions with seqtag's own reader and scorer (``seqtag.data``, ``seqtag.evaluate``: plain Python,
no torch), from this checkout when seqtag is not installed there:

    python -m venv /work/.flair-venv
    /work/.flair-venv/bin/pip install torch==2.13.0            # first: the CPU wheel, before flair can pick one
    echo torch==2.13.0 > /tmp/flair-constraints.txt
    /work/.flair-venv/bin/pip install -c /tmp/flair-constraints.txt flair==0.15.1 seqeval
    SEQTAG_CORPORA=../shared/corpora /work/.flair-venv/bin/python benchmarks/bench_flair.py --task ner --seeds 3
    ... bench_flair.py --task pos --seeds 1 --max-epochs 1 --max-sentences 2000 --output /tmp/smoke.json  # smoke

The recipe (nothing is downloaded: ``HF_HUB_OFFLINE`` and friends are set before flair is imported):

- embeddings: ``OneHotEmbeddings.from_corpus`` (flair's trainable word embeddings over the training
  vocabulary, case-sensitive, flair's ``min_freq=3``; 100 dimensions, as seqtag's word embedding) stacked
  with ``CharacterEmbeddings`` (flair's character BiLSTM, 25-dim characters, 25 hidden per direction),
  its character dictionary built from the training words (flair's default one would be downloaded);
- ``SequenceTagger(hidden_size=200, use_crf=True)``: a one-layer BiLSTM of seqtag's default hidden size
  (seqtag/configs/ner.toml, pos.toml) and a CRF, flair's defaults otherwise (BIOES for NER, re-projected
  embeddings, word dropout 0.05, locked dropout 0.5);
- ``ModelTrainer.train``: flair's tutorial recipe, SGD with learning rate 0.1, mini-batches of 32,
  annealing by 0.5 after 3 epochs without a better dev score, stopping below 1e-4 or at ``--max-epochs``
  (150 by default, the tutorial's); the model of the best dev score is kept.

Data: CoNLL-2003 (``conll2003/eng.train``, ``eng.testa`` dev, ``eng.testb`` test; IOB1 converted to IOB2,
``-DOCSTART-`` lines dropped) for NER and UD English EWT (``ud_english_ewt/*.conllu``, the UPOS column,
multiword-token and empty-node lines skipped) for POS, read from ``$SEQTAG_CORPORA`` by seqtag's corpus
reader, as ``bench_vs_spacy.py`` reads them.

Measured, as ``bench_vs_spacy.py`` measures seqtag and spaCy: the test score (entity F1 over exact spans
in IOB2, seqeval's default, or UPOS accuracy), the training time to the best dev score (wall time from
the start of the training process to the end of the dev evaluation of the best epoch), inference tokens/s
over the whole test set (``predict`` in batches of 256 on pre-tokenized sentences, building the
``Sentence`` objects and reading the tags back included; median of 3 runs after a first pass) and the
peak RSS of that inference process. Each training and each measurement runs in its own subprocess with
``--threads`` torch threads (1 by default). Figures are the median (min, max) over the seeds; the JSON
goes to ``benchmarks/results/flair_<task>.json`` unless ``--output`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# nothing flair or huggingface_hub would fetch is reachable: fail fast instead of waiting on the network
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
CORPUS = {"ner": "conll2003", "pos": "ud_english_ewt"}
try:
    import seqtag  # noqa: F401
except ImportError:  # flair's environment: seqtag's reader and scores from this checkout (they need no torch)
    sys.path.insert(0, str(HERE.parent))
LABEL = {"ner": "ner", "pos": "upos"}
HIDDEN_SIZE = 200  # seqtag's default encoder (seqtag/configs/ner.toml and pos.toml: lstm.v1, hidden_size 200)
WORD_DIM = 100  # seqtag's default word embedding (word.v1, dim 100)

Sent = tuple[list[str], list[str]]


def corpora() -> Path:
    root = os.environ.get("SEQTAG_CORPORA")
    if not root or not Path(root).is_dir():
        sys.exit("error: set SEQTAG_CORPORA to the folder of the corpora (e.g. ../shared/corpora)")
    return Path(root)


# -- data and scores: seqtag's own, so flair reads and is scored exactly as seqtag and spaCy are ----------
def read_split(task: str, split: str, max_sentences: int | None = None) -> list[Sent]:
    """A split as ``bench_vs_spacy.py`` reads it: seqtag's corpus reader (CoNLL-2003 in IOB2 without the
    ``-DOCSTART-`` lines; UD EWT's UPOS of the syntactic words)."""
    from seqtag.data import load_corpus

    corpora()
    corpus = load_corpus(CORPUS[task], task, warn=lambda message: None)
    sents = corpus.sentences(split, "IOB2" if task == "ner" else None)
    return [(list(words), list(tags)) for words, tags in sents[:max_sentences or None]]


def test_score(task: str, gold: list[Sent], pred: list[list[str]]) -> float:
    """Entity F1 over exact spans (seqeval's default mode, as ``seqtag evaluate`` scores) or UPOS accuracy."""
    from seqtag.evaluate import ner_scores, pos_scores

    words, tags = [w for w, _ in gold], [t for _, t in gold]
    return float(ner_scores(tags, pred)["f1"] if task == "ner" else pos_scores(words, tags, pred)["accuracy"])


def to_flair(task: str, sents: list[Sent]) -> list[Any]:
    from flair.data import Sentence

    from seqtag.labels import spans_from_tags

    out = []
    for words, tags in sents:
        s = Sentence(words)
        if task == "ner":
            for start, end, kind in spans_from_tags(tags):
                s[start:end].add_label("ner", kind)
        else:
            for token, tag in zip(s, tags):
                token.add_label("upos", tag)
        out.append(s)
    return out


def read_tags(task: str, sentences: list[Any]) -> list[list[str]]:
    """The predicted tags of flair sentences, in IOB2 for NER."""
    out = []
    for s in sentences:
        if task == "ner":
            tags = ["O"] * len(s)
            for span in s.get_spans("ner"):
                idx = [t.idx - 1 for t in span.tokens]
                kind = span.get_label("ner").value
                tags[idx[0]] = "B-" + kind
                for i in idx[1:]:
                    tags[i] = "I-" + kind
        else:
            tags = [t.get_label("upos").value for t in s]
        out.append(tags)
    return out


def setup_flair(threads: int) -> None:
    import flair
    import torch

    torch.set_num_threads(threads)
    flair.device = torch.device("cpu")


# -- training (in a child process) ---------------------------------------------------------------
def train(task: str, seed: int, out: Path, t0: float, opts: dict[str, Any]) -> dict[str, Any]:
    """Train one flair tagger; ``t0`` is the parent's clock when it started this process."""
    setup_flair(opts["threads"])
    import flair
    from flair.data import Corpus, Dictionary
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import CharacterEmbeddings, OneHotEmbeddings, StackedEmbeddings
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer
    from flair.trainers.plugins import TrainerPlugin

    flair.set_seed(seed)
    n = opts["max_sentences"]
    corpus = Corpus(train=FlairDatapointDataset(to_flair(task, read_split(task, "train", n))),
                    dev=FlairDatapointDataset(to_flair(task, read_split(task, "dev", n))),
                    test=None, sample_missing_splits=False)
    label = LABEL[task]
    tag_dictionary = corpus.make_label_dictionary(label_type=label, add_unk=False)
    chars = Dictionary()  # flair's default character dictionary would be downloaded: the training characters
    for s in corpus.train:
        for token in s:
            for c in token.text:
                chars.add_item(c)
    # OneHotEmbeddings logs its whole vocabulary at INFO (when made and when the best model is loaded back)
    logging.getLogger("flair").addFilter(lambda record: len(str(record.msg)) < 2000)
    words = OneHotEmbeddings.from_corpus(corpus, min_freq=opts["min_freq"], embedding_length=WORD_DIM)
    embeddings = StackedEmbeddings([words, CharacterEmbeddings(path_to_char_dict=chars)])
    tagger = SequenceTagger(embeddings=embeddings, tag_dictionary=tag_dictionary, tag_type=label,
                            hidden_size=HIDDEN_SIZE, use_crf=opts["crf"])

    epochs: list[dict[str, Any]] = []

    class EpochClock(TrainerPlugin):
        """The wall time and dev score at the end of each epoch's evaluation."""

        @TrainerPlugin.hook
        def after_evaluation(self, epoch: int, current_model_is_best: bool, validation_scores: tuple,
                             **kw: Any) -> None:
            epochs.append({"epoch": epoch, "seconds": round(time.time() - t0, 1),
                           "dev": round(100 * float(validation_scores[0]), 2), "best": bool(current_model_is_best),
                           "lr": self.trainer.optimizer.param_groups[0]["lr"]})
            print(f"flair epoch {epoch}: dev {epochs[-1]['dev']:.2f}{' *' if current_model_is_best else ''} "
                  f"at {epochs[-1]['seconds']:.0f}s", flush=True)

    trainer = ModelTrainer(tagger, corpus)
    trainer.train(out, learning_rate=opts["lr"], mini_batch_size=opts["batch_size"], max_epochs=opts["max_epochs"],
                  embeddings_storage_mode="none", save_final_model=False, create_loss_file=False,
                  plugins=[EpochClock()])
    model = out / "best-model.pt"
    if not model.exists():  # no epoch beat a dev score of 0 (a smoke run): keep the last state
        tagger.save(model)
    best = max(epochs, key=lambda e: e["dev"]) if epochs else {"epoch": 0, "seconds": 0.0, "dev": 0.0}
    return {"model": str(model), "dev": best["dev"], "best_epoch": best["epoch"], "seconds_to_best": best["seconds"],
            "seconds": round(time.time() - t0, 1), "epochs": epochs}


# -- measuring (in a child process) --------------------------------------------------------------
def load_tagger(model: str) -> Any:
    """``SequenceTagger.load``, with the stack's embedding names restored.

    flair 0.15 saves ``OneHotEmbeddings`` without the ``0-`` its ``StackedEmbeddings`` put before its name
    (``CharacterEmbeddings`` keeps its ``1-``); tokens concatenate their embeddings in the sorted order of
    those names, so a loaded model would read the character half as the word half (measured: UPOS dev
    accuracy 16.4 loaded against 19.6 in memory after one short epoch; equal once the names are restored).
    """
    from flair.models import SequenceTagger

    tagger = SequenceTagger.load(model)
    stack = tagger.embeddings
    for i, emb in enumerate(stack.embeddings):
        if not emb.name.startswith(f"{i}-"):
            emb.name = f"{i}-{emb.name}"
    stack._StackedEmbeddings__names = [name for emb in stack.embeddings for name in emb.get_names()]
    return tagger


def measure(task: str, model: str, threads: int, batch_size: int) -> dict[str, Any]:
    setup_flair(threads)
    from flair.data import Sentence

    logging.getLogger("flair").setLevel(logging.WARNING)  # loading logs the whole vocabulary at INFO
    tagger = load_tagger(model)
    gold = read_split(task, "test")
    words = [w for w, _ in gold]
    n_tokens = sum(len(w) for w in words)

    def run() -> list[list[str]]:
        sentences = [Sentence(w) for w in words]
        tagger.predict(sentences, mini_batch_size=batch_size)
        return read_tags(task, sentences)

    t0 = time.perf_counter()
    pred = run()
    first = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    score = test_score(task, gold, pred)
    seqeval_score = None
    if task == "ner":
        try:
            from seqeval.metrics import f1_score
        except ImportError:
            pass
        else:
            seqeval_score = 100 * f1_score([g for _, g in gold], pred)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"test": score, "tokens": n_tokens, "tokens_per_s": n_tokens / statistics.median(times),
           "first_pass_tokens_per_s": n_tokens / first, "peak_rss_mb": round(peak, 1)}
    if seqeval_score is not None:
        out["test_seqeval"] = seqeval_score
    return out


# -- the parent ----------------------------------------------------------------------------------
def child(args: list[str], threads: int, python: str | None = None) -> dict[str, Any]:
    """Run this script with ``--child ARGS`` and read the JSON it leaves in the file named last.

    ``python`` is the interpreter of flair's environment when the caller runs in another one (default: this
    one's)."""
    result = Path(args[-1])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run([python or sys.executable, __file__, "--child", *args], env=env)
    if res.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({res.returncode})")
    return dict(json.loads(result.read_text()))


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["ner", "pos"], default="ner")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from this one (to split seeds across runs)")
    ap.add_argument("--max-epochs", type=int, default=150, help="flair's tutorial: 150 (annealing usually stops it)")
    ap.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (flair's tutorial: 0.1)")
    ap.add_argument("--batch-size", type=int, default=32, help="training mini-batch (flair's tutorial: 32)")
    ap.add_argument("--min-freq", type=int, default=3, help="OneHotEmbeddings vocabulary cut (flair's default: 3)")
    ap.add_argument("--no-crf", action="store_true", help="a softmax head instead of the CRF")
    ap.add_argument("--max-sentences", type=int, default=None, help="the first N train and dev sentences (smoke)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training and measuring")
    ap.add_argument("--predict-batch-size", type=int, default=256)
    ap.add_argument("--output", default=None, help="JSON path (default: benchmarks/results/flair_<task>.json)")
    ap.add_argument("--work", default=None, help="folder for the models (default: a temp folder, removed)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        kind, rest = args.child[0], args.child[1:]
        if kind == "train":
            opts = json.loads(rest[4])
            res = train(rest[0], int(rest[1]), Path(rest[2]), float(rest[3]), opts)
        else:
            res = measure(rest[0], rest[1], int(rest[2]), int(rest[3]))
        Path(rest[-1]).write_text(json.dumps(res))
        return
    corpora()
    import flair
    import torch

    work = Path(args.work or tempfile.mkdtemp(prefix="flair-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    opts = {"max_epochs": args.max_epochs, "lr": args.lr, "batch_size": args.batch_size, "min_freq": args.min_freq,
            "crf": not args.no_crf, "max_sentences": args.max_sentences, "threads": args.threads}
    results: dict[str, Any] = {
        "task": args.task, "corpus": CORPUS[args.task], "system": "flair", "seeds": args.seeds,
        "first_seed": args.first_seed,
        "threads": args.threads, "flair": flair.__version__, "torch": torch.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "settings": {**opts, "optimizer": "SGD", "anneal_factor": 0.5, "patience": 3, "min_learning_rate": 1e-4,
                     "hidden_size": HIDDEN_SIZE, "rnn": "LSTM, 1 layer, bidirectional",
                     "embeddings": f"OneHotEmbeddings(text, {WORD_DIM}, min_freq {args.min_freq}) + "
                                   "CharacterEmbeddings(25, 25 per direction; training characters)",
                     "predict_batch_size": args.predict_batch_size},
        "runs": [],
    }
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        out = work / f"flair-{args.task}-seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        trained = child(["train", args.task, str(seed), str(out), repr(time.time()), json.dumps(opts),
                         str(out / "train.json")], args.threads)
        print(f"{args.task} flair seed {seed}: trained, best dev {trained['dev']:.2f} (epoch {trained['best_epoch']}) "
              f"after {trained['seconds_to_best']:.0f}s of {trained['seconds']:.0f}s", flush=True)
        m = child(["measure", args.task, trained["model"], str(args.threads), str(args.predict_batch_size),
                   str(out / "measure.json")], args.threads)
        results["runs"].append({"seed": seed, **trained, **m})
        print(f"{args.task} flair seed {seed}: test {m['test']:.2f}  best dev after {trained['seconds_to_best']:.0f}s  "
              f"{m['tokens_per_s']:,.0f} tokens/s  peak {m['peak_rss_mb']:.0f} MB", flush=True)
        if len(trained["epochs"]) > 1:
            per_epoch = [b["seconds"] - a["seconds"] for a, b in zip(trained["epochs"], trained["epochs"][1:])]
            results["runs"][-1]["median_seconds_per_epoch"] = round(statistics.median(per_epoch), 1)
    runs = results["runs"]
    results["flair_summary"] = {k: summary([r[k] for r in runs]) for k in
                                ("test", "dev", "seconds_to_best", "seconds", "tokens_per_s",
                                 "first_pass_tokens_per_s", "peak_rss_mb")}
    print(json.dumps(results["flair_summary"]))
    path = Path(args.output) if args.output else HERE / "results" / f"flair_{args.task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
