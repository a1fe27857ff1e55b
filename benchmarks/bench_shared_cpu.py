"""Training speed on a shared CPU: the default NER model idle and beside one busy process, per thread setting.

Each run trains the default NER config on CoNLL-2003 (``seqtag train --task ner --dataset conll2003
--max-epochs 1 --set training.max_steps=400``; ``--steps 0``: the whole epoch, 878 steps) in its own
subprocess, which calls the CLI in-process and reads the trainer's ``tok/s`` from its epoch line
(after the first 100 steps the speed is within a few percent of the whole run's, so 400 steps stand
for an epoch). Every setting runs twice: on an idle machine, and beside one competing busy process
(``python -c "while True: pass"``, started a second before the training). Settings:

- ``old``: the old default, one thread per CPU (``os.cpu_count()``), OpenMP's own waiting;
- ``one``: one thread;
- ``policy``: the new default: :func:`seqtag.threads.prepare_environment` before torch loads, then
  :func:`seqtag.threads.configure_threads` (the CPUs not busy with other work), and
  :func:`seqtag.threads.rebalance` after each step;
- ``old+env``: one thread per CPU with ``prepare_environment`` (its effect alone);
- ``policy-noenv``: the policy without ``prepare_environment``;
- ``policy-static``: the policy without ``rebalance`` (the count chosen at the start kept).

Once ``seqtag.trainer`` calls ``configure_threads`` (and ``rebalance``) itself, the policy settings
leave the choice to it instead of passing ``training.threads``.

``--late SECONDS`` starts the competitor that long after the training process instead (a program
that starts beside a run; the training starts after ~10 s of loading).

``--duty 0.5`` makes the competitor busy half of the time (5 ms of every 10 ms), to see from what load
one thread fewer pays.

``--env NAME=VALUE`` adds variables to every run's environment (to try other OpenMP settings;
``--label`` names such a series in the JSON).

The machine may be shared with other work that this script does not start: before each run it waits
until the CPUs are quiet (other processes below ``--max-disturbance`` CPUs over 2 s), and the
training process measures the CPU time others took while its steps ran (``/proc/stat`` less its own
CPU time and the competitor's); a run disturbed above ``--max-disturbance`` is run again
(``--retries``), and the least disturbed one is kept. The disturbance of each kept run is in the
table and the JSON.

Each setting and condition runs ``--repeats`` times (3), the settings taking turns; reported per
setting: the median tokens/s idle and busy (and their spread in the JSON), the ratio busy/idle of
epoch times, and epoch times extrapolated to the whole training split (203,621 tokens). The
targets: with the default (``policy``) an epoch beside one busy process takes at most 2.5x its idle
time, and the default's idle speed stays within 5% of the old default's.

    SEQTAG_CORPORA=/work/shared/corpora python benchmarks/bench_shared_cpu.py
    python benchmarks/bench_shared_cpu.py --settings old policy --steps 0     # whole epochs
    python benchmarks/bench_shared_cpu.py --settings old --env OMP_WAIT_POLICY=PASSIVE --label passive

Writes ``benchmarks/results/shared_cpu.json`` (or ``--output``), one entry per label (``default``
unless ``--label``), merged into what the file holds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "shared_cpu.json"
SETTINGS = ("old", "one", "policy", "old+env", "policy-noenv", "policy-static")
TARGET_RATIO = 2.5
IDLE_TOLERANCE = 0.95
BUSY_LOOP = "while True: pass"
# busy for DUTY of every 10 ms, asleep for the rest
DUTY_LOOP = ("import time\nwhile True:\n    t = time.monotonic() + {busy}\n    while time.monotonic() < t: pass\n"
             "    time.sleep({idle})")


# -- the machine's load ---------------------------------------------------------------------------
def cpu_ticks() -> float:
    """Busy clock ticks of all CPUs so far (``/proc/stat``: user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    return sum(values[i] for i in (0, 1, 2, 5, 6, 7))


def pid_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a running process (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_now(seconds: float = 2.0) -> float:
    """CPUs busy over ``seconds`` (this script sleeps meanwhile)."""
    t0, b0 = time.monotonic(), cpu_ticks()
    time.sleep(seconds)
    return (cpu_ticks() - b0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)


def wait_quiet(limit: float, patience: float) -> float:
    """Wait (up to ``patience`` seconds) until other processes keep less than ``limit`` CPUs busy."""
    deadline = time.monotonic() + patience
    while True:
        load = load_now()
        if load < limit or time.monotonic() > deadline:
            return load
        print(f"  waiting for a quiet machine ({load:.2f} CPUs busy)", flush=True)
        time.sleep(3)


# -- one training run (in a subprocess) --------------------------------------------------------------
class Window:
    """The CPU time others took while the training steps ran, read at each step (``/proc/stat``, this
    process's CPU time, and the competitor's when ``pid_file`` names it)."""

    def __init__(self, pid_file: Path) -> None:
        self.pid_file = pid_file
        self.first: tuple[float, float, float, float] | None = None
        self.last: tuple[float, float, float, float] | None = None

    def read(self) -> None:
        competitor = 0.0
        with contextlib.suppress(OSError, ValueError):
            competitor = pid_cpu_seconds(int(self.pid_file.read_text()))
        now = (time.monotonic(), cpu_ticks() / os.sysconf("SC_CLK_TCK"), time.process_time(), competitor)
        self.first = self.first or now
        self.last = now

    def others(self) -> float:
        """CPUs that neither the training nor the competitor used, from the first step to the last."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return 0.0
        wall, busy, own, comp = (b - a for a, b in zip(self.first, self.last))
        return max(0.0, (busy - own - comp) / wall)

    def competitor(self) -> float:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return 0.0
        return (self.last[3] - self.first[3]) / (self.last[0] - self.first[0])


def child(setting: str, steps: int, out: str, pid_file: Path) -> dict[str, Any]:
    """Runs in the subprocess: set the threads as ``setting`` says, train, return the figures."""
    if setting in ("policy", "old+env", "policy-static"):
        from seqtag.threads import prepare_environment

        prepare_environment()
    environment = {k: os.environ[k] for k in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")
                   if k in os.environ}
    import torch

    import seqtag.trainer
    from seqtag.threads import choose_threads, configure_threads, describe, rebalance

    # once the trainer chooses its threads itself (seqtag.threads), the policy settings leave it to it
    source = Path(seqtag.trainer.__file__).read_text(encoding="utf-8")
    trainer_chooses = "configure_threads" in source
    trainer_rebalances = "rebalance" in source
    threads: int | None
    if setting.startswith("policy"):
        threads = None if trainer_chooses else configure_threads()
        why = describe()
    else:
        threads = 1 if setting == "one" else max(1, os.cpu_count() or 1)
        torch.set_num_threads(threads)
        why = f"{threads} (set); the policy would say {choose_threads().describe()}"
    from seqtag.cli import main
    from seqtag.model import TaggerModel

    steps_done: list[tuple[float, int]] = []
    changes: list[str] = []
    loss = TaggerModel.loss
    follow = setting in ("policy", "policy-noenv") and not trainer_rebalances
    window = Window(pid_file)

    def timed_loss(self: Any, batch: Any) -> Any:
        if self.training:
            window.read()
            steps_done.append((time.perf_counter(), int(batch.mask.sum())))
            if follow:
                line = rebalance()
                if line is not None:
                    changes.append(f"step {len(steps_done)}: {line}")
        return loss(self, batch)

    TaggerModel.loss = timed_loss  # type: ignore[method-assign]
    args = ["train", "--task", "ner", "--dataset", "conll2003", "--max-epochs", "1", "--output", out,
            "--overwrite", "--no-progress"]
    if threads is not None:
        args += ["--set", f"training.threads={threads}"]
    if steps:
        args += ["--set", f"training.max_steps={steps}"]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        main(args, standalone_mode=False)
    m = re.search(r"(\d+) tok/s", log.getvalue())
    if m is None:
        raise SystemExit(f"no tok/s in the training log:\n{log.getvalue()[-2000:]}")
    said = [line for line in log.getvalue().splitlines() if " thread" in line]
    if threads is None and said:
        why, changes = said[0], said[1:] + changes
    # speed after the first 100 steps (oneDNN builds its kernels for new batch shapes early on)
    later = steps_done[100:]
    steady = (sum(n for _, n in later[:-1]) / (later[-1][0] - later[0][0])) if len(later) > 10 else None
    return {"threads": threads or torch.get_num_threads(), "why": why, "tokens_per_second": int(m.group(1)),
            "tokens": sum(n for _, n in steps_done), "steps": len(steps_done),
            "steady_tokens_per_second": None if steady is None else round(steady),
            "torch_threads_at_end": torch.get_num_threads(), "rebalanced": changes,
            "disturbance_cpus": round(window.others(), 3), "competitor_cpus": round(window.competitor(), 3),
            "environment": environment}


def train_tokens() -> int:
    """Tokens of the CoNLL-2003 training split (what one epoch trains on)."""
    n = 0
    with (corpora() / "conll2003" / "eng.train").open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            n += bool(parts) and parts[0] != "-DOCSTART-"
    return n


def corpora() -> Path:
    root = os.environ.get("SEQTAG_CORPORA")
    if not root or not (Path(root) / "conll2003").is_dir():
        sys.exit("error: set SEQTAG_CORPORA to the folder of the corpora (e.g. /work/shared/corpora)")
    return Path(root)


def run_once(setting: str, busy: bool, steps: int, env: dict[str, str], late: float = 0.0,
             duty: float = 1.0) -> dict[str, Any]:
    """One training subprocess, with a busy competitor when ``busy`` (started ``late`` seconds after the
    training, or a second before it; busy ``duty`` of the time); its figures."""
    work = Path(tempfile.mkdtemp(prefix="bench-shared-cpu-"))
    pid_file = work / "competitor.pid"
    competitor: subprocess.Popen[bytes] | None = None

    def compete() -> subprocess.Popen[bytes]:
        loop = BUSY_LOOP if duty >= 1 else DUTY_LOOP.format(busy=0.01 * duty, idle=0.01 * (1 - duty))
        proc = subprocess.Popen([sys.executable, "-c", loop])
        pid_file.write_text(str(proc.pid))
        return proc

    try:
        if busy and not late:
            competitor = compete()
            time.sleep(1.0)
        t0 = time.monotonic()
        trainer = subprocess.Popen([sys.executable, __file__, "--child", setting, "--steps", str(steps),
                                    "--train-to", str(work / "ner"), "--pid-file", str(pid_file)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        if busy and late:
            try:
                trainer.wait(late)
            except subprocess.TimeoutExpired:
                competitor = compete()
        stdout, stderr = trainer.communicate()
        wall = time.monotonic() - t0
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
        shutil.rmtree(work, ignore_errors=True)
    if trainer.returncode != 0:
        sys.exit(f"the {setting} run failed:\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["wall_seconds"] = round(wall, 1)
    if not busy:
        result.pop("competitor_cpus", None)
    return result


def measure(setting: str, busy: bool, steps: int, env: dict[str, str], limit: float, retries: int,
            patience: float, late: float, duty: float) -> dict[str, Any]:
    """The least disturbed of up to ``retries + 1`` runs (the first within ``limit`` ends the search)."""
    best: dict[str, Any] | None = None
    for attempt in range(retries + 1):
        before = wait_quiet(limit, patience)
        r = run_once(setting, busy, steps, env, late, duty)
        r["load_before"] = round(before, 3)
        r["attempts"] = attempt + 1
        print(f"  {setting:13s} {'busy' if busy else 'idle'}: {r['threads']} thread(s), "
              f"{r['tokens_per_second']:6d} tok/s (after warm-up {r['steady_tokens_per_second']}), "
              f"disturbance {r['disturbance_cpus']:.2f} CPUs  [{r['why']}]"
              + "".join(f"\n      {line}" for line in r["rebalanced"]), flush=True)
        if best is None or r["disturbance_cpus"] < best["disturbance_cpus"]:
            best = r
        if r["disturbance_cpus"] <= limit:
            break
    assert best is not None
    return best


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]], epoch_tokens: int) -> dict[str, Any]:
    """Per setting and condition: the median tokens/s of the runs, their spread and epoch times; the ratio
    busy/idle of the medians; the targets."""
    table: dict[str, Any] = {}
    for setting, pair in runs.items():
        row: dict[str, Any] = {}
        for cond, done in pair.items():
            speeds = sorted(r["tokens_per_second"] for r in done)
            if not speeds:
                continue
            median = statistics.median(speeds)
            row[cond] = {"tokens_per_second": round(median), "min": speeds[0], "max": speeds[-1],
                         "threads": sorted({r["threads"] for r in done}),
                         "epoch_seconds": round(epoch_tokens / median, 1),
                         "disturbance_cpus_max": max(r["disturbance_cpus"] for r in done), "runs": done}
        if "idle" in row and "busy" in row:
            row["ratio_busy_idle"] = round(row["idle"]["tokens_per_second"] / row["busy"]["tokens_per_second"], 2)
        table[setting] = row
    return table


def targets(table: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    policy, old = table.get("policy", {}), table.get("old", {})
    if "ratio_busy_idle" in policy:
        summary["policy_ratio_busy_idle"] = policy["ratio_busy_idle"]
        summary["policy_ratio_ok"] = policy["ratio_busy_idle"] <= TARGET_RATIO
    if "idle" in policy and "idle" in old:
        idle = policy["idle"]["tokens_per_second"] / old["idle"]["tokens_per_second"]
        summary["policy_idle_vs_old"] = round(idle, 3)
        summary["policy_idle_ok"] = idle >= IDLE_TOLERANCE
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=["old", "one", "policy"])
    ap.add_argument("--steps", type=int, default=400, help="Training steps per run (0: one whole epoch, 878 steps).")
    ap.add_argument("--repeats", type=int, default=3, help="Runs of each setting and condition (the median counts).")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="Extra environment of the runs.")
    ap.add_argument("--late", type=float, default=0.0,
                    help="Start the competitor this many seconds after the training (0: a second before).")
    ap.add_argument("--duty", type=float, default=1.0,
                    help="The competitor is busy this share of the time (1: always; 0.5: 5 ms of every 10 ms).")
    ap.add_argument("--label", default="default", help="The name of this series in the JSON.")
    ap.add_argument("--max-disturbance", type=float, default=0.15,
                    help="CPUs that other processes may keep busy before and during a run.")
    ap.add_argument("--retries", type=int, default=2, help="Runs again when disturbed.")
    ap.add_argument("--patience", type=float, default=600, help="Longest wait for a quiet machine (seconds).")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--child", choices=SETTINGS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--train-to", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pid-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps, args.train_to, args.pid_file)))
        return
    corpora()
    env = dict(os.environ)
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    for name in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "SEQTAG_THREADS"):
        if name not in {e.partition("=")[0] for e in args.env}:
            env.pop(name, None)  # each setting decides these itself
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    epoch_tokens = train_tokens()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {"idle": [], "busy": []} for s in args.settings}
    table: dict[str, Any] = {}
    for repeat in range(args.repeats):  # the settings take turns, so that a slow hour does not favour one
        print(f"round {repeat + 1} of {args.repeats}", flush=True)
        for setting in args.settings:
            for busy in (False, True):
                runs[setting]["busy" if busy else "idle"].append(
                    measure(setting, busy, args.steps, env, args.max_disturbance, args.retries, args.patience,
                            args.late, args.duty))
        table = summarise(runs, epoch_tokens)
        write(args, epoch_tokens, table)
    print(f"\n{'setting':13s} {'threads':>9s} {'idle tok/s':>10s} {'busy tok/s':>10s} {'busy/idle':>9s} "
          f"{'epoch idle':>10s} {'epoch busy':>10s} {'disturbed':>10s}   (medians of {args.repeats})")
    for setting, row in table.items():
        i, b = row["idle"], row["busy"]
        threads = "/".join(map(str, i["threads"])), "/".join(map(str, b["threads"]))
        print(f"{setting:13s} {threads[0]:>4s} {threads[1]:>4s} {i['tokens_per_second']:>10d} "
              f"{b['tokens_per_second']:>10d} {row['ratio_busy_idle']:>8.2f}x "
              f"{i['epoch_seconds']:>9.0f}s {b['epoch_seconds']:>9.0f}s "
              f"{i['disturbance_cpus_max']:>4.2f} {b['disturbance_cpus_max']:>4.2f}")
    summary = targets(table)
    if "policy_ratio_busy_idle" in summary:
        ratio = summary["policy_ratio_busy_idle"]
        print(f"default (policy): busy epoch {ratio:.2f}x the idle one (target <= {TARGET_RATIO}): "
              f"{'ok' if summary['policy_ratio_ok'] else 'ABOVE TARGET'}")
    if "policy_idle_vs_old" in summary:
        print(f"default (policy) idle speed: {summary['policy_idle_vs_old']:.3f} of the old default's "
              f"(target >= {IDLE_TOLERANCE}): {'ok' if summary['policy_idle_ok'] else 'SLOWER'}")
    print(f"written to {args.output}")


def write(args: argparse.Namespace, epoch_tokens: int, table: dict[str, Any]) -> None:
    """This series into the JSON file (other labels kept)."""
    results: dict[str, Any] = {}
    if args.output.is_file():
        results = json.loads(args.output.read_text(encoding="utf-8"))
    results[args.label] = {"steps": args.steps or "epoch", "repeats": args.repeats, "epoch_tokens": epoch_tokens,
                           "extra_env": args.env, "competitor_late_seconds": args.late,
                           "competitor_duty": args.duty, "max_disturbance": args.max_disturbance,
                           "summary": targets(table), "settings": table, "cpus": os.cpu_count(),
                           "python": platform.python_version(), "machine": platform.machine(),
                           "date": time.strftime("%Y-%m-%d")}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
