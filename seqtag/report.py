"""An evaluation report: ``report.html`` and the pictures in it, from the scores of ``seqtag evaluate``.

:func:`write_report` takes what :func:`seqtag.workflow.evaluate_tagger` returns and writes, into a
folder:

- ``per_type.png`` (NER): precision, recall and F1 bars of each entity type;
- ``errors.png``: the error breakdown (NER: errors by kind; POS: the most frequent confusions);
- ``confusion.png``, when the scores carry a ``confusion_matrix`` (``evaluate(confusion=True)``): the
  heat map of gold against predicted tags (POS) or entity types with boundary errors, missed and
  spurious entities (NER);
- ``scores.json``: the scores the report shows;
- ``report.html``: the tables and the pictures in one self-contained page. The pictures are inlined
  as ``data:`` URLs and the style is in the page, so it opens anywhere, offline, as one file; its
  content security policy lets the page load nothing else.

Every file is written atomically; a picture an earlier report left in the folder and this one does not
draw is removed, so the folder holds one report.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping

from .about import __version__
from .errors import ConfigError

__all__ = ["REPORT", "PICTURES", "write_report", "report_pictures", "render_html"]

REPORT = "report.html"
PICTURES = ("per_type.png", "errors.png", "confusion.png")
SCORES = "scores.json"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 72em; padding: 0 1.5em; color: #1d1d1f; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.sub, p.note, footer { color: #555; }
footer { margin-top: 3em; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.8em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #e5e5e5; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #bbb; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
"""


def _task(scores: Mapping[str, Any]) -> str:
    task = scores.get("task")
    if task in ("ner", "pos"):
        return str(task)
    if "f1" in scores and "per_type" in scores:
        return "ner"
    if "accuracy" in scores:
        return "pos"
    raise ValueError("not the scores of seqtag evaluate: expected an NER (f1, per_type) or POS (accuracy) result")


def report_pictures(scores: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """The pictures of a report: ``(file name, caption, matplotlib figure)`` of each one the scores allow."""
    from .plots import confusion_figure, ner_errors_figure, per_type_figure, pos_confusions_figure

    out: list[tuple[str, str, Any]] = []
    if _task(scores) == "ner":
        out.append(("per_type.png", "Precision, recall and F1 of each entity type (its gold entities in brackets).",
                    per_type_figure(scores.get("per_type", {}))))
        errors = scores.get("breakdown", {}).get("errors")
        if errors is not None:
            out.append(("errors.png", "The wrong predictions by kind, and the gold entities that no prediction "
                        "overlaps.", ner_errors_figure(errors)))
        caption = ("Gold entity types (rows) against predicted ones (columns); O is no entity: its column holds "
                   "the missed entities, its row the spurious ones. Left: spans of the same boundaries; right: "
                   "overlapping spans of other boundaries. Colour: share of the gold row.")
    else:
        if scores.get("confusions"):
            out.append(("errors.png", "The most frequent confusions, gold tag \u2192 predicted tag.",
                        pos_confusions_figure(scores["confusions"])))
        caption = "Gold tags (rows) against predicted tags (columns). Colour: share of the gold row."
    matrix = scores.get("confusion_matrix")
    if matrix:
        out.append(("confusion.png", caption, confusion_figure(matrix)))
    return out


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):.2f}"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>\n" for row in rows)
    return f'<div class="scroll"><table>\n<thead><tr>{cells}</tr></thead>\n<tbody>\n{body}</tbody></table></div>\n'


def _figure(png: bytes | None, caption: str, name: str) -> str:
    if png is None:
        return ""
    width, height = _png_size(png)
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{_e(caption)}" title="{_e(name)}"><figcaption>{_e(caption)}</figcaption></figure>\n')


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def render_html(scores: Mapping[str, Any], pictures: Mapping[str, tuple[str, bytes]], title: str | None = None) -> str:
    """The page of a report: ``scores``' tables and ``pictures`` (``{file name: (caption, PNG bytes)}``) inlined."""
    task = _task(scores)
    where = f"{scores.get('dataset', '?')} [{scores.get('split', '?')}]"
    heading = title or f"{'NER' if task == 'ner' else 'POS'} evaluation: {where}"
    parts = [f"<h1>{_e(heading)}</h1>\n",
             f'<p class="sub">{_e(where)}, {_e(scores.get("sentences", "?"))} sentences; '
             f'{"entities scored as seqeval scores them" if task == "ner" else "tokens scored by their tag"}</p>\n']

    def picture(name: str) -> str:
        caption, png = pictures.get(name, ("", None))
        return _figure(png, caption, name)

    if task == "ner":
        strict = scores.get("strict", {})
        parts.append("<h2>Scores</h2>\n")
        parts.append(_table(["mode", "F1", "precision", "recall"], [
            ["default (conlleval)", _num(scores.get("f1")), _num(scores.get("precision")), _num(scores.get("recall"))],
            ["strict IOB2", _num(strict.get("f1")), _num(strict.get("precision")), _num(strict.get("recall"))]]))
        per_type = scores.get("per_type", {})
        parts.append("<h2>Entity types</h2>\n")
        parts.append(_table(["type", "precision", "recall", "F1", "gold entities"], [
            [t, _num(v.get("precision")), _num(v.get("recall")), _num(v.get("f1")), v.get("support", 0)]
            for t, v in sorted(per_type.items())]))
        parts.append(picture("per_type.png"))
        breakdown = scores.get("breakdown") or {}
        if breakdown.get("errors") is not None:
            from .plots import ERROR_KINDS

            parts.append("<h2>Errors</h2>\n")
            parts.append(_table(["kind", "count"], [[text, breakdown["errors"].get(kind, 0)]
                                                    for kind, text in ERROR_KINDS]))
            if breakdown.get("entities_seen") is not None:
                parts.append(_table(["gold entities", "count", "recall"], [
                    ["seen in training", breakdown.get("entities_seen"), _num(breakdown.get("recall_seen"))],
                    ["unseen in training", breakdown.get("entities_unseen"), _num(breakdown.get("recall_unseen"))]]))
            parts.append(picture("errors.png"))
        parts.append("<h2>Confusion of entity types</h2>\n")
    else:
        parts.append("<h2>Scores</h2>\n")
        rows = [["accuracy", _num(scores.get("accuracy")), scores.get("tokens", "")]]
        if scores.get("unseen_tokens") is not None:
            rows.append(["on words unseen in training", _num(scores.get("unseen_accuracy")), scores["unseen_tokens"]])
        parts.append(_table(["", "percent", "tokens"], rows))
        per_tag = scores.get("per_tag", {})
        parts.append("<h2>Tags</h2>\n")
        parts.append(_table(["tag", "accuracy", "gold tokens"], [
            [t, _num(v.get("accuracy")), v.get("support", 0)]
            for t, v in sorted(per_tag.items(), key=lambda kv: (-kv[1].get("support", 0), kv[0]))]))
        if scores.get("confusions"):
            parts.append("<h2>Most frequent confusions</h2>\n")
            parts.append(_table(["gold", "predicted", "tokens"], [
                [c["gold"], c["predicted"], c["count"]] for c in scores["confusions"]]))
            parts.append(picture("errors.png"))
        parts.append("<h2>Confusion matrix</h2>\n")
    if "confusion.png" in pictures:
        parts.append(picture("confusion.png"))
    else:
        parts.append('<p class="note">These scores carry no confusion matrix (it is computed when the report is '
                     'asked for: <code>seqtag evaluate --report DIR</code>).</p>\n')
    body = "".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(heading)}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>{_STYLE}</style>\n"
            f"</head>\n<body>\n{body}<footer>seqtag {_e(__version__)}</footer>\n</body>\n</html>\n")


def write_report(scores: dict[str, Any], folder: str | Path, *, title: str | None = None) -> Path:
    """Write an evaluation report into ``folder`` (created if needed); returns the path of its ``report.html``.

    Args:
        scores: What :func:`seqtag.workflow.evaluate_tagger` returns, for NER or POS; with a
            ``confusion_matrix`` the report has the heat map too.
        folder: Where the report's files go (see the module's description).
        title: The page's heading (default: the task, the dataset and the split).

    Raises:
        ConfigError: ``folder`` is a file, a model's ``assets/`` or ``checkpoint/``, or cannot be
            created or written.
    """
    from .modeldir import owning_model
    from .plots import png_bytes, write_readable

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another folder for the report")
    owner = next((o for o in (owning_model(out / name) for name in (REPORT, SCORES, *PICTURES)) if o), None)
    if owner is not None:
        raise ConfigError(f"{out}: inside the model in {owner}, whose own files the report would mix with; "
                          f"choose another folder for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
        pictures: dict[str, tuple[str, bytes]] = {}
        for name, caption, fig in report_pictures(scores):
            pictures[name] = (caption, png_bytes(fig))
            write_readable(out / name, pictures[name][1])
        for stale in set(PICTURES) - set(pictures):
            (out / stale).unlink(missing_ok=True)
        write_readable(out / SCORES, (json.dumps(scores, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        write_readable(out / REPORT, render_html(scores, pictures, title).encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the report there ({exc.strerror or exc})") from None
    return out / REPORT
