"""The picture of the results against spaCy, drawn from the benchmark's JSON results (no measuring here).

Three panels, seqtag's default models beside spaCy 3.8's, each the median over seeds with the min-max
range as a whisker:

- the test score: CoNLL-2003 entity F1 (seqeval, IOB2) and UD English EWT UPOS accuracy (points: the
  axis does not start at 0);
- inference tokens/s (2 threads, the whole test set pre-tokenized, batch 256): NER from
  ``ner.json``; POS from the first pass of ``pos-remeasure.json`` when it is there (the same models
  measured again alone on a quiet machine, as docs/benchmarks.md reports), else ``pos.json``;
- the wall time from the start of training to the best dev score, NER only (the POS run's training
  shared the machine with other work; docs/benchmarks.md).

    .venv/bin/python benchmarks/plot_results.py          # writes docs/images/vs_spacy.png

Prints the figures it draws.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "results"
DEFAULT_OUTPUT = HERE.parent / "docs" / "images" / "vs_spacy.png"
SYSTEMS = (("seqtag", "seqtag default", "#1f77b4"), ("spacy", "spaCy 3.8, same files", "#ff7f0e"))


def _read(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def figures(results: Path) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``panel -> task -> system -> {"median", "min", "max"}`` from the JSON files in ``results``."""
    ner, pos = _read(results / "ner.json"), _read(results / "pos.json")
    remeasure = results / "pos-remeasure.json"
    pos_speed = _read(remeasure)["passes"][0] if remeasure.exists() else pos
    systems = [s for s, _, _ in SYSTEMS]
    return {
        "test": {"CoNLL-2003 NER\nentity F1": {s: ner[s]["test"] for s in systems},
                 "UD EWT POS\nUPOS accuracy": {s: pos[s]["test"] for s in systems}},
        "speed": {"NER": {s: ner[s]["tokens_per_s"] for s in systems},
                  "POS": {s: pos_speed[s]["tokens_per_s"] for s in systems}},
        "time": {"NER": {s: ner[s]["seconds_to_best"] for s in systems}},
    }


def draw(data: dict[str, dict[str, dict[str, dict[str, float]]]], output: Path) -> None:
    """Draw the three panels into ``output`` (PNG, without the writer's version, so that a redraw of the
    same results gives the same file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = (("test", "test score (higher is better)", "{:.2f}"),
              ("speed", "inference tokens/s (higher is better)", "{:,.0f}"),
              ("time", "NER: seconds to the best\ndev score (lower is better)", "{:,.0f} s"))
    widths = [len(data[key]) + 0.4 for key, *_ in panels]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8), gridspec_kw={"width_ratios": widths}, layout="constrained")
    bar = 0.38
    for ax, (key, title, fmt) in zip(axes, panels):
        tasks = list(data[key])
        top = max(s["max"] for t in data[key].values() for s in t.values())
        for i, (system, label, colour) in enumerate(SYSTEMS):
            xs = [t + (i - 0.5) * bar for t in range(len(tasks))]
            stats = [data[key][task][system] for task in tasks]
            medians = [s["median"] for s in stats]
            errs = [[s["median"] - s["min"] for s in stats], [s["max"] - s["median"] for s in stats]]
            if key == "test":  # points: the scores sit far from 0
                ax.errorbar(xs, medians, yerr=errs, fmt="o", markersize=7, capsize=4, color=colour, label=label,
                            zorder=3)
            else:
                ax.bar(xs, medians, bar, yerr=errs, capsize=3, color=colour, label=label, zorder=2)
            for x, m, s in zip(xs, medians, stats):
                ax.annotate(fmt.format(m), (x, s["max"]), xytext=(0, 4), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(tasks)), tasks, fontsize=9)
        ax.set_xlim(-0.6, len(tasks) - 0.4)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.spines[["top", "right"]].set_visible(False)
        if key == "test":
            low = min(s["min"] for t in data[key].values() for s in t.values())
            ax.set_ylim(low - 2, top + 1.5)
        else:
            ax.set_ylim(0, top * 1.18)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes[0].legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.suptitle("seqtag and spaCy trained on the same files, 2 CPU cores, no pretrained vectors "
                 "(median of 3 seeds, min-max)", fontsize=10)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=150, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the folder of the JSON results")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the PNG to write")
    args = parser.parse_args(argv)
    data = figures(args.results)
    for key, tasks in data.items():
        for task, systems in tasks.items():
            line = ", ".join(f"{s} {v['median']:,.2f} ({v['min']:,.2f}-{v['max']:,.2f})" for s, v in systems.items())
            print(f"{key:<6} {task.replace(chr(10), ' '):<30} {line}")
    draw(data, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
