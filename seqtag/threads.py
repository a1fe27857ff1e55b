"""Threads: how many CPU threads torch computes with, chosen so that a shared machine slows seqtag down gently.

torch's CPU kernels run on an OpenMP pool of one thread per core. Each kernel splits its work among
all of them and waits for the last; when another program keeps a core busy, the thread that lands on
it runs only in turns, and every kernel waits for it. On two cores beside one busy process, training
the default NER model with two threads ran 3.8 times slower than on an idle machine, while one thread
kept 80% of the idle speed (``benchmarks/bench_shared_cpu.py`` measures this; its figures are in
``benchmarks/results/shared_cpu.json``).

The rule, in :func:`configure_threads`:

1. ``requested`` (``--threads N``, ``training.threads = N``) is used as given;
2. else ``$SEQTAG_THREADS`` (a number, or ``auto``/``0`` for the policy below);
3. else the policy: the CPUs this process may use (its affinity mask, and a cgroup CPU quota where one
   is set; ``$OMP_NUM_THREADS``, when set, caps it) minus the CPUs other processes keep busy right
   now, and at least 1. "Busy" is sampled from ``/proc/stat`` over 0.15 s (the time every process
   spends on the usable CPUs, less this process's own); a CPU counts as busy from 0.4 of it in use,
   because a thread too many costs far more than a thread too few. Where ``/proc/stat`` cannot be read
   (not Linux), nothing counts as busy.

The choice is made once per command, when it starts computing: a program that starts later, beside a
long training run, is not seen. :func:`prepare_environment` limits the harm of that case, and of any
thread count too high: it tells OpenMP to let a waiting thread sleep soon instead of spinning on its
core for a long while (``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``), since spinning threads take the cores
that a descheduled thread needs to finish the work they wait for. Environment variables reach OpenMP
only before torch is imported; a user's own settings win.

:func:`describe` says in one line what was chosen and why, for the training log.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["ENV_VAR", "OPENMP_ENVIRONMENT", "ThreadChoice", "prepare_environment", "usable_cpus", "busy_cpus",
           "stat_busy_ticks", "others_busy", "choose_threads", "configure_threads", "describe"]

ENV_VAR = "SEQTAG_THREADS"
# OpenMP settings that prepare_environment sets unless the user has: a waiting thread spins for ~10k
# rounds (tens of microseconds) instead of libgomp's 300k, then sleeps; Intel's OpenMP likewise sleeps at once
OPENMP_ENVIRONMENT = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "0"}
SAMPLE_SECONDS = 0.15
BUSY_FRACTION = 0.4  # a CPU counts as busy with other work from this much of it in use

_STAT_FIELDS_BUSY = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (guest is inside user)


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and where it came from.

    Attributes:
        threads: The number of threads.
        source: ``"requested"``, ``"SEQTAG_THREADS"`` or ``"policy"``.
        cpus: The CPUs this process may use.
        busy: CPUs other processes kept busy, rounded as the policy counts them (``None``: not sampled).
    """

    threads: int
    source: str
    cpus: int
    busy: int | None = None

    def describe(self) -> str:
        """One line for a log: ``2 threads (2 CPUs, none busy)``."""
        count = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        cpus = f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}"
        if self.source == "requested":
            return f"{count} (as asked; {cpus})"
        if self.source == ENV_VAR:
            return f"{count} ({ENV_VAR}={os.environ.get(ENV_VAR, '').strip()}; {cpus})"
        if self.busy is None:
            return f"{count} ({cpus})"
        if self.busy == 0:
            return f"{count} ({cpus}, none busy)"
        return f"{count} ({cpus}, {self.busy} busy with other work)"


_last: ThreadChoice | None = None
_interop_done = False


def prepare_environment() -> None:
    """Set the OpenMP variables of :data:`OPENMP_ENVIRONMENT`, each unless already set.

    Call it before torch is imported (the CLI's start): OpenMP reads them when it loads.
    """
    for name, value in OPENMP_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


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


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, a cgroup CPU quota, at least 1."""
    cpus = _affinity()
    n = len(cpus) if cpus else (os.cpu_count() or 1)
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


def busy_cpus(seconds: float = SAMPLE_SECONDS) -> float | None:
    """CPUs (of those this process may use) that other processes keep busy, sampled over ``seconds``.

    ``None`` where ``/proc/stat`` cannot be read (not Linux).
    """
    cpus = _affinity()
    try:
        ticks = float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        ticks = 100.0
    before = _busy_ticks(cpus)
    own0, t0 = time.process_time(), time.monotonic()
    if before is None:
        return None
    time.sleep(seconds)
    after = _busy_ticks(cpus)
    own1, t1 = time.process_time(), time.monotonic()
    if after is None:
        return None
    return others_busy(after - before, own1 - own0, t1 - t0, ticks)


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


def choose_threads(requested: int | None = None, *, sample_seconds: float = SAMPLE_SECONDS) -> ThreadChoice:
    """The thread count of the rule in this module's docstring, without setting it.

    Raises:
        ConfigError: A negative ``requested``, or ``$SEQTAG_THREADS`` not a count or ``auto``.
    """
    cpus = usable_cpus()
    if requested is not None and requested < 0:
        raise ConfigError(f"the number of threads must be 1 or more (0: chosen by seqtag), got {requested}")
    if requested:
        return ThreadChoice(requested, "requested", cpus)
    from_env = _env_threads()
    if from_env is not None:
        return ThreadChoice(from_env, ENV_VAR, cpus)
    cap = _omp_cap()
    limit = min(cpus, cap) if cap else cpus
    others = busy_cpus(sample_seconds)
    if others is None:
        return ThreadChoice(limit, "policy", cpus)
    busy = min(cpus, int(others + (1 - BUSY_FRACTION)))
    return ThreadChoice(max(1, min(limit, cpus - busy)), "policy", cpus, busy)


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads (and inter-op threads, the first time it is allowed) by the rule in this
    module's docstring; returns the number set.

    Args:
        requested: A thread count (``--threads``, ``training.threads``); ``None`` or 0: ``$SEQTAG_THREADS``,
            else the policy.

    Raises:
        ConfigError: A negative ``requested``, or ``$SEQTAG_THREADS`` not a count or ``auto``.
    """
    global _last, _interop_done
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
    return choice.threads


def describe() -> str:
    """What the last :func:`configure_threads` chose and why, in one line (``2 threads (2 CPUs, none
    busy)``); before any, torch's current count."""
    if _last is not None:
        return _last.describe()
    import torch

    n = torch.get_num_threads()
    return f"{n} thread{'s' if n != 1 else ''} (torch's setting)"
