"""Threads: how many CPU threads torch computes with, chosen so that a shared CPU slows seqtag down gently.

torch's CPU kernels run on an OpenMP team of one thread per core, and each kernel waits for its
slowest thread. When another program keeps a core busy, the thread that shares it runs only in turns,
and every kernel waits for it. Measured on a 2-core machine (``benchmarks/bench_shared_cpu.py``, the
default NER model, 400 steps, medians of 3 runs; the figures are in
``benchmarks/results/shared_cpu.json``): beside one busy process, 2 threads trained 3.3 times slower
than on the idle machine (1,880 against 6,270 tokens/s; single runs up to 5.9 times), while 1 thread
lost nothing (6,200 against 6,050). On the idle machine 2 threads are faster than 1 (6,300 to 8,500
tokens/s between runs, against 5,800 to 6,200).

The rule, in :func:`configure_threads`:

1. ``requested`` (``--threads N``, ``training.threads = N``) is used as given;
2. else ``$SEQTAG_THREADS`` (a number, or ``auto``/``0`` for the policy below);
3. else the policy: the CPUs this process may run on (its affinity mask) less those other processes
   keep busy right now, at most a cgroup CPU quota and ``$OMP_NUM_THREADS`` where set, and at least 1.
   "Busy" is sampled from ``/proc/stat`` over 0.15 s: the time every process spent on those CPUs,
   less this process's own (a command's sample starts at :func:`prepare_environment`, so it costs no
   time while torch is imported). A CPU counts as busy from 0.4 of it in use, because a thread too
   many costs far more than a thread too few. Where ``/proc/stat`` cannot be read (not Linux),
   nothing counts as busy.

With the policy, an epoch beside one busy process took 1.3 times its idle time (6,020 against 7,800
tokens/s); idle, it runs the old default's 2 threads (7,800 against 6,270 tokens/s, within the
spread between runs).

A long run calls :func:`rebalance` after each step: every 10 s it counts the CPUs others kept busy
since its last look and follows the policy, so a program that starts beside the run (or ends) is
seen. With a busy process started 15 s into a run, an epoch took 1.1 times its idle time with
``rebalance`` and 2.8 times without (whole epochs, medians of 2 runs).

OpenMP's waiting: a thread that waits for work spins for a while before it sleeps (GNU libgomp,
which torch's wheels use: 300k rounds, 9 ms here; Intel's libiomp5: 200 ms). Spinning less did not
help. With 2 threads, tokens/s idle / beside a busy process (medians of 2-3 runs): libgomp's default
6,270 / 1,880; ``GOMP_SPINCOUNT=10000`` 6,830 / 1,460; ``OMP_WAIT_POLICY=PASSIVE`` 4,430 / 5,390
(still slower than 1 thread when busy, and 30% slower idle); Intel's OpenMP 7,030 / 2,850 and with
``KMP_BLOCKTIME=10`` 8,010 / 2,680. Only the thread count keeps a run fast beside other work
without costing idle speed, so :func:`prepare_environment` sets no OpenMP variable
(:data:`OPENMP_ENVIRONMENT` is empty); it stays the one place for such settings, which work only
when set before torch loads, and a user's own always win.

Half-busy neighbours count: beside a process busy 5 ms of every 10 ms, 1 thread trained at 6,120
tokens/s and 2 threads at 4,960, hence a CPU counts as busy from 0.4 of it in use.

:func:`describe` says in one line what was chosen and why, for the training log.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

__all__ = ["ENV_VAR", "OPENMP_ENVIRONMENT", "ThreadChoice", "prepare_environment", "usable_cpus", "busy_cpus",
           "stat_busy_ticks", "others_busy", "choose_threads", "configure_threads", "follow_environment", "rebalance",
           "describe"]

ENV_VAR = "SEQTAG_THREADS"
# OpenMP settings that prepare_environment sets unless the user has: none, as measured (module docstring)
OPENMP_ENVIRONMENT: dict[str, str] = {}
SAMPLE_SECONDS = 0.15
START_REUSE_SECONDS = 5.0
REBALANCE_SECONDS = 10.0
BUSY_FRACTION = 0.4  # a CPU counts as busy with other work from this much of it in use

_STAT_FIELDS_BUSY = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest is inside user)


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and where it came from.

    Attributes:
        threads: The number of threads.
        source: ``"requested"``, ``"SEQTAG_THREADS"`` or ``"policy"``.
        cpus: The CPUs this process may run on (its affinity mask).
        busy: Of those, the CPUs other processes kept busy, as the policy counts them (``None``: not sampled).
        limit: What held the policy's count below the free CPUs (a CPU quota, ``OMP_NUM_THREADS``), if anything.
    """

    threads: int
    source: str
    cpus: int
    busy: int | None = None
    limit: str | None = None

    def describe(self) -> str:
        """One line for a log: ``2 threads (2 CPUs, none busy)``."""
        count = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        cpus = f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}"
        if self.source == "requested":
            return f"{count} (as asked; {cpus})"
        if self.source == ENV_VAR:
            return f"{count} ({ENV_VAR}={os.environ.get(ENV_VAR, '').strip()}; {cpus})"
        why = [cpus]
        if self.busy is not None:
            why.append(f"{self.busy} busy with other work" if self.busy else "none busy")
        if self.limit:
            why.append(self.limit)
        return f"{count} ({', '.join(why)})"


_last: ThreadChoice | None = None
_start: tuple[float, float, float | None] | None = None  # _now() at prepare_environment
_watch: tuple[float, float, float | None] | None = None  # _now() at the policy's last look
_interop_done = False


def prepare_environment(settings: Mapping[str, str] | None = None) -> None:
    """Set the OpenMP variables of ``settings`` (:data:`OPENMP_ENVIRONMENT`), each unless already set.

    Call it before torch is imported (the CLI's start): OpenMP reads them when it loads. It also starts
    the sample of busy CPUs that a :func:`configure_threads` call within :data:`START_REUSE_SECONDS` ends.
    """
    global _start
    for name, value in (OPENMP_ENVIRONMENT if settings is None else settings).items():
        os.environ.setdefault(name, value)
    _start = _now()


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _cgroup_quota() -> int | None:
    """The CPUs a cgroup CPU quota allows (rounded up), or ``None`` without a quota."""
    try:  # cgroup v2
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(1, math.ceil(int(text[0]) / int(text[1])))
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask)."""
    cpus = _affinity()
    return len(cpus) if cpus else max(1, os.cpu_count() or 1)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, a cgroup CPU quota, at least 1."""
    n = _cpu_count()
    quota = _cgroup_quota()
    return max(1, min(n, quota) if quota else n)


def stat_busy_ticks(text: str, cpus: set[int] | None = None) -> float | None:
    """Busy clock ticks so far (user, nice, system, irq, softirq, steal) of ``cpus`` (all when ``None``)
    in the text of ``/proc/stat``; ``None`` when it has none of them."""
    busy, seen = 0.0, False
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        values = rest.split()
        try:
            busy += sum(float(values[i]) for i in _STAT_FIELDS_BUSY)
        except (ValueError, IndexError):
            return None
        seen = True
    return busy if seen else None


def _busy_ticks(cpus: set[int] | None) -> float | None:
    try:
        return stat_busy_ticks(Path("/proc/stat").read_text(encoding="ascii"), cpus)
    except (OSError, UnicodeDecodeError):
        return None


def others_busy(busy_ticks: float, own_seconds: float, wall: float, ticks_per_second: float) -> float:
    """CPUs kept busy by other processes over ``wall`` seconds, in which ``busy_ticks`` ticks of the
    usable CPUs were busy and this process used ``own_seconds`` of CPU time (all its threads)."""
    if wall <= 0:
        return 0.0
    return max(0.0, (busy_ticks / ticks_per_second - own_seconds) / wall)


def _now() -> tuple[float, float, float | None]:
    """(wall clock, this process's CPU time, busy ticks of the usable CPUs)."""
    return time.monotonic(), time.process_time(), _busy_ticks(_affinity())


def busy_cpus(seconds: float = SAMPLE_SECONDS) -> float | None:
    """CPUs (of those this process may use) that other processes keep busy, sampled over at least ``seconds``.

    The sample starts at :func:`prepare_environment`'s call when that was at most
    :data:`START_REUSE_SECONDS` earlier (a command's start, so that importing torch overlaps it), else now.
    ``None`` where ``/proc/stat`` cannot be read (not Linux).
    """
    global _start
    start, _start = _start, None
    if start is None or not 0 <= time.monotonic() - start[0] <= START_REUSE_SECONDS:
        start = _now()
    t0, own0, before = start
    if before is None:
        return None
    rest = seconds - (time.monotonic() - t0)
    if rest > 0:
        time.sleep(rest)
    t1, own1, after = _now()
    if after is None:
        return None
    return others_busy(after - before, own1 - own0, t1 - t0, _clock_ticks())


def _clock_ticks() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


def _env_threads() -> int | None:
    """``$SEQTAG_THREADS`` as a count (``None``: unset, empty, ``auto`` or ``0``)."""
    text = os.environ.get(ENV_VAR, "").strip()
    if text.lower() in ("", "auto", "0"):
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise ConfigError(f"{ENV_VAR} must be a number of threads (1 or more) or 'auto', got {text!r}")
    return n


def _omp_cap() -> int | None:
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return None
    return n if n >= 1 else None


def _policy(others: float | None) -> ThreadChoice:
    """The policy's choice when other processes keep ``others`` of this process's CPUs busy."""
    cpus = _cpu_count()
    limit, why = cpus, None
    quota, cap = _cgroup_quota(), _omp_cap()
    if quota and quota < limit:
        limit, why = quota, f"a CPU quota of {quota}"
    if cap and cap < limit:
        limit, why = cap, f"OMP_NUM_THREADS={cap}"
    if others is None:
        return ThreadChoice(limit, "policy", cpus, None, why)
    busy = min(cpus, int(others + (1 - BUSY_FRACTION)))
    free = max(1, cpus - busy)
    return ThreadChoice(min(limit, free), "policy", cpus, busy, why if limit < free else None)


def choose_threads(requested: int | None = None, *, sample_seconds: float = SAMPLE_SECONDS) -> ThreadChoice:
    """The thread count of the rule in this module's docstring, without setting it.

    Raises:
        ConfigError: A negative ``requested``, or ``$SEQTAG_THREADS`` not a count or ``auto``.
    """
    if requested is not None and requested < 0:
        raise ConfigError(f"the number of threads must be 1 or more (0: chosen by seqtag), got {requested}")
    if requested:
        return ThreadChoice(requested, "requested", _cpu_count())
    from_env = _env_threads()
    if from_env is not None:
        return ThreadChoice(from_env, ENV_VAR, _cpu_count())
    return _policy(busy_cpus(sample_seconds))


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads (and inter-op threads, the first time it is allowed) by the rule in this
    module's docstring; returns the number set.

    Args:
        requested: A thread count (``--threads``, ``training.threads``); ``None`` or 0: ``$SEQTAG_THREADS``,
            else the policy.

    Raises:
        ConfigError: A negative ``requested``, or ``$SEQTAG_THREADS`` not a count or ``auto``.
    """
    global _last, _interop_done, _watch
    choice = choose_threads(requested)
    import torch

    torch.set_num_threads(choice.threads)
    if not _interop_done:
        _interop_done = True
        try:  # allowed once per process, before any inter-op work; seqtag itself runs none
            torch.set_num_interop_threads(choice.threads)
        except RuntimeError:
            pass
    _last = choice
    _watch = _now() if choice.busy is not None else None
    return choice.threads


def follow_environment() -> int | None:
    """Set torch's threads to ``$SEQTAG_THREADS`` where it is set and this process has not chosen a count
    yet; :meth:`seqtag.Tagger.load` calls it, so that the variable holds for prediction from Python (and
    inside spaCy) as it does for commands and training.

    Without the variable, or after :func:`configure_threads` (a command's ``--threads``, a training's
    ``training.threads``), nothing changes: torch keeps its own count, which a Python program may set
    itself; ``auto`` or ``0`` applies the policy (it samples the CPUs for 0.15 s).

    Returns:
        The number set, or ``None`` when nothing was set.

    Raises:
        ConfigError: ``$SEQTAG_THREADS`` not a count or ``auto``.
    """
    if _last is not None or not os.environ.get(ENV_VAR, "").strip():
        return None
    return configure_threads()


def rebalance() -> str | None:
    """Look again, during a long computation, at the CPUs other processes keep busy, and follow the policy.

    The training loop calls it after each step; every :data:`REBALANCE_SECONDS` it counts the CPUs others
    kept busy since its last look (``/proc/stat``, no waiting) and sets torch's threads to what the policy
    says now: fewer when a program has started beside the run, more when it has ended. It changes
    nothing when the count was asked for (``requested``, ``$SEQTAG_THREADS``) or could not be sampled.

    Returns:
        :func:`describe`'s line when the count changed (for the log), else ``None``.
    """
    global _last, _watch
    if _last is None or _watch is None or time.monotonic() - _watch[0] < REBALANCE_SECONDS:
        return None
    t0, own0, before = _watch
    t1, own1, after = _watch = _now()
    if before is None or after is None:
        return None
    choice = _policy(others_busy(after - before, own1 - own0, t1 - t0, _clock_ticks()))
    if choice.threads == _last.threads:
        return None
    import torch

    torch.set_num_threads(choice.threads)
    _last = choice
    return choice.describe()


def describe() -> str:
    """What the last :func:`configure_threads` chose and why, in one line (``2 threads (2 CPUs, none
    busy)``); before any, torch's current count."""
    if _last is not None:
        return _last.describe()
    import torch

    n = torch.get_num_threads()
    return f"{n} thread{'s' if n != 1 else ''} (torch's setting)"
