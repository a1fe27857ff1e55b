"""seqtag, spaCy and flair side by side: one table per task from the benchmarks' own results.

spaCy's figures come from a ``bench_vs_spacy.py`` result (its three seeds, trained beside seqtag on the same
files), flair's from one or more ``bench_flair.py`` results (their runs are merged, so seeds trained in
separate runs count together). seqtag's come from that same ``bench_vs_spacy.py`` result, or, with
``--seqtag-models``, from trained model folders: their test score and inference speed are measured here, by
``bench_vs_spacy.py``'s own measuring child (whole test set, pre-tokenized, batch 256, median of 3 passes
after a first pass, peak RSS of the measuring process), and their dev score and time to the best dev score
are read from each model's ``meta.json``. Every figure is the median (min-max) over the seeds, with the
thread counts each system trained and measured with.

    SEQTAG_CORPORA=../shared/corpora .venv/bin/python benchmarks/three_systems.py --task ner \\
        --peers benchmarks/results/ner.json --flair benchmarks/results/flair_ner_*.json \\
        --seqtag-models models/ner-seed0 models/ner-seed1 models/ner-seed2 --threads 1

``--speed-models spacy=DIR flair=DIR`` measures the peers' speed and memory on this machine, in this same
run, from models of the same network (their own measuring code: ``bench_vs_spacy.py``'s child for spaCy,
``bench_flair.py``'s in flair's environment, ``--flair-python``). Use it when the accuracy runs' models were
not kept or were measured on another machine; a network's speed does not depend on how long it was trained,
so a briefly trained model serves. Those models' scores are not used: the accuracy rows stay the peers' runs.

    ... three_systems.py --task ner ... --speed-models spacy=/tmp/spacy-ner/model-best \\
        flair=/tmp/flair/flair-ner-seed0/best-model.pt --flair-python /work/.flair-venv/bin/python

It prints a markdown table and writes ``benchmarks/results/three_systems_<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_flair  # noqa: E402
from bench_vs_spacy import child, corpora, model_scores, summary  # noqa: E402

from seqtag.atomic import atomic_write_json  # noqa: E402

SPEED = ("tokens_per_s", "peak_rss_mb")  # what --remeasured replaces
ROWS = [("test", "test {}", "{:.2f}"), ("dev", "best dev {}", "{:.2f}"),
        ("seconds_to_best", "seconds from start to the best dev score", "{:,.0f}"),
        ("tokens_per_s", "inference tokens/s (tags)", "{:,.0f}"),
        ("paired_confidence_fraction", "tokens/s with confidences / tags only (paired)", "{:.2f}"),
        ("peak_rss_mb", "peak RSS of inference (MB)", "{:,.0f}")]


def seqtag_runs(task: str, models: list[str], threads: int) -> list[dict[str, Any]]:
    """Measure each model folder (test score, speed, memory) and read its dev score and time from meta.json."""
    runs = []
    for folder in models:
        scores = model_scores(Path(folder))
        m = child(["measure", "seqtag", task, folder, str(threads)])
        runs.append({"model": folder, **m, "dev": scores["dev"], "seconds_to_best": scores["train_seconds_to_best"]})
        print(f"seqtag {folder}: test {m['test']:.2f}  {m['tokens_per_s']:,.0f} tokens/s", flush=True)
    return runs


def peer_speed(name: str, task: str, model: str, threads: int, flair_python: str | None) -> dict[str, Any]:
    """A spaCy or flair model's speed and memory, measured by its own benchmark's measuring child."""
    if name == "spacy":
        return child(["measure", "spacy", task, model, str(threads)])
    with tempfile.TemporaryDirectory() as tmp:
        return bench_flair.child(["measure", task, model, str(threads), "256", f"{tmp}/measure.json"], threads,
                                 python=flair_python)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    peers = json.loads(Path(args.peers).read_text())
    flair_files = [json.loads(Path(f).read_text()) for f in args.flair]
    flair_runs = [r for f in flair_files for r in f["runs"]]
    systems: dict[str, dict[str, Any]] = {}
    if args.seqtag_models:
        runs = seqtag_runs(args.task, args.seqtag_models, args.threads)
        systems["seqtag"] = {"runs": runs, "measured_threads": args.threads,
                             "trained": "model folders given (see their meta.json)"}
    else:
        systems["seqtag"] = {"runs": peers["runs"]["seqtag"], "measured_threads": peers["threads"],
                             "trained": f"{peers['training_jobs']} at a time, {peers['training_threads']} thread(s)"}
    systems["spacy"] = {"runs": peers["runs"]["spacy"], "measured_threads": peers["threads"],
                        "trained": f"{peers['training_jobs']} at a time, {peers['training_threads']} thread(s)"}
    systems["flair"] = {"runs": flair_runs, "measured_threads": flair_files[0]["threads"] if flair_files else None,
                        "trained": "; ".join(f"seeds {[r['seed'] for r in f['runs']]}: {f['threads']} thread(s), "
                                             f"max {f['settings']['max_epochs']} epochs" for f in flair_files)}
    if args.remeasured:  # speed and memory from a later measuring pass of the same models, seed by seed
        remeasured = json.loads(Path(args.remeasured).read_text())
        for name in ("spacy",) if args.seqtag_models else ("seqtag", "spacy"):
            by_seed = {r["seed"]: r for r in remeasured["passes"][0]["runs"].get(name, [])}
            systems[name]["runs"] = [{**r, **{k: v for k, v in by_seed.get(r["seed"], {}).items() if k in SPEED}}
                                     for r in systems[name]["runs"]]
            systems[name]["measured_threads"] = remeasured["threads"]
            systems[name]["speed_from"] = args.remeasured
    if args.speed_models:  # the peers' speed and memory measured here, from models of the same network
        for name, model in (spec.split("=", 1) for spec in args.speed_models):
            m = peer_speed(name, args.task, model, args.threads, args.flair_python)
            systems[name]["runs"] = [{**r, **{k: m[k] for k in SPEED}} for r in systems[name]["runs"]]
            systems[name]["measured_threads"] = args.threads
            systems[name]["speed_from"] = {"model": model, "measured_here": True,
                                           **{k: m[k] for k in ("tokens_per_s", "first_pass_tokens_per_s",
                                                                "peak_rss_mb", "test")}}
            print(f"{name} {model}: {m['tokens_per_s']:,.0f} tokens/s  peak {m['peak_rss_mb']:.0f} MB "
                  f"(speed only; its score {m['test']:.2f} is not used)", flush=True)
    for sys_ in systems.values():
        sys_["seeds"] = len(sys_["runs"])
        sys_["summary"] = {key: summary([float(r[key]) for r in sys_["runs"] if r.get(key) is not None])
                           for key, _, _ in ROWS if any(r.get(key) is not None for r in sys_["runs"])}
    return {"task": args.task, "systems": systems,
            "sources": {"peers": args.peers, "flair": args.flair, "remeasured": args.remeasured,
                        "speed_models": args.speed_models, "seqtag_models": args.seqtag_models}}


def table(res: dict[str, Any]) -> str:
    metric = "entity F1" if res["task"] == "ner" else "UPOS accuracy"
    names = list(res["systems"])
    lines = ["| | " + " | ".join(f"{n} ({res['systems'][n]['seeds']} seeds)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for key, label, fmt in ROWS:
        cells = []
        for n in names:
            s = res["systems"][n]["summary"].get(key)
            cells.append("" if s is None else
                         f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})")
        lines.append(f"| {label.format(metric)} | " + " | ".join(cells) + " |")
    for label, key in (("trained", "trained"), ("inference threads", "measured_threads")):
        lines.append(f"| {label} | " + " | ".join(str(res["systems"][n][key]) for n in names) + " |")
    lines.append("| speed and memory measured | " + " | ".join(speed_source(res, n) for n in names) + " |")
    return "\n".join(lines)


def speed_source(res: dict[str, Any], name: str) -> str:
    """Where a system's speed and memory columns were measured, for the table's last row."""
    src = res["systems"][name].get("speed_from")
    if isinstance(src, dict):
        return "in this run (one model of the same network)"
    if src:
        return f"in a later pass ({Path(src).name})"
    if name == "seqtag" and res["sources"].get("seqtag_models"):
        return "in this run"
    return "in its training run"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["ner", "pos"], default="ner")
    ap.add_argument("--peers", required=True, help="a bench_vs_spacy.py result (spaCy's runs, and seqtag's)")
    ap.add_argument("--flair", nargs="*", default=[], help="bench_flair.py results; their runs are merged")
    ap.add_argument("--seqtag-models", nargs="*", default=[], help="measure these seqtag model folders instead")
    ap.add_argument("--threads", type=int, default=1, help="threads for measuring --seqtag-models")
    ap.add_argument("--remeasured", default=None,
                    help="a later measuring pass of the --peers models (e.g. results/pos-remeasure.json): "
                         "their speed and memory, seed by seed, replace the disturbed ones")
    ap.add_argument("--speed-models", nargs="*", default=[], metavar="SYSTEM=MODEL",
                    help="spacy=DIR and/or flair=MODEL_FILE: measure these peers' speed and memory here, in this "
                         "run, from models of the same network; they replace the peers' speed columns")
    ap.add_argument("--flair-python", default=None, help="the python of flair's virtual environment")
    ap.add_argument("--output", default=None)
    args = ap.parse_args()
    for spec in args.speed_models:
        if "=" not in spec or spec.split("=", 1)[0] not in ("spacy", "flair"):
            ap.error(f"--speed-models takes spacy=MODEL or flair=MODEL, not {spec!r}")
        if spec.startswith("flair=") and not args.flair_python:
            ap.error("--speed-models flair=... needs --flair-python (the python of flair's environment)")
    if args.seqtag_models or args.speed_models:
        corpora()
    res = collect(args)
    md = table(res)
    res["table"] = md
    print(md)
    path = Path(args.output) if args.output else HERE / "results" / f"three_systems_{args.task}.json"
    atomic_write_json(path, res)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
