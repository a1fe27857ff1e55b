"""Checkpoints, resuming, Ctrl-C and diverging losses: an interrupted run loses nothing.

The acceptance tests train the sample NER corpus with deterministic settings (CPU, one thread, a fixed
seed, a checkpoint every 2 steps), stop the run (``kill -9`` or Ctrl-C) after a checkpoint exists,
resume it with ``seqtag train --resume DIR`` and compare the final model with an uninterrupted run:
weights and test predictions must be identical.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import seqtag
from seqtag import checkpoint as ckpt_mod
from seqtag.cli import main
from seqtag.data import load_corpus
from seqtag.errors import ModelLoadError, TrainingDivergedError

from .conftest import SAMPLES, train_small

CONFIG = """\
task = "ner"
[model]
dropout = 0.1
[model.tokenizer]
type = "whitespace.v1"
[model.embedding]
type = "concat.v1"
parts = [ { type = "word.v1", dim = 16, casing_dim = 4 }, { type = "char_cnn.v1", char_dim = 8, filters = 8 } ]
[model.encoder]
type = "lstm.v1"
hidden_size = 16
[training]
max_epochs = 2
batch_size = 8
lr = 0.01
threads = 1
seed = 3
checkpoint_every = 2
"""
STEPS_PER_EPOCH = 15  # 120 training sentences, batches of 8


def _train_args(cfg: Path, out: Path) -> list[str]:
    return ["train", "--config", str(cfg), "--dataset", str(SAMPLES / "sample_ner"), "-o", str(out), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _progress(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / "checkpoint" / "trainer.json").read_text(encoding="utf-8"))["progress"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet (or between two renames)


def _start_and_wait(cfg: Path, out: Path, *, epoch: int, timeout: float = 120.0) -> subprocess.Popen[str]:
    """Start ``seqtag train`` in a subprocess; return once a mid-epoch checkpoint of ``epoch`` exists."""
    proc = subprocess.Popen([sys.executable, "-m", "seqtag.cli", *_train_args(cfg, out)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if pytest ignores it
    deadline = time.time() + timeout
    while time.time() < deadline:
        prog = _progress(out)
        if prog is not None and prog["epoch"] == epoch and prog["step_in_epoch"] > 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.kill()
    out_, err = proc.communicate()
    raise AssertionError(f"no mid-epoch checkpoint appeared (rc {proc.returncode}): {out_[-500:]} {err[-1500:]}")


def _resume(out: Path) -> None:
    res = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "resuming from" in res.output


def _same_model(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    test = [t for t, _ in load_corpus(str(SAMPLES / "sample_ner"), "ner").sentences("test")]
    pa, pb = seqtag.load(a).predict(test), seqtag.load(b).predict(test)
    assert [p.tags for p in pa] == [p.tags for p in pb]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The config file and the model of an uninterrupted run with it."""
    root = tmp_path_factory.mktemp("resume")
    cfg = root / "small.toml"
    cfg.write_text(CONFIG)
    ref = root / "reference"
    res = CliRunner().invoke(main, _train_args(cfg, ref))
    assert res.exit_code == 0, res.output
    return cfg, ref


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_model(setup: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, ref = setup
    out = tmp_path / "killed"
    proc = _start_and_wait(cfg, out, epoch=1)  # in the second epoch, after the first best model was saved
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ckpt_mod.recover_checkpoint(out)  # what resume does first, should the kill have hit a directory swap
    prog = _progress(out)
    assert prog is not None and prog["epoch"] < 2
    _resume(out)
    _same_model(out, ref)
    assert json.loads((out / "meta.json").read_text())["scores"]["test"]["f1"] == \
        json.loads((ref / "meta.json").read_text())["scores"]["test"]["f1"]


def test_resuming_a_finished_run_trains_nothing(setup: tuple[Path, Path], tmp_path: Path) -> None:
    _, ref = setup
    out = tmp_path / "done"
    shutil.copytree(ref, out)
    before = (out / "model.safetensors").read_bytes()
    res = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "had already finished" in res.output and "the end of the run (calibration, scores)" in res.output
    assert not any(line.startswith("epoch ") for line in res.output.splitlines())  # no epoch was trained
    assert (out / "model.safetensors").read_bytes() == before


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_finishes(setup: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, ref = setup
    out = tmp_path / "interrupted"
    proc = _start_and_wait(cfg, out, epoch=1)  # in the second epoch, after the first best model was saved
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines() == ["interrupted"]
    assert f"state saved in {out / 'checkpoint'}" in stdout and f"seqtag train --resume {out}" in stdout
    prog = _progress(out)
    assert prog is not None and prog["epoch"] == 1 and prog["step_in_epoch"] > 0  # stopped mid-epoch, at a step
    # the model folder already holds the best model so far, and the message says what it still lacks
    assert f"the best model so far (epoch 1, dev {prog['best_score']:.2f}) is in {out}, not yet scored on test nor " \
           f"calibrated (`seqtag calibrate {out}` calibrates it now" in stdout
    assert seqtag.load(out).predict([["EU", "rejects", "German", "call"]])[0].tags
    _resume(out)
    _same_model(out, ref)


def test_checkpoints_every_n_steps_and_every_epoch_end(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import seqtag.trainer as train_mod

    seen: list[tuple[int, int, int]] = []
    real = train_mod.save_checkpoint

    def spy(path: Any, model: Any, optimizer: Any, scheduler: Any, progress: dict, *a: Any, **kw: Any) -> None:
        seen.append((progress["epoch"], progress["step_in_epoch"], progress["global_step"]))
        real(path, model, optimizer, scheduler, progress, *a, **kw)

    monkeypatch.setattr(train_mod, "save_checkpoint", spy)
    train_small("ner", tmp_path / "m", {"training": {"max_epochs": 2, "checkpoint_every": 4, "batch_size": 8}})
    steps = [g for _, _, g in seen]
    assert steps == [4, 8, 12, 15, 16, 20, 24, 28, 30]
    assert seen[3] == (1, 0, 15) and seen[-1] == (2, 0, 30)  # epoch ends
    ck = tmp_path / "m" / "checkpoint"
    assert sorted(p.name for p in ck.iterdir()) == ["assets.json", "state.safetensors", "trainer.json"]
    assert not list(tmp_path.glob("m/.*")) and not list((tmp_path / "m").glob(".*"))  # no temporary leftovers


def test_checkpoint_is_written_fsynced_then_renamed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {Path(os.readlink(f'/proc/self/fd/{fd}')).name}")
        real_fsync(fd)

    def replace(a: Any, b: Any) -> None:
        events.append(f"rename {Path(a).name[:12]} -> {Path(b).name}")
        real_replace(a, b)

    import random

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "run" / "checkpoint"
    ckpt_mod.save_checkpoint(target, model, opt, None, {"epoch": 0}, random.Random(0), assets={"a": 1})
    files = [e for e in events if e.startswith("fsync") and e.split()[1] in
             ("state.safetensors", "trainer.json", "assets.json")]
    rename = events.index(next(e for e in events if e.startswith("rename") and e.endswith("-> checkpoint")))
    assert len(files) == 3 and all(events.index(f) < rename for f in files)
    assert any(e.startswith("fsync .checkpoint") for e in events[:rename])  # the new directory itself
    # a second save replaces the first; a crash while filling leaves the first one whole
    monkeypatch.setattr(os, "replace", real_replace)
    before = (target / "trainer.json").read_text()

    def crash(*a: Any, **kw: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "write_json", crash)
    with pytest.raises(OSError):
        ckpt_mod.save_checkpoint(target, model, opt, None, {"epoch": 1}, random.Random(0))
    assert (target / "trainer.json").read_text() == before
    assert [p.name for p in target.parent.iterdir()] == ["checkpoint"]


def test_a_crash_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    """kill -9 after ``checkpoint`` became ``.checkpoint.old-PID`` but before the new one took its place."""
    src = tmp_path / "src"
    train_small("ner", src, {"training": {"max_epochs": 1}})
    out = tmp_path / "m"
    shutil.copytree(src, out)
    os.replace(out / "checkpoint", out / ".checkpoint.old-4242")
    (out / ".checkpoint.x1.tmp").mkdir()  # a half-written new one
    progress, assets = ckpt_mod.read_checkpoint(out)
    assert progress["epoch"] == 1 and "embedding" in assets
    assert (out / "checkpoint" / "state.safetensors").is_file() and not (out / ".checkpoint.old-4242").exists()
    # the model directory swap: the new model is in place, the checkpoint still in the old directory
    old = tmp_path / ".m.old-4242"
    os.replace(out, old)
    shutil.copytree(old, out, ignore=shutil.ignore_patterns("checkpoint"))
    assert not (out / "checkpoint").exists()
    progress, _ = ckpt_mod.read_checkpoint(out)
    assert progress["epoch"] == 1 and (out / "checkpoint" / "trainer.json").is_file() and not old.exists()


def test_resume_refuses_the_options_that_would_change_the_run_in_one_line(tmp_path: Path) -> None:
    for args, named in ((["--max-epochs", "30", "--overwrite"], "--overwrite is"), (["--seed", "0"], "--seed is"),
                        (["--set", "training.lr=0.1", "--device", "cpu"], "--set, --device are"),
                        (["-o", str(tmp_path / "other"), "--strict"], "--output, --strict are")):
        res = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "run"), *args])
        assert res.exit_code == 2, res.output
        (line,) = res.stderr.strip().splitlines()
        assert "--resume continues with the run's own settings" in line and f"{named} not taken with it" in line
    assert not (tmp_path / "other").exists()


def test_resume_with_max_epochs_trains_an_ended_run_on_to_the_longer_runs_model(
        setup: tuple[Path, Path], tmp_path: Path) -> None:
    """A run ended at epoch 1, resumed with --max-epochs 2, gives the 2-epoch run's model; the checkpoint
    keeps the new limit, so a plain resume then finds the run finished, not cut back to 1."""
    cfg, ref = setup
    out = tmp_path / "short"
    res = CliRunner().invoke(main, [*_train_args(cfg, out), "--max-epochs", "1"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0 and "had already finished at epoch 1" in res.output
    assert "--max-epochs N with --resume trains on" in res.output
    res = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress", "--max-epochs", "2"])
    assert res.exit_code == 0, res.output
    assert "max_epochs: 1 -> 2" in res.output and "epoch   2" in res.output
    _same_model(out, ref)
    assert _progress(out)["config"]["training"]["max_epochs"] == 2  # type: ignore[index]
    assert json.loads((out / "config.json").read_text())["training"]["max_epochs"] == 2
    res = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0 and "had already finished at epoch 2" in res.output
    assert not any(line.startswith("epoch ") for line in res.output.splitlines())


def test_a_resumed_run_takes_no_other_config_change(setup: tuple[Path, Path]) -> None:
    from seqtag.errors import ConfigError
    from seqtag.trainer import resumed_config

    _, ref = setup
    saved = json.loads((ref / "checkpoint" / "trainer.json").read_text())["progress"]["config"]
    longer = {**saved, "training": {**saved["training"], "max_epochs": 9}}
    assert resumed_config(saved, longer) == longer and resumed_config(saved, saved) == saved
    other = {**longer, "training": {**longer["training"], "lr": 0.5}}
    with pytest.raises(ConfigError, match=r"only training.max_epochs may change; the config given differs in "
                                          r"training.lr$"):
        resumed_config(saved, other)
    wider = {**saved["model"]["encoder"], "hidden_size": 64}
    with pytest.raises(ConfigError, match=r"differs in model.encoder.hidden_size$"):
        resumed_config(saved, {**saved, "model": {**saved["model"], "encoder": wider}})


def test_resume_without_or_with_a_damaged_checkpoint_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "none")])
    assert res.exit_code == 2 and "nothing to resume" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    (tmp_path / "bad" / "checkpoint").mkdir(parents=True)
    (tmp_path / "bad" / "checkpoint" / "trainer.json").write_text('{"progress": {"conf')
    res = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "not a readable checkpoint" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    with pytest.raises(ModelLoadError):
        ckpt_mod.read_checkpoint(tmp_path / "bad")


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
        setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A NaN loss at global step 20 stops training; the step-18 checkpoint stays and resumes to the reference."""
    from seqtag.model import TaggerModel

    cfg, ref = setup
    calls = [0]
    real_loss = TaggerModel.loss

    def loss(self: TaggerModel, batch: Any) -> torch.Tensor:
        calls[0] += 1
        value = real_loss(self, batch)
        return value * float("nan") if calls[0] == 20 else value

    monkeypatch.setattr(TaggerModel, "loss", loss)
    out = tmp_path / "nan"
    res = CliRunner().invoke(main, _train_args(cfg, out))
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in res.output
    assert err[0].startswith("error: the training loss became nan at epoch 2, step 5")
    assert f"the last good checkpoint stays in {out / 'checkpoint'}" in err[0] and "lower training.lr" in err[0]
    prog = _progress(out)
    assert prog is not None and prog["global_step"] == 18 and prog["epoch"] == 1 and prog["step_in_epoch"] == 3
    monkeypatch.setattr(TaggerModel, "loss", real_loss)
    _resume(out)  # the kept checkpoint is good: resuming gives the uninterrupted model
    _same_model(out, ref)


def test_nan_weights_never_overwrite_the_last_good_checkpoint(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """A step that leaves NaN in the weights (with a finite loss) is caught before the checkpoint is written."""
    calls = [0]
    real_step = torch.optim.Adam.step

    def step(self: torch.optim.Adam, *a: Any, **kw: Any) -> Any:
        out = real_step(self, *a, **kw)
        calls[0] += 1
        if calls[0] == 8:  # the step right before the checkpoint at step 8
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    out = tmp_path / "m"
    with pytest.raises(TrainingDivergedError, match="became NaN or infinite by step 8") as info:
        train_small("ner", out, {"training": {"max_epochs": 1, "checkpoint_every": 4}})
    assert "the last good checkpoint stays in" in info.value.one_line()
    prog = _progress(out)
    assert prog is not None and prog["global_step"] == 4
    from safetensors.torch import load_file

    state = load_file(str(out / "checkpoint" / "state.safetensors"))
    assert all(bool(torch.isfinite(v).all()) for k, v in state.items() if k.startswith("model."))


def test_divergence_before_any_checkpoint_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from seqtag.model import TaggerModel

    monkeypatch.setattr(TaggerModel, "loss", lambda self, batch: torch.tensor(float("inf"), requires_grad=True))
    with pytest.raises(TrainingDivergedError, match="loss became inf at epoch 1, step 1.*no checkpoint had been"):
        train_small("ner", tmp_path / "m", {"training": {"max_epochs": 1}})


def test_sigterm_saves_a_checkpoint_exits_143_and_resume_gives_the_uninterrupted_model(
        setup: tuple[Path, Path], tmp_path: Path) -> None:
    """What schedulers and `docker stop` send: handled like Ctrl-C, with the signal's own exit status."""
    cfg, ref = setup
    out = tmp_path / "terminated"
    proc = _start_and_wait(cfg, out, epoch=0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines() == ["interrupted"]
    assert f"interrupted (SIGTERM): state saved in {out / 'checkpoint'}" in stdout
    assert "the best model so far" not in stdout  # stopped in the first epoch: there is none yet
    prog = _progress(out)
    assert prog is not None and prog["epoch"] == 0 and prog["step_in_epoch"] > 0
    _resume(out)
    _same_model(out, ref)


def test_a_second_run_on_the_same_output_exits_2_at_once_naming_the_holder(
        setup: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = setup
    out = tmp_path / "busy"
    proc = _start_and_wait(cfg, out, epoch=0)
    try:
        for args in (_train_args(cfg, out) + ["--overwrite"], ["train", "--resume", str(out), "--no-progress"]):
            started = time.time()
            res = CliRunner().invoke(main, args)
            assert res.exit_code == 2, res.output
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and "another seqtag run is writing into this folder" in lines[0], res.stderr
            assert f"pid {proc.pid} on " in lines[0]
            assert time.time() - started < 5  # refused before loading any corpus
        assert proc.poll() is None  # the first run goes on, untouched
    finally:
        proc.kill()
        proc.communicate(timeout=60)


def test_stale_temporary_checkpoint_folders_are_removed_on_resume(setup: tuple[Path, Path], tmp_path: Path) -> None:
    _, ref = setup
    out = tmp_path / "stale"
    shutil.copytree(ref, out)
    for name in (".checkpoint.abc123.tmp", ".checkpoint.zz_9.tmp"):  # what a kill -9 mid-write leaves
        (out / name).mkdir()
        (out / name / "state.safetensors").write_bytes(b"partial")
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert not list(out.glob(".checkpoint.*.tmp"))
    assert (out / "notes.txt").read_text() == "mine"


def test_sigterm_outside_training_ends_a_command_as_interrupted() -> None:
    """SIGTERM that comes while a command is not in training's loop (e.g. calibrating or scoring test after
    it) ends it like Ctrl-C, with "interrupted" and exit 143, not silently; the handler before comes back."""
    code = (
        "import os, signal, time\n"
        "from seqtag.cli import handle_errors\n"
        "@handle_errors\n"
        "def command():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "try:\n"
        "    command()\n"
        "finally:\n"
        "    print('restored' if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 'kept', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "interrupted"
    assert proc.stdout.strip() == "restored"
