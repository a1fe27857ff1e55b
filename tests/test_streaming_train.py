"""`seqtag train --streaming`: the training split streamed (seqtag.streaming) through the same training loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import SAMPLES

SMALL = ["--set", "model.encoder.hidden_size=16", "--set", "model.embedding.parts=[{type='word.v1', dim=16}]",
         "--set", "training.threads=1", "--no-progress"]


def _seqtag(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqtag", *args], capture_output=True, text=True, timeout=300)


def test_streamed_training_trains_saves_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "m"
    r = _seqtag("train", "--streaming", "--dataset", str(SAMPLES / "sample_ner"), "--max-epochs", "3", "-o", str(out),
                *SMALL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "training sentences streamed from" in r.stdout
    config = json.loads((out / "config.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert config["data"]["streaming"] is True and meta["data"]["streamed"] is True
    assert meta["scores"]["dev"]["f1"] > 0  # it learned something in three epochs
    r = _seqtag("train", "--resume", str(out), "--no-progress")  # the run's own data settings: streamed again
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing to resume" in r.stdout


def test_streaming_needs_a_dev_split(tmp_path: Path) -> None:
    r = _seqtag("train", "--streaming", "--dataset", str(SAMPLES / "sample_ner" / "train.conll"), "-o",
                str(tmp_path / "m"), *SMALL)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0, r.stderr
    assert "dev" in r.stderr
