"""What the command line shows people: score tables, the plugin table and progress bars, drawn with rich.

On a terminal the tables have colour and fit its width, and a bar moves on standard error while a
command works; anywhere else (a pipe, a file, a test's runner) the same tables come out as plain aligned
text, without colour or control codes, at most :data:`PLAIN_WIDTH` columns wide, and no bar is drawn.
The ``--json`` outputs are not drawn here: they stay one JSON object.

NER scores are seqeval's classification report (each entity type, then the micro, macro and weighted
averages of :func:`seqtag.evaluate.ner_averages`); POS scores are the accuracy, a table of the
accuracy of each tag and the most frequent confusions.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, TextIO

if TYPE_CHECKING:  # rich is imported when something is drawn
    from rich.console import RenderableType
    from rich.progress import Progress, TaskID
    from rich.table import Table

__all__ = ["PLAIN_WIDTH", "BAR_CHARS", "is_terminal", "render", "score_tables", "format_scores", "plugin_table",
           "format_plugins", "Bar", "progress_bar"]

PLAIN_WIDTH = 100  # the widest a table is drawn off a terminal
BAR_CHARS = "━╸╺"  # what a drawn progress bar is made of (and a table never is)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal that can show colour and redraw a line (not ``TERM=dumb``)."""
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def render(*renderables: RenderableType, width: int | None = None, color: bool = False) -> str:
    """Draw ``renderables`` as text, one after the other.

    Args:
        width: The width to fit (default: the terminal's with ``color``, else :data:`PLAIN_WIDTH`).
        color: Draw for a terminal: colour (unless ``NO_COLOR`` is set) and styles. Without it the
            text has no control codes and no trailing spaces.
    """
    from rich.console import Console

    if width is None:
        width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if color else PLAIN_WIDTH
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color or None,
                      color_system="auto" if color else None, markup=False, emoji=False, highlight=False,
                      legacy_windows=False)
    from rich.table import Table

    for r in renderables:
        if isinstance(r, Table):
            r.box = _box(color)
        console.print(r)
    text = buf.getvalue().rstrip("\n")
    return text if color else "\n".join(line.rstrip() for line in text.split("\n"))


def _box(color: bool) -> Any:
    """The tables' frame: a rule under the header and nothing else; ASCII off a terminal."""
    from rich import box

    return box.SIMPLE_HEAD if color else box.Box("    \n    \n -- \n" + "    \n" * 5, ascii=True)


def _table(*columns: str, text: int = 1, title: str | None = None) -> Table:
    """A table in the commands' style: a rule under the header, no frame; the first ``text`` columns
    left-aligned, the others (numbers) right-aligned. :func:`render` sets its frame."""
    from rich.table import Table

    table = Table(box=_box(True), show_edge=False, pad_edge=False, title=title, title_justify="left",
                  header_style="bold", title_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < text else "right", no_wrap=True)
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def score_tables(scores: dict[str, Any]) -> list[RenderableType]:
    """What ``seqtag evaluate`` prints for the scores of :func:`seqtag.workflow.evaluate_tagger`, as
    renderables: a headline, the table of scores and the lines below it."""
    out: list[RenderableType] = [f"{scores['dataset']} [{scores['split']}], {scores['sentences']} sentences"]
    if scores["task"] == "ner":
        from .evaluate import ner_averages

        s = scores["strict"]
        out.append(f"entity F1 {scores['f1']:.2f}  precision {scores['precision']:.2f}  recall {scores['recall']:.2f}"
                   f"   (strict: F1 {s['f1']:.2f}  P {s['precision']:.2f}  R {s['recall']:.2f})")
        table = _table("type", "precision", "recall", "f1", "support")
        for t, v in sorted(scores["per_type"].items()):
            table.add_row(t, _pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"]), str(v["support"]))
        table.add_section()
        for name, v in ner_averages(scores).items():
            table.add_row(name, _pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"]), str(v["support"]))
        out.append(table)
        b = scores.get("breakdown", {})
        if b:
            out.append("errors: " + (", ".join(f"{k} {v}" for k, v in sorted(b["errors"].items())) or "none"))
            if b.get("recall_seen") is not None:
                out.append(f"recall on entities seen in training {b['recall_seen']:.2f} ({b['entities_seen']}), "
                           f"unseen {_pct(b['recall_unseen'])} ({b['entities_unseen']})")
        out += _calibration_line(scores)
        return out
    unseen = ""
    if scores.get("unseen_tokens") is not None:
        unseen = f"; on words unseen in training {_pct(scores.get('unseen_accuracy'))} ({scores['unseen_tokens']})"
    out.append(f"accuracy {scores['accuracy']:.2f} over {scores['tokens']} tokens{unseen}")
    table = _table("tag", "accuracy", "support")
    for t, v in sorted(scores["per_tag"].items()):
        table.add_row(t, _pct(v["accuracy"]), str(v["support"]))
    out.append(table)
    confusions = scores.get("confusions") or []
    if confusions:
        conf = _table("gold", "predicted", "count", text=2, title="most frequent confusions")
        for c in confusions[:8]:
            conf.add_row(c["gold"], c["predicted"], str(c["count"]))
        out.append(conf)
    return out + _calibration_line(scores)


def _calibration_line(scores: dict[str, Any]) -> list[RenderableType]:
    """The line on how calibrated the confidences are (:func:`seqtag.calibration.calibration_report`)."""
    c = scores.get("calibration")
    if not c or not c["count"]:
        return []
    right = "precision" if c["unit"] == "span" else "accuracy"
    return [f"confidence: ECE {c['ece']:.4f} over {c['count']} {c['unit']}s (10 bins); mean confidence "
            f"{c['mean_confidence']:.3f}, {right} {c['accuracy']:.3f}"]


def format_scores(scores: dict[str, Any], width: int | None = None, color: bool = False) -> str:
    """:func:`score_tables` drawn as text (see :func:`render`)."""
    return render(*_spaced(score_tables(scores)), width=width, color=color)


def _spaced(parts: Sequence[RenderableType]) -> Iterator[RenderableType]:
    """A blank line between a table and what comes before or after it."""
    from rich.table import Table

    for i, part in enumerate(parts):
        if i and (isinstance(part, Table) or isinstance(parts[i - 1], Table)):
            yield ""
        yield part


def plugin_table(rows: Iterable[dict[str, Any]], kinds: Sequence[str]) -> Table:
    """The registered parts of :func:`seqtag.cli.plugins`'s rows (``kind``, ``name``, ``distribution``,
    ``version``, ``description``), a section per kind in ``kinds`` order; long descriptions wrap."""
    from rich.table import Table

    table = Table(box=_box(True), show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("kind", no_wrap=True, style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("distribution", no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1, min_width=20)
    rows = list(rows)
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        for i, r in enumerate(mine):
            dist = f"{r['distribution']} {r['version'] or ''}".strip()
            table.add_row(kind if i == 0 else "", r["name"], dist, _plain(r["description"]),
                          end_section=i == len(mine) - 1)
    return table


_RST = re.compile(r":[a-z:]+:`(~?)([^`]*)`|``([^`]*)``")  # :class:`X`, :func:`~a.b` (b), ``code``


def _plain(text: Any) -> str:
    """A docstring's line as plain text: reST roles and literals without their marks, spaces collapsed."""
    def sub(m: re.Match[str]) -> str:
        return m.group(3) if m.group(3) is not None else m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)

    return " ".join(_RST.sub(sub, str(text or "")).split())


def format_plugins(rows: Iterable[dict[str, Any]], kinds: Sequence[str], width: int | None = None,
                   color: bool = False) -> str:
    """:func:`plugin_table` drawn as text (see :func:`render`)."""
    return render(plugin_table(rows, kinds), width=width, color=color)


class Bar:
    """A progress bar drawn on a terminal by rich, or nothing: the same calls either way.

    ``total`` is in the bar's unit (``None``: not known, the bar pulses); ``done`` counts what is shown
    beside it (sentences, tokens). :meth:`print` writes a line above the bar (or to the stream when
    there is no bar), so that warnings do not tear it.
    """

    def __init__(self, progress: Progress | None, task: TaskID | None, stream: TextIO) -> None:
        self._progress, self._task, self.stream = progress, task, stream
        self.done = 0

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn."""
        return self._progress is not None

    def start(self, total: float | None) -> None:
        """Set the total (and start again from nothing)."""
        self.done = 0
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, completed=0, done=0)

    def set_unit(self, unit: str) -> None:
        """Name what ``done`` counts, once it is known (``"lines"``, ``"sentences"``)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, unit=unit)

    def advance(self, done: int, completed: float | None = None) -> None:
        """Count ``done`` more; the bar moves by as much, or to ``completed`` when given."""
        self.done += done
        if self._progress is not None and self._task is not None:
            if completed is None:
                self._progress.update(self._task, advance=done, done=self.done)
            else:
                self._progress.update(self._task, completed=completed, done=self.done)

    def print(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            print(message, file=self.stream, flush=True)


@contextlib.contextmanager
def progress_bar(label: str, unit: str, total: float | None = None, *, enabled: bool | None = None,
                 stream: TextIO | None = None) -> Iterator[Bar]:
    """A :class:`Bar` on ``stream`` (default: standard error) while the block runs; it is cleared at the end.

    Args:
        label: What is being done (``"tagging"``, ``"scoring"``), left of the bar.
        unit: What ``done`` counts, right of the bar (``"sentences"``, ``"tokens"``).
        enabled: Draw it; ``None``: when ``stream`` is a terminal (:func:`is_terminal`).
    """
    stream = stream if stream is not None else sys.stderr
    if not (is_terminal(stream) if enabled is None else enabled):
        yield Bar(None, None, stream)
        return
    from rich import progress as rp
    from rich.console import Console

    console = Console(file=stream, force_terminal=True, force_interactive=True, markup=False, emoji=False,
                      highlight=False, legacy_windows=False)
    progress = rp.Progress(rp.SpinnerColumn(), rp.TextColumn("{task.description}"), rp.BarColumn(bar_width=30),
                           rp.TaskProgressColumn(), rp.TextColumn("{task.fields[done]:,} {task.fields[unit]}"),
                           rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), console=console, transient=True,
                           refresh_per_second=4, redirect_stdout=False,
                           redirect_stderr=stream is sys.stderr)  # a warning meanwhile goes above the bar
    with progress:
        task = progress.add_task(label if len(label) <= 32 else label[:31] + "…", total=total, done=0, unit=unit)
        yield Bar(progress, task, stream)
