"""Tag schemes (IOB1, IOB2, BIOES): detection, validation, repair, conversion, spans, transitions.

A tag is ``O`` or ``P-TYPE`` with prefix ``P`` in ``B I E S`` (``E``/``S`` only in BIOES).
Spans are half-open token ranges ``(start, end, type)``. Conversions go through spans, so a
round trip preserves the entity set of any valid sequence.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

__all__ = [
    "SCHEMES",
    "split_tag",
    "LabelTable",
    "spans_from_tags",
    "tags_from_spans",
    "convert",
    "detect_scheme",
    "invalid_positions",
    "is_valid",
    "allowed_transitions",
    "entity_types",
]

SCHEMES = ("IOB1", "IOB2", "BIOES")
Span = tuple[int, int, str]


def split_tag(tag: str) -> tuple[str, str]:
    """Split ``B-PER`` into ``("B", "PER")``; ``O`` gives ``("O", "")``; a bare type gives ``("I", type)``."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] in "-_" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "?", tag


class LabelTable:
    """A label list read once (each label's prefix and entity type, the id of ``O``), so that sequences
    of label ids decode to spans without parsing a string per tag.

    Args:
        labels: The labels; id ``i`` stands for ``labels[i]``.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = labels
        self.parts = [split_tag(lab) for lab in labels]
        self.outside = labels.index("O") if "O" in labels else -1

    def spans(self, ids: Sequence[int]) -> list[Span]:
        """Entity spans of a sequence of label ids (read as :func:`spans_from_tags` reads tags)."""
        return _read_spans(ids, self.parts)


class _TagParts(dict[str, tuple[str, str]]):
    """``split_tag`` of every tag met, kept: a corpus has few distinct tags and many tokens."""

    def __missing__(self, tag: str) -> tuple[str, str]:
        if len(self) >= 65536:  # tags from a hostile file never grow it without bound
            self.clear()
        parts = self[tag] = split_tag(tag)
        return parts


_TAG_PARTS = _TagParts()


def spans_from_tags(tags: Sequence[str], scheme: str = "IOB2") -> list[Span]:
    """Entity spans of a tag sequence, read leniently (an orphan ``I-``/``E-`` starts a span).

    One reading serves IOB1, IOB2 and BIOES (``scheme`` is accepted for symmetry with
    :func:`tags_from_spans`): ``B-``/``S-`` or a change of type starts a span, ``E-``/``S-`` ends
    one, ``O`` (or a tag not in the scheme's form) ends the open one.
    """
    return _read_spans(tags, _TAG_PARTS)


def _read_spans(seq: Sequence[Any], parts: Any) -> list[Span]:
    """The one span reader: ``parts[item]`` is the ``(prefix, type)`` of each item of ``seq`` (a label id
    and :attr:`LabelTable.parts`, or a tag and the cache of :func:`split_tag`)."""
    spans: list[Span] = []
    start, etype = -1, ""
    for i, item in enumerate(seq):  # runs for every tagged sentence: plain comparisons, no calls
        prefix, ty = parts[item]
        if prefix == "O" or prefix == "?":
            if start >= 0:
                spans.append((start, i, etype))
                start = -1
            continue
        if start < 0 or ty != etype or prefix == "B" or prefix == "S":
            if start >= 0:
                spans.append((start, i, etype))
            start, etype = i, ty
        if prefix == "E" or prefix == "S":
            spans.append((start, i + 1, etype))
            start = -1
    if start >= 0:
        spans.append((start, len(seq), etype))
    return spans


def tags_from_spans(spans: Iterable[Span], length: int, scheme: str = "IOB2") -> list[str]:
    """The tag sequence of ``length`` tokens that encodes ``spans`` in ``scheme``."""
    tags = ["O"] * length
    prev_end, prev_type = -1, ""
    for start, end, etype in sorted(spans):
        if scheme == "BIOES":
            if end - start == 1:
                tags[start] = f"S-{etype}"
            else:
                tags[start] = f"B-{etype}"
                for j in range(start + 1, end - 1):
                    tags[j] = f"I-{etype}"
                tags[end - 1] = f"E-{etype}"
        elif scheme == "IOB1":
            first = "B" if (prev_end == start and prev_type == etype) else "I"
            tags[start] = f"{first}-{etype}"
            for j in range(start + 1, end):
                tags[j] = f"I-{etype}"
        else:
            tags[start] = f"B-{etype}"
            for j in range(start + 1, end):
                tags[j] = f"I-{etype}"
        prev_end, prev_type = end, etype
    return tags


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert a tag sequence between schemes (invalid sequences are repaired on the way)."""
    if source == target and is_valid(tags, source):
        return list(tags)
    return tags_from_spans(spans_from_tags(tags, source), len(tags), target)


def invalid_positions(tags: Sequence[str], scheme: str) -> list[int]:
    """Indices of tags that break ``scheme`` (unknown prefix, orphan ``I-``, unclosed ``B-``...)."""
    bad: list[int] = []
    prev_p, prev_t = "O", ""
    for i, tag in enumerate(tags):
        p, t = split_tag(tag)
        ok = True
        if p == "?":
            ok = False
        elif scheme in ("IOB1", "IOB2") and p in "ES":
            ok = False
        elif scheme == "IOB2" and p == "I" and not (prev_p in "BI" and prev_t == t):
            ok = False
        elif scheme == "IOB1" and p == "B" and not (prev_p in "BI" and prev_t == t):
            ok = False
        elif scheme == "BIOES":
            if p in "IE" and not (prev_p in "BI" and prev_t == t):
                ok = False
            elif p in "BSO" and prev_p in "BI":
                bad.append(i - 1)  # the entity before was never closed
        if not ok:
            bad.append(i)
        prev_p, prev_t = (p if p != "?" else "O"), t
    if scheme == "BIOES" and tags and split_tag(tags[-1])[0] in "BI":
        bad.append(len(tags) - 1)
    return sorted(set(bad))


def is_valid(tags: Sequence[str], scheme: str) -> bool:
    return not invalid_positions(tags, scheme)


def detect_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus: BIOES if ``E-``/``S-`` occur, else IOB1 or IOB2 by the evidence.

    An ``I-X`` that opens an entity (after ``O`` or another type) happens only in IOB1 (CoNLL-2003 is
    IOB1); a ``B-X`` that opens one happens only in IOB2. The scheme with more such openings wins, so
    a few stray ``I-`` tags in IOB2 data are reported as errors of IOB2, not read as IOB1.
    """
    saw_es = False
    iob1 = iob2 = 0
    for tags in sentences:
        prev_p, prev_t = "O", ""
        for tag in tags:
            p, t = split_tag(tag)
            opens = not (prev_p in ("B", "I") and prev_t == t)
            if p in ("E", "S"):
                saw_es = True
            elif p == "B" and opens:
                iob2 += 1
            elif p == "I" and opens:
                iob1 += 1
            prev_p, prev_t = p, t
    if saw_es:
        return "BIOES"
    return "IOB1" if iob1 > iob2 else "IOB2"


def entity_types(labels: Iterable[str]) -> list[str]:
    return sorted({split_tag(tag)[1] for tag in labels if split_tag(tag)[0] in "BIES"})


def allowed_transitions(labels: Sequence[str], scheme: str) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """Which starts, transitions and ends are valid in ``scheme`` for the label list.

    Returns ``(start_ok, trans_ok, end_ok)`` with ``trans_ok[i][j]`` true when label ``j`` may follow
    label ``i``. Labels that are not in the scheme's form (e.g. POS tags) allow everything.
    """
    n = len(labels)
    parts = [split_tag(tag) for tag in labels]
    if scheme not in ("IOB2", "BIOES") or any(p == "?" for p, _ in parts):
        return [True] * n, [[True] * n for _ in range(n)], [True] * n

    def may_follow(a: tuple[str, str], b: tuple[str, str]) -> bool:
        (pa, ta), (pb, tb) = a, b
        if scheme == "IOB2":
            return pb != "I" or (pa in "BI" and ta == tb)
        if pa in "BI":  # BIOES: inside an entity only I-/E- of the same type may follow
            return pb in "IE" and ta == tb
        return pb in "BSO"

    start_ok = [p in ("O", "B", "S") for p, _ in parts]
    end_ok = [p in ("O", "I", "B") if scheme == "IOB2" else p in ("O", "E", "S") for p, _ in parts]
    trans_ok = [[may_follow(a, b) for b in parts] for a in parts]
    return start_ok, trans_ok, end_ok
