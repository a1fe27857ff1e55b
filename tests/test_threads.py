"""seqtag.threads: the thread policy, SEQTAG_THREADS, the OpenMP environment and the busy-CPU sampling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqtag import threads
from seqtag.errors import ConfigError
from seqtag.threads import (
    ENV_VAR,
    OPENMP_ENVIRONMENT,
    ThreadChoice,
    busy_cpus,
    choose_threads,
    configure_threads,
    describe,
    others_busy,
    prepare_environment,
    stat_busy_ticks,
    usable_cpus,
)

LINUX = Path("/proc/stat").is_file() and hasattr(os, "sched_getaffinity")


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch):
    """No SEQTAG_THREADS or OMP_NUM_THREADS from outside; torch back to one thread (the suite's) after."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(1)


def _machine(monkeypatch: pytest.MonkeyPatch, cpus: int, busy: float | None) -> None:
    """Pretend a machine of ``cpus`` usable CPUs with ``busy`` of them kept busy by others."""
    monkeypatch.setattr(threads, "_cpu_count", lambda: cpus)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "busy_cpus", lambda seconds=0.15: busy)


def test_policy_stays_within_the_usable_cpus():
    cpus = usable_cpus()
    assert 1 <= cpus <= (os.cpu_count() or 1)
    n = configure_threads()
    assert 1 <= n <= cpus
    assert torch.get_num_threads() == n
    assert describe().startswith(f"{n} thread")


@pytest.mark.parametrize("cpus, busy, expected", [
    (2, 0.0, 2), (2, 0.2, 2),  # noise: a CPU counts as busy from 0.4 of it
    (2, 0.5, 1), (2, 1.0, 1), (2, 1.3, 1),
    (2, 2.0, 1), (2, 7.0, 1),  # at least one thread
    (8, 3.0, 5), (8, 2.6, 5),
    (2, None, 2),  # no /proc/stat: nothing counts as busy
])
def test_policy_gives_the_cpus_others_leave_free(monkeypatch, cpus, busy, expected):
    _machine(monkeypatch, cpus, busy)
    choice = choose_threads()
    assert choice.threads == expected
    assert choice.source == "policy"


def test_requested_and_seqtag_threads_come_first(monkeypatch):
    _machine(monkeypatch, 2, 1.0)
    assert configure_threads(3) == 3 and torch.get_num_threads() == 3  # as given, even above the CPUs
    assert describe() == "3 threads (as asked; 2 CPUs)"
    monkeypatch.setenv(ENV_VAR, "2")
    assert configure_threads() == 2 and torch.get_num_threads() == 2
    assert describe() == f"2 threads ({ENV_VAR}=2; 2 CPUs)"
    assert configure_threads(0) == 2  # 0 is "not set", as training.threads = 0
    assert configure_threads(1) == 1  # --threads beats the variable
    for policy in ("auto", "0", " "):
        monkeypatch.setenv(ENV_VAR, policy)
        assert choose_threads() == ThreadChoice(1, "policy", 2, 1)


@pytest.mark.parametrize("value", ["many", "-2", "1.5"])
def test_a_bad_seqtag_threads_is_one_config_error(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(ConfigError, match=ENV_VAR):
        configure_threads()
    with pytest.raises(ConfigError):
        configure_threads(-1)


def test_a_cpu_quota_and_omp_num_threads_cap_the_policy(monkeypatch):
    _machine(monkeypatch, 8, 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads().describe() == "3 threads (8 CPUs, none busy, OMP_NUM_THREADS=3)"
    monkeypatch.setenv("OMP_NUM_THREADS", "nonsense")
    assert choose_threads().threads == 8
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 2)
    assert choose_threads().describe() == "2 threads (8 CPUs, none busy, a CPU quota of 2)"
    # others' work counts on the CPUs the process may run on, not against the quota
    monkeypatch.setattr(threads, "busy_cpus", lambda seconds=0.15: 5.0)
    assert choose_threads().describe() == "2 threads (8 CPUs, 5 busy with other work, a CPU quota of 2)"
    monkeypatch.setattr(threads, "busy_cpus", lambda seconds=0.15: 7.0)
    assert choose_threads().describe() == "1 thread (8 CPUs, 7 busy with other work)"


def test_describe_says_what_was_chosen_and_why():
    assert ThreadChoice(2, "policy", 2, 0).describe() == "2 threads (2 CPUs, none busy)"
    assert ThreadChoice(1, "policy", 2, 1).describe() == "1 thread (2 CPUs, 1 busy with other work)"
    assert ThreadChoice(4, "policy", 4).describe() == "4 threads (4 CPUs)"
    assert ThreadChoice(1, "requested", 1).describe() == "1 thread (as asked; 1 CPU)"


def test_prepare_environment_keeps_the_users_own_settings(monkeypatch):
    settings = {"KMP_BLOCKTIME": "10", "GOMP_SPINCOUNT": "300000"}
    for name in settings:  # recorded, so that the test's changes are undone
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.setenv("GOMP_SPINCOUNT", "12345")
    prepare_environment(settings)
    assert os.environ["KMP_BLOCKTIME"] == "10"
    assert os.environ["GOMP_SPINCOUNT"] == "12345"
    before = dict(os.environ)
    prepare_environment()  # OPENMP_ENVIRONMENT: what the measurements chose
    assert {k: os.environ.get(k) for k in before} == before
    assert all(os.environ[k] == v or k in before for k, v in OPENMP_ENVIRONMENT.items())


def test_the_cli_prepares_openmp_before_torch_loads():
    """seqtag.cli calls prepare_environment when imported, and imports no torch itself: OpenMP reads its
    variables when torch loads, which the commands do later."""
    code = ("import os, sys; import seqtag.cli; from seqtag.threads import OPENMP_ENVIRONMENT as E; "
            "print('torch' in sys.modules, all(os.environ.get(k) == v for k, v in E.items()))")
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "True"]


STAT = """cpu  300 0 100 900 10 0 5 20 0 0
cpu0 100 0 50 400 5 0 2 10 0 0
cpu1 200 0 50 500 5 0 3 10 0 0
intr 12345
"""


def test_stat_counts_the_busy_ticks_of_the_usable_cpus():
    assert stat_busy_ticks(STAT) == 100 + 50 + 2 + 10 + 200 + 50 + 3 + 10  # idle and iowait left out
    assert stat_busy_ticks(STAT, {1}) == 263
    assert stat_busy_ticks(STAT, {5}) is None
    assert stat_busy_ticks("intr 1\n") is None
    assert stat_busy_ticks("cpu0 1 2\n") is None  # truncated: not understood


def test_others_busy_leaves_out_this_process():
    # 0.5 s: 80 ticks busy on the usable CPUs (0.8 s of CPU), 0.3 s of it this process's own
    assert others_busy(80, 0.3, 0.5, 100) == pytest.approx(1.0)
    assert others_busy(10, 0.3, 0.5, 100) == 0.0
    assert others_busy(10, 0.0, 0.0, 100) == 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not LINUX, reason="/proc/stat is Linux's")
def test_a_busy_process_is_seen():
    """A real busy subprocess: the sampled busy CPUs hold at least the CPU time it got in the sample (less
    the clock tick's resolution), whatever else runs on the machine, and no more than the usable CPUs."""
    assert busy_cpus(0.2) is not None
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        seen: list[tuple[float, float]] = []
        for _ in range(3):
            c0, t0 = _cpu_seconds(competitor.pid), time.monotonic()
            busy = busy_cpus(0.5)
            share = (_cpu_seconds(competitor.pid) - c0) / (time.monotonic() - t0)
            assert busy is not None
            seen.append((busy, share))
            if share >= 0.3:
                break
    finally:
        competitor.kill()
        competitor.wait()
    busy, share = seen[-1]
    assert share >= 0.3, f"the busy process never got a third of a CPU: {seen}"
    assert busy >= share - 0.15, seen
    assert busy <= usable_cpus() + 0.15, seen


class _Clock:
    """time for busy_cpus: 0.5 s pass in the sleep, in which this process uses 0.3 s of CPU."""

    def __init__(self) -> None:
        self.now = 100.0
        self.cpu = 7.0

    def monotonic(self) -> float:
        return self.now

    def process_time(self) -> float:
        return self.cpu

    def sleep(self, seconds: float) -> None:
        assert seconds == pytest.approx(0.5)
        self.now += 0.5
        self.cpu += 0.3


def test_busy_cpus_subtracts_this_process(monkeypatch):
    ticks = iter([1000.0, 1080.0])  # 0.8 s of CPU busy in the sample (100 ticks a second)
    monkeypatch.setattr(threads, "_busy_ticks", lambda cpus: next(ticks))
    monkeypatch.setattr(threads, "time", _Clock())
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    assert busy_cpus(0.5) == pytest.approx(1.0)
    monkeypatch.setattr(threads, "_busy_ticks", lambda cpus: None)
    assert busy_cpus(0.5) is None


def test_the_sample_starts_at_prepare_environment(monkeypatch):
    """A command's sample runs while torch is imported: from prepare_environment to configure_threads."""
    clock = _Clock()
    ticks = iter([1000.0, 1150.0, 2000.0, 2080.0, 2500.0])
    monkeypatch.setattr(threads, "_busy_ticks", lambda cpus: next(ticks))
    monkeypatch.setattr(threads, "time", clock)
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    for name in OPENMP_ENVIRONMENT:
        monkeypatch.setenv(name, "1")
    prepare_environment()
    clock.now += 1.0  # importing torch: 1 s, 0.5 s of it this process's CPU
    clock.cpu += 0.5
    assert busy_cpus(0.15) == pytest.approx(1.0)  # 1.5 s busy in 1 s, less our 0.5; no sleep
    assert busy_cpus(0.5) == pytest.approx(1.0)  # the start is used once: a new sample
    prepare_environment()
    clock.now += 60  # long ago: not this command's start
    ticks = iter([3000.0, 3080.0])
    assert busy_cpus(0.5) == pytest.approx(1.0)


def test_configure_threads_twice_is_fine():
    assert configure_threads(2) == 2
    assert configure_threads(1) == 1
    assert torch.get_num_threads() == 1


def test_rebalance_follows_programs_that_start_and_end_beside_a_run(monkeypatch):
    clock = _Clock()
    busy_ticks = [5000.0]
    monkeypatch.setattr(threads, "_busy_ticks", lambda cpus: busy_ticks[0])
    monkeypatch.setattr(threads, "time", clock)
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    _machine(monkeypatch, 2, 0.0)

    def run(seconds: float, others: float) -> str | None:
        """``seconds`` of training on 2 threads' worth of this process, ``others`` CPUs of other work."""
        own = min(2.0, float(torch.get_num_threads()))
        clock.now += seconds
        clock.cpu += own * seconds
        busy_ticks[0] += (own + others) * seconds * 100
        return threads.rebalance()

    assert configure_threads() == 2
    assert run(5, 1.0) is None  # not yet time to look
    assert run(6, 1.0) == "1 thread (2 CPUs, 1 busy with other work)"
    assert torch.get_num_threads() == 1
    assert run(11, 1.0) is None
    assert run(11, 0.1) == "2 threads (2 CPUs, none busy)"
    assert torch.get_num_threads() == 2
    assert configure_threads(2) == 2  # asked for: kept
    assert run(11, 1.0) is None and torch.get_num_threads() == 2


def test_the_training_loop_looks_again_and_logs_a_change(monkeypatch, tmp_path):
    """The trainer calls :func:`rebalance` after each step and logs the line it returns."""
    from seqtag import trainer
    from seqtag.config import merge
    from seqtag.data import load_corpus

    from .conftest import SAMPLES, SMALL

    calls: list[int] = []

    def looked() -> str | None:
        calls.append(1)
        return "1 thread (2 CPUs, 1 busy with other work)" if len(calls) == 2 else None

    monkeypatch.setattr(trainer, "rebalance", looked)
    cfg = trainer.build_config("pos", merge(SMALL, {"training": {"max_epochs": 1}}))
    corpus = load_corpus(str(SAMPLES / "sample_pos"), "pos")
    lines: list[str] = []
    trainer.train(cfg, corpus.sentences("train"), corpus.sentences("dev"), tmp_path / "m", progress=False,
                  log=lines.append)
    assert len(calls) >= 2, "rebalance was not called after each step"
    assert lines.count("threads: 1 thread (2 CPUs, 1 busy with other work)") == 1, lines


def test_loading_a_model_follows_seqtag_threads_unless_a_count_was_chosen(ner_model):
    """In a fresh process, ``seqtag.load`` sets ``$SEQTAG_THREADS``'s count (3, not torch's default on any
    machine here); after ``configure_threads(2)`` (a command's ``--threads``) it leaves the count alone;
    without the variable it changes nothing."""
    code = ("import sys, torch, seqtag\n"
            "from seqtag.threads import configure_threads\n"
            "before = torch.get_num_threads()\n"
            "if sys.argv[2] == 'chosen':\n"
            "    configure_threads(2)\n"
            "seqtag.load(sys.argv[1])\n"
            "print(before, torch.get_num_threads())\n")

    def run(env_value: str | None, mode: str) -> tuple[int, int]:
        env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "OMP_NUM_THREADS")}
        if env_value is not None:
            env[ENV_VAR] = env_value
        res = subprocess.run([sys.executable, "-c", code, str(ner_model), mode], capture_output=True, text=True,
                             env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        before, after = res.stdout.split()
        return int(before), int(after)

    assert run("3", "fresh")[1] == 3
    assert run("3", "chosen")[1] == 2
    before, after = run(None, "fresh")
    assert after == before
