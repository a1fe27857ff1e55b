"""Shared fixtures: tiny taggers trained on the sample corpora in corpora/ (seconds on one core)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# the training curves are drawn after each epoch; tests of the pictures turn it on for themselves
os.environ.setdefault("SEQTAG_TRAINING_PICTURE", "0")
os.environ.setdefault("SEQTAG_THREADS", "1")  # tests run beside each other; the policy has its own tests
# training caches its indexed corpora in the datasets cache: keep the tests' files out of the user's,
# in a folder of the run's own that goes when the run ends (workers and commands inherit the variable)
if "HF_DATASETS_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="seqtag-tests-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "corpora"


def corpora_dir() -> Path | None:
    """The folder of real corpora (``SEQTAG_CORPORA``), or ``None``."""
    root = os.environ.get("SEQTAG_CORPORA")
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(autouse=True)
def _no_third_party_plugins(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite tests seqtag itself, whatever else is installed: third-party plugin autoload is off
    (in this process and the commands it starts), except in tests marked ``plugins``, which install
    or use one (the plugins' own tests under plugins/ run with it on)."""
    if request.node.get_closest_marker("plugins") is None:
        monkeypatch.setenv("SEQTAG_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


SMALL = {
    "model": {
        "tokenizer": {"type": "whitespace.v1"},
        "embedding": {"type": "concat.v1", "parts": [{"type": "word.v1", "dim": 24, "casing_dim": 4},
                                                     {"type": "char_cnn.v1", "char_dim": 12, "filters": 16}]},
        "encoder": {"type": "lstm.v1", "hidden_size": 24},
        "dropout": 0.1,
    },
    "training": {"max_epochs": 12, "batch_size": 8, "lr": 0.01, "threads": 1, "patience": 12},
}


def train_small(task: str, out: Path, overrides: dict | None = None) -> tuple[object, dict]:
    """Train a small tagger on the sample corpus of ``task``; returns (tagger, summary)."""
    from seqtag.config import merge
    from seqtag.data import load_corpus
    from seqtag.trainer import build_config, train

    cfg = build_config(task, merge(SMALL, overrides or {}))
    corpus = load_corpus(str(SAMPLES / f"sample_{task}"), task)
    scheme = cfg["scheme"] if task == "ner" else None
    gold = "IOB2" if task == "ner" else None
    return train(cfg, corpus.sentences("train", scheme), corpus.sentences("dev", gold), out, progress=False,
                 log=lambda m: None)


@pytest.fixture(scope="session")
def ner_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "ner"
    train_small("ner", out)
    return out


@pytest.fixture(scope="session")
def pos_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "pos"
    train_small("pos", out)
    return out


def reseal(model: Path) -> None:
    """Rewrite the SHA-256 manifest in ``model/meta.json`` after a test changed the model's files, as the
    author of a hostile model would: the files then pass the manifest check and meet the later ones."""
    import json

    from seqtag.modeldir import manifest

    meta = json.loads((model / "meta.json").read_text(encoding="utf-8"))
    meta["files"] = manifest(model, meta["files"])
    (model / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
