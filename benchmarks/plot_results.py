"""The picture of the three-system tables: seqtag, spaCy and flair, drawn from ``three_systems.py``'s JSON.

Two panels, each system's models beside the others', the median over seeds with the min-max range as a
whisker (no measuring here):

- the test score: CoNLL-2003 entity F1 (seqeval, IOB2) and UD English EWT UPOS accuracy (points: the
  axis does not start at 0);
- inference tokens/s: the whole test set pre-tokenized, 1 thread each, every system measured in the same
  run on the same machine (``three_systems.py --speed-models``).

Training time stays out of the picture: the three systems' trainings shared the machine in different
ways (docs/benchmarks.md says how), so their clocks do not compare.

    .venv/bin/python benchmarks/plot_results.py          # writes docs/images/three_systems.png

Prints the figures it draws.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_NER = RESULTS / "three_systems_ner_2026-12-04b.json"
DEFAULT_POS = RESULTS / "three_systems_pos_1thread_2026-12-04c.json"
DEFAULT_OUTPUT = HERE.parent / "docs" / "images" / "three_systems.png"
SYSTEMS = (("seqtag", "seqtag default", "#1f77b4"), ("spacy", "spaCy 3.8", "#ff7f0e"),
           ("flair", "flair 0.15.1 (NER 25, POS 20 epochs at most)", "#2ca02c"))


def _read(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def figures(ner_path: Path, pos_path: Path) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``panel -> task -> system -> {"median", "min", "max"}`` from two ``three_systems.py`` results."""
    ner, pos = _read(ner_path), _read(pos_path)
    for path, result, task in ((ner_path, ner, "ner"), (pos_path, pos, "pos")):
        if result.get("task") != task:
            raise SystemExit(f"error: {path} holds the {result.get('task')!r} task, not {task!r}")
        threads = {s: result["systems"][s]["measured_threads"] for s, _, _ in SYSTEMS}
        if len(set(threads.values())) != 1:
            raise SystemExit(f"error: {path}: the systems' speed was measured with different thread counts: {threads}")
    systems = [s for s, _, _ in SYSTEMS]

    def summary(result: dict[str, Any], key: str) -> dict[str, dict[str, float]]:
        return {s: result["systems"][s]["summary"][key] for s in systems}

    return {
        "test": {"CoNLL-2003 NER\nentity F1": summary(ner, "test"), "UD EWT POS\nUPOS accuracy": summary(pos, "test")},
        "speed": {"NER": summary(ner, "tokens_per_s"), "POS": summary(pos, "tokens_per_s")},
    }


def draw(data: dict[str, dict[str, dict[str, dict[str, float]]]], output: Path) -> None:
    """Draw the three panels into ``output`` (PNG, without the writer's version, so that a redraw of the
    same results gives the same file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = (("test", "test score (higher is better)", "{:.2f}"),
              ("speed", "inference tokens/s, 1 thread (higher is better)", "{:,.0f}"))
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 3.8), layout="constrained")
    bar = 0.27
    for ax, (key, title, fmt) in zip(axes, panels):
        tasks = list(data[key])
        top = max(s["max"] for t in data[key].values() for s in t.values())
        for i, (system, label, colour) in enumerate(SYSTEMS):
            xs = [t + (i - (len(SYSTEMS) - 1) / 2) * bar for t in range(len(tasks))]
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
    fig.suptitle("seqtag, spaCy and flair trained from scratch on the same files, no pretrained vectors, "
                 "one machine (median of 3 seeds, min-max)", fontsize=10)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=150, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ner", type=Path, default=DEFAULT_NER, help="three_systems.py's NER result")
    parser.add_argument("--pos", type=Path, default=DEFAULT_POS, help="three_systems.py's POS result")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the PNG to write")
    args = parser.parse_args(argv)
    data = figures(args.ner, args.pos)
    for key, tasks in data.items():
        for task, systems in tasks.items():
            line = ", ".join(f"{s} {v['median']:,.2f} ({v['min']:,.2f}-{v['max']:,.2f})" for s, v in systems.items())
            print(f"{key:<6} {task.replace(chr(10), ' '):<30} {line}")
    draw(data, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
