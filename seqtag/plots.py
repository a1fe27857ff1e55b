"""Pictures of a training run and of an evaluation, drawn by matplotlib's Agg renderer into PNG bytes.

matplotlib is imported by the functions that draw, never by ``import seqtag``. Figures are
:class:`matplotlib.figure.Figure` objects rendered on an Agg canvas, not pyplot figures: no window
opens, nothing global changes, and the backend a user chose for their own pyplot stays theirs.

Each ``*_figure`` function returns its figure, whose artists can be counted (``ax.containers`` holds
the bars, ``ax.images`` a heat map's cells); :func:`png_bytes` renders one at :data:`DPI`, so the
PNG is exactly the figure's size in inches times :data:`DPI` pixels. Every text that comes from data
(a tag, an entity type, a corpus name) is drawn as written, never read as mathtext.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .atomic import atomic_write_bytes

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DPI", "CURVES_SIZE", "ERROR_KINDS", "png_bytes", "write_readable", "dev_metric", "curves_figure",
           "per_type_figure", "confusion_figure", "count_bars_figure", "ner_errors_figure", "pos_confusions_figure"]

DPI = 100
CURVES_SIZE = (9.0, 3.4)  # inches: the training curves are 900 x 340 pixels
ANNOTATE_UP_TO = 24  # a heat map of at most this many labels writes its counts in the cells
# the kinds of ner_error_breakdown, in the order they are drawn, with what each means
ERROR_KINDS = (
    ("spurious", "spurious (no gold entity overlaps)"),
    ("missed", "missed (no prediction overlaps)"),
    ("type", "wrong type, same span"),
    ("boundary", "wrong boundaries, same type"),
    ("both", "wrong type and boundaries"),
)


def png_bytes(fig: Figure) -> bytes:
    """The PNG of ``fig``, rendered by Agg at :data:`DPI` (no timestamp or version in it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def write_readable(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with the mode of any new file of the user's (a picture or a
    report is for people to read, not private as an atomic write's temporary file is)."""
    atomic_write_bytes(path, data)
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:  # a file system without modes: the file is written all the same
        pass


def dev_metric(task: str | None) -> str:
    """What a run's dev score is, for a picture's labels: F1 (NER), accuracy (POS) or a score."""
    return {"ner": "dev F1 (%)", "pos": "dev accuracy (%)"}.get(task or "", "dev score")


def _figure(width: float, height: float, constrained: bool = True) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)


def _integer_epochs(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)


def curves_figure(runs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *, metric: str = "dev score",
                  title: str | None = None) -> Figure:
    """Training loss (left) and dev score (right) per epoch, a line for each run.

    Args:
        runs: ``(label, history)`` of each run; a history is :func:`seqtag.history.read_history`'s
            epochs (``epoch``, ``loss``, ``dev``, ``lr``...). Several runs get a legend of their labels.
        metric: The dev score's name (:func:`dev_metric`).
        title: Above both panels.

    Each run's best epoch is starred. With one run, its best score and epoch head the right panel, and
    a learning rate that changed during the run is drawn dashed on the left panel's right axis.
    """
    fig = _figure(*CURVES_SIZE, constrained=False)  # fixed margins: drawn after every epoch, kept quick
    loss_ax, dev_ax = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.07, right=0.92, bottom=0.15, top=0.80 if title else 0.88, wspace=0.32)
    for ax in (loss_ax, dev_ax):
        _integer_epochs(ax)
    loss_ax.set_title("training loss", fontsize=10)
    dev_ax.set_title(metric, fontsize=10)
    drawn = [(label, list(h)) for label, h in runs if len(h)]
    for i, (label, history) in enumerate(drawn):
        colour = f"C{i % 10}"
        epochs = [e["epoch"] for e in history]
        dev = [e["dev"] for e in history]
        best = max(range(len(dev)), key=lambda k: dev[k])  # the first epoch of the best score
        loss_ax.plot(epochs, [e["loss"] for e in history], marker="o", ms=3, color=colour)
        dev_ax.plot(epochs, dev, marker="o", ms=3, color=colour, label=label or None)
        dev_ax.plot([epochs[best]], [dev[best]], marker="*", ms=12, color=colour, linestyle="none")
        if len(drawn) == 1:
            dev_ax.set_title(f"{metric}: best {dev[best]:.2f} at epoch {epochs[best]}", fontsize=10)
            lrs = [float(e["lr"]) for e in history if isinstance(e.get("lr"), (int, float))]
            if len(lrs) == len(history) and len(set(lrs)) > 1:
                lr_ax = loss_ax.twinx()
                lr_ax.step(epochs, lrs, where="post", color="0.5", linestyle="--", linewidth=1)
                lr_ax.set_ylabel("learning rate (dashed)", fontsize=8, color="0.4")
                lr_ax.tick_params(labelsize=7, colors="0.4")
                if max(lrs) > 20 * min(lrs) > 0:
                    lr_ax.set_yscale("log")
    if len(drawn) > 1 and any(label for label, _ in drawn):
        dev_ax.legend(fontsize=8, loc="lower right")
    if not drawn:
        dev_ax.text(0.5, 0.5, "no finished epoch", ha="center", va="center", transform=dev_ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=11, parse_math=False)
    return fig


def per_type_figure(per_type: Mapping[str, Mapping[str, Any]], *, title: str | None = None) -> Figure:
    """Precision, recall and F1 of each entity type (``ner_scores``' ``per_type``): three bar series
    (``ax.containers``), one bar per type in each, the types labelled with their gold support."""
    types = sorted(per_type)
    fig = _figure(7.5, max(2.4, 1.1 + 0.6 * len(types)))
    ax = fig.subplots()
    width = 0.27
    for k, (key, name) in enumerate((("precision", "precision"), ("recall", "recall"), ("f1", "F1"))):
        values = [float(per_type[t][key]) for t in types]
        bars = ax.barh([y + (k - 1) * width for y in range(len(types))], values, height=width * 0.95,
                       color=f"C{k}", label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_yticks(range(len(types)), [f"{t} ({per_type[t].get('support', 0)})" for t in types], parse_math=False)
    ax.invert_yaxis()  # the first type on top
    ax.set_xlim(0, 110)
    ax.set_xlabel("percent")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=8)
    if not types:
        ax.text(0.5, 0.5, "no entity in gold or prediction", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=11, parse_math=False)
    return fig


def confusion_figure(matrix: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """A heat map of ``confusion_matrix`` (:func:`seqtag.evaluate.tag_confusion` or
    :func:`seqtag.evaluate.ner_confusion`): gold rows, predicted columns, one cell per pair of labels.

    A cell's colour is its share of the gold row (over both panels for NER, on a square-root scale, so
    that a one-percent confusion shows), and a map of at most :data:`ANNOTATE_UP_TO` labels writes each
    count that is not zero. An NER matrix is two panels: spans of the same boundaries (with ``O``, no
    entity: the missed column and the spurious row) and overlapping spans of other boundaries; cells
    that cannot hold a count are grey.
    """
    import numpy as np
    from matplotlib.colors import PowerNorm

    from .evaluate import NO_ENTITY

    labels = [str(x) for x in matrix["labels"]]
    n = len(labels)
    counts = np.array(matrix["counts"], dtype=float).reshape(n, n)
    boundary = matrix.get("boundary")
    panels: list[tuple[str, Any, Any]] = []
    if boundary is None:
        panels.append(("", counts, np.zeros((n, n), dtype=bool)))
        rows = counts.sum(axis=1)
    else:
        other = np.array(boundary, dtype=float).reshape(n, n)
        none = labels.index(NO_ENTITY) if NO_ENTITY in labels else n - 1
        mask_same = np.zeros((n, n), dtype=bool)
        mask_same[none, none] = True  # no entity in gold or prediction: not counted
        mask_other = np.zeros((n, n), dtype=bool)
        mask_other[none, :] = mask_other[:, none] = True  # other boundaries need a span on both sides
        panels += [("same boundaries", counts, mask_same), ("overlapping, other boundaries", other, mask_other)]
        rows = counts.sum(axis=1) + other.sum(axis=1)
    side = min(max(3.2, 1.2 + 0.3 * n), 15.0)
    fig = _figure(side * len(panels) + 1.2, side + (1.2 if title else 0.8))  # room for the titles and labels
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    cmap = _colormap()
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    small = max(5.0, min(9.0, 170.0 / max(n, 1)))
    image = None
    for ax, (name, values, mask) in zip(axes, panels):
        share = np.divide(values, rows[:, None], out=np.zeros_like(values), where=rows[:, None] > 0)
        image = ax.imshow(np.ma.masked_array(share, mask), cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_xticks(range(n), labels, rotation=90, fontsize=small, parse_math=False)
        ax.set_yticks(range(n), labels, fontsize=small, parse_math=False)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        if name:
            ax.set_title(name, fontsize=10)
        if n <= ANNOTATE_UP_TO:
            for i in range(n):
                for j in range(n):
                    if values[i, j] and not mask[i, j]:
                        ax.text(j, i, f"{int(values[i, j])}", ha="center", va="center", fontsize=small * 0.85,
                                color="white" if share[i, j] > 0.45 else "black")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of the gold row")
    if title:
        fig.suptitle(title, fontsize=11, parse_math=False)
    return fig


def _colormap() -> Any:
    from matplotlib import colormaps

    return colormaps["Blues"].with_extremes(bad="0.88")


def count_bars_figure(items: Sequence[tuple[str, int]], *, xlabel: str = "count", title: str | None = None) -> Figure:
    """One horizontal bar per ``(label, count)``, in the order given, top down, each with its count."""
    fig = _figure(7.0, max(2.0, 0.9 + 0.32 * len(items)))
    ax = fig.subplots()
    bars = ax.barh(range(len(items)), [c for _, c in items], color="C3", height=0.7)
    ax.bar_label(bars, fontsize=7, padding=2)
    ax.set_yticks(range(len(items)), [label for label, _ in items], fontsize=8, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, max([c for _, c in items] + [1]) * 1.15)
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10, parse_math=False)
    return fig


def ner_errors_figure(errors: Mapping[str, int]) -> Figure:
    """The error breakdown of NER (``breakdown["errors"]``): a bar for each of :data:`ERROR_KINDS`."""
    return count_bars_figure([(text, int(errors.get(kind, 0))) for kind, text in ERROR_KINDS],
                             xlabel="entities", title="errors by kind")


def pos_confusions_figure(confusions: Sequence[Mapping[str, Any]]) -> Figure:
    """The most frequent confusions of POS (``pos_scores``' ``confusions``): a bar for each ``gold → predicted``."""
    return count_bars_figure([(f"{c['gold']} \u2192 {c['predicted']}", int(c["count"])) for c in confusions],
                             xlabel="tokens", title="most frequent confusions (gold \u2192 predicted)")
