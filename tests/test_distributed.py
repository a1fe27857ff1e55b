"""Distributed training under torchrun on the CPU (gloo): the same model as one process, one writer,
a lost rank ends the run with one line, --resume checks the world size; device settings on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import corpora_dir

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")

# a small network without dropout: one process and two then take the same steps on the same batches, and
# differ only in the order floats are summed (with dropout each rank draws its own masks)
CONFIG = {
    "model": {"dropout": 0.0,
              "embedding": {"type": "concat.v1",
                            "parts": [{"type": "word.v1", "dim": 50, "casing_dim": 8, "word_dropout": 0.0},
                                      {"type": "char_cnn.v1", "char_dim": 16, "filters": 24}]},
              "encoder": {"type": "lstm.v1", "hidden_size": 64}},
    "training": {"threads": 1, "batch_size": 32, "max_steps": 240, "max_epochs": 100, "patience": 100},
}

# records, per rank, every file written or folder made under $AUDIT_WATCH (Python's audit events), then
# runs the seqtag command
AUDITED = '''
import json, os, sys
watch, events = os.environ["AUDIT_WATCH"], []
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = os.fsdecode(args[0]), args[1], args[2]
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE)
        if writes and os.path.abspath(path).startswith(watch):
            events.append(["open", path])
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "shutil.rmtree"):
        if os.fsdecode(args[0]).startswith(watch):
            events.append([event, os.fsdecode(args[0])])
def dump():
    with open(os.path.join(os.environ["AUDIT_OUT"], "rank%s.json" % os.environ["RANK"]), "w") as f:
        json.dump({"pid": os.getpid(), "events": events}, f)
import atexit
atexit.register(dump)
with open(os.path.join(os.environ["AUDIT_OUT"], "pid%s" % os.environ["RANK"]), "w") as f:
    f.write(str(os.getpid()))
sys.addaudithook(hook)
from seqtag.cli import main
sys.argv = ["seqtag"] + sys.argv[1:]
main()
'''

pytestmark = pytest.mark.skipif(corpora_dir() is None, reason="SEQTAG_CORPORA is not set")


def _slice(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` sentences of a CoNLL file."""
    out, cur = [], []
    for line in src.read_text(encoding="utf-8").splitlines():
        if line.startswith("-DOCSTART-"):
            continue
        if not line.strip():
            if cur:
                out.append("\n".join(cur))
                cur = []
            if len(out) >= n:
                break
        else:
            cur.append(line)
    dst.write_text("\n\n".join(out) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def conll_slice(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = corpora_dir() / "conll2003"  # type: ignore[operator]
    folder = tmp_path_factory.mktemp("conll_slice")
    for split, name, n in (("train", "eng.train", 1500), ("dev", "eng.testa", 300), ("test", "eng.testb", 400)):
        _slice(root / name, folder / f"{split}.conll", n)
    return ",".join(f"{s}={folder / f'{s}.conll'}" for s in ("train", "dev", "test"))


def _env(tmp: Path, watch: Path) -> dict[str, str]:
    env = dict(os.environ, AUDIT_WATCH=str(watch.resolve()), AUDIT_OUT=str(tmp), OMP_NUM_THREADS="1",
               SEQTAG_DIST_TIMEOUT="120")
    env.pop("WORLD_SIZE", None)
    return env


def _args(dataset: str, out: Path, config: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return ["train", "--dataset", dataset, "--config", str(config), "--output", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, conll_slice: str) -> dict[str, object]:
    """One process at batch 32, and torchrun with two processes at the same total batch, same steps."""
    tmp = tmp_path_factory.mktemp("ddp")
    config = tmp / "config.json"
    config.write_text(json.dumps(CONFIG))
    script = tmp / "audited.py"
    script.write_text(AUDITED)
    single, double = tmp / "single", tmp / "double"
    one = subprocess.run([sys.executable, "-m", "seqtag", *_args(conll_slice, single, config)],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "--master_port", "29531", str(script),
                          *_args(conll_slice, double, config)],
                         capture_output=True, text=True, timeout=600, env=_env(tmp, double))
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    return {"single": single, "double": double, "one": one, "two": two, "tmp": tmp, "config": config}


def _test_f1(model: Path) -> float:
    return float(json.loads((model / "meta.json").read_text())["scores"]["test"]["f1"])


def test_two_processes_train_the_model_one_process_trains(runs: dict) -> None:
    single, double = runs["single"], runs["double"]
    f1_one, f1_two = _test_f1(single), _test_f1(double)
    assert f1_one > 40  # it learned: a few hundred steps on CoNLL-2003
    assert abs(f1_one - f1_two) <= 1.0, (f1_one, f1_two)
    from seqtag import load

    tagger = load(double)  # the distributed model loads as any model
    assert tagger.predict(["Peter Blackburn went to Brussels ."])[0].tags


def test_only_rank_zero_writes_and_logs(runs: dict) -> None:
    tmp = runs["tmp"]
    rank0 = json.loads((tmp / "rank0.json").read_text())["events"]
    rank1 = json.loads((tmp / "rank1.json").read_text())["events"]
    assert rank1 == []
    assert any(e[0] == "os.mkdir" or e[0] == "open" for e in rank0)  # the audit sees rank 0's writes
    out = runs["two"].stdout
    assert out.count("epoch   1 ") == 1  # one voice
    assert "2 processes" in out


def test_resume_with_another_world_size_is_one_line(runs: dict) -> None:
    double = runs["double"]
    r = subprocess.run([sys.executable, "-m", "seqtag", "train", "--resume", str(double), "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "trained with 2 processes and is resumed with 1" in r.stderr


def test_a_killed_rank_stops_the_job_with_a_message(runs: dict, conll_slice: str) -> None:
    tmp, config = runs["tmp"] / "kill", runs["config"]
    tmp.mkdir()
    out = tmp / "model"
    long = json.loads(config.read_text())
    long["training"]["max_steps"] = 100000
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps(long))
    proc = subprocess.Popen([TORCHRUN, "--nproc_per_node", "2", "--master_port", "29533",
                             str(runs["tmp"] / "audited.py"), *_args(conll_slice, out, cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp, out))
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint" / "trainer.json").is_file():  # an epoch is done: training is under way
            assert proc.poll() is None and time.time() < deadline, "the run did not reach its first checkpoint"
            time.sleep(0.5)
        os.kill(int((tmp / "pid1").read_text()), signal.SIGKILL)
        killed = time.time()
        output, _ = proc.communicate(timeout=120)  # a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert time.time() - killed < 120
    assert "rank 0 of 2: another process of this distributed run stopped or cannot be reached" in output
    assert (out / "checkpoint" / "trainer.json").is_file()  # the last checkpoint stays


def test_devices_on_the_cpu(tmp_path: Path, conll_slice: str) -> None:
    """--device cpu and auto train here; an absent CUDA device and fp16 on the CPU are one line, exit 2."""
    base = ["train", "--dataset", conll_slice, "--no-progress", "--set", "training.max_steps=3",
            "--set", "training.max_train_sentences=64", "--set", "training.threads=1"]
    for device in ("cpu", "auto"):
        r = subprocess.run([sys.executable, "-m", "seqtag", *base, "--device", device, "--output",
                            str(tmp_path / device)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads((tmp_path / device / "config.json").read_text())["training"]["device"] == device
    for extra, words in ((["--device", "cuda"], "finds no CUDA device"),
                         (["--device", "tpu"], "unknown device 'tpu'"),
                         (["--set", "training.precision=\"fp16\""], "needs a CUDA device")):
        r = subprocess.run([sys.executable, "-m", "seqtag", *base, *extra, "--output", str(tmp_path / "x")],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr[-2000:]
        assert words in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
