"""Readers of local corpus files into sentences: CoNLL column files, CoNLL-U and JSON lines.

Every reader checks what it reads and reports bad data in one line with ``file:line``. Files are read
as UTF-8 (a byte-order mark is dropped, CRLF line ends are accepted); bytes that are not UTF-8 are
an error that names the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .errors import DataError
from .jsonio import json_kind, loads_json, shown

__all__ = ["Sentence", "decode_lines", "read_lines", "read_conll", "read_conllu", "read_jsonl", "row_problem",
           "TAG_KEYS"]


@dataclass
class Sentence:
    """Tokens and tags of one sentence, with the line it starts on."""

    tokens: list[str]
    tags: list[str]
    line: int


def decode_lines(raw_lines: Iterable[bytes], where: str, what: str = "file") -> Iterator[tuple[int, str]]:
    """Numbered UTF-8 lines without their line ends (a BOM dropped, CRLF accepted).

    Bytes that are not UTF-8 are a :class:`DataError` naming ``where`` and the line.
    """
    for lineno, raw in enumerate(raw_lines, 1):
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"bytes that are not UTF-8 at column {exc.start + 1} "
                            f"(0x{raw[exc.start]:02x}); save the {what} as UTF-8", where, lineno) from None
        yield lineno, text.rstrip("\r\n").rstrip("\r")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a UTF-8 text file without their line ends (CRLF and a BOM accepted)."""
    p = Path(path)
    if not p.is_file():
        raise DataError("no such file", str(p))
    with p.open("rb") as f:
        yield from decode_lines(f, str(p))


def _check_nonempty(sents: list[Sentence], path: str | Path, saw_text: bool, saw_lines: bool = True) -> list[Sentence]:
    """``saw_text``: a line held more than whitespace; ``saw_lines``: the file had any line at all."""
    if not sents:
        what = "no sentences, only comments, -DOCSTART- lines or empty ones" if saw_text else \
            "only blank lines" if saw_lines else "no lines"
        raise DataError(f"the file is empty ({what}); expected one token per line and blank lines between sentences",
                        str(path))
    return sents


def read_conll(path: str | Path, tag_column: int = -1, token_column: int = 0, separator: str | None = None,
               comment_prefix: str | None = None) -> list[Sentence]:
    """Read a CoNLL column file: one token per line, columns split on whitespace (or ``separator``).

    ``-DOCSTART-`` lines are skipped; blank and whitespace-only lines end a sentence. Every token line
    must have as many columns as the first one.
    """
    sents: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    ncols: int | None = None
    first_line = 0
    saw_text = saw_lines = False
    for lineno, line in read_lines(path):
        saw_lines = True
        if line and not line.isspace():
            saw_text = True
        if comment_prefix and line.startswith(comment_prefix):
            continue
        if not line.strip():
            if tokens:
                sents.append(Sentence(tokens, tags, start))
                tokens, tags = [], []
            continue
        cols = line.split(separator) if separator else line.split()
        if cols[0] == "-DOCSTART-":
            if tokens:
                sents.append(Sentence(tokens, tags, start))
                tokens, tags = [], []
            continue
        if ncols is None:
            ncols, first_line = len(cols), lineno
            for col, name in ((tag_column, "tag"), (token_column, "token")):
                if not -ncols <= col < ncols:
                    raise DataError(f"the {name} column {col} does not exist: the line has {ncols} columns", str(path),
                                    lineno)
        elif len(cols) != ncols:
            raise DataError(f"expected {ncols} columns (as on line {first_line}), found {len(cols)}: {line[:60]!r}",
                            str(path), lineno)
        if not tokens:
            start = lineno
        tokens.append(cols[token_column])
        tags.append(cols[tag_column])
    if tokens:
        sents.append(Sentence(tokens, tags, start))
    return _check_nonempty(sents, path, saw_text, saw_lines)


def read_conllu(path: str | Path, column: str = "upos") -> list[Sentence]:
    """Read CoNLL-U: UPOS (``column="upos"``) or XPOS tags of the syntactic words.

    Multiword-token ranges (``3-4``) and empty nodes (``8.1``) are skipped, so the tokens are the
    syntactic words that the tags belong to.
    """
    idx = {"upos": 3, "xpos": 4}.get(column.lower())
    if idx is None:
        raise DataError(f"CoNLL-U tag column must be 'upos' or 'xpos', not {column!r}", str(path))
    sents: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    saw_text = saw_lines = False
    for lineno, line in read_lines(path):
        saw_lines = True
        if line.strip():
            saw_text = True
        if line.startswith("#"):
            continue
        if not line.strip():
            if tokens:
                sents.append(Sentence(tokens, tags, start))
                tokens, tags = [], []
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}", str(path), lineno)
        if "-" in cols[0] or "." in cols[0]:
            continue
        if not cols[0].isdigit():
            raise DataError(f"the ID column holds {cols[0]!r}; expected a word number", str(path), lineno)
        if not tokens:
            start = lineno
        tokens.append(cols[1])
        tags.append(cols[idx])
    if tokens:
        sents.append(Sentence(tokens, tags, start))
    return _check_nonempty(sents, path, saw_text, saw_lines)


TAG_KEYS = ("tags", "ner_tags", "upos", "pos_tags", "labels")


def row_problem(tokens: object, tags: object, tag_key: str = "tags") -> str | None:
    """What is wrong with one sentence's ``tokens`` and tags, read from JSON or a dataset; ``None`` if nothing.

    Tokens must be a list of strings and tags a list of strings (or label ids) as long as the tokens.
    A string where the list belongs would otherwise be read character by character.
    """
    if not isinstance(tokens, list):
        return f"'tokens' must be a list of strings, got {shown(tokens)}"
    bad = next((t for t in tokens if not isinstance(t, str)), "")
    if not isinstance(bad, str):
        return f"'tokens' must be a list of strings; it holds {shown(bad)}"
    if not isinstance(tags, list):
        return f"{tag_key!r} must be a list of strings (or label ids), got {shown(tags)}"
    wrong = next((t for t in tags if isinstance(t, bool) or not isinstance(t, (str, int))), None)
    if wrong is not None:
        return f"{tag_key!r} must be a list of strings (or label ids); it holds {shown(wrong)}"
    if len(tokens) != len(tags):
        return f"{len(tokens)} tokens but {len(tags)} tags in {tag_key!r}"
    return None


def read_jsonl(path: str | Path, tag_key: str | None = None) -> list[Sentence]:
    """Read JSON lines: one object per line with ``tokens`` and a tag list (``tags``, ``ner_tags``, ``upos``...)."""
    sents: list[Sentence] = []
    saw_text = saw_lines = False
    for lineno, line in read_lines(path):
        saw_lines = True
        if not line.strip():
            continue
        saw_text = True
        obj = loads_json(line, lambda reason: DataError(reason, str(path), lineno))
        if not isinstance(obj, dict) or "tokens" not in obj:
            found = "an object without 'tokens'" if isinstance(obj, dict) else json_kind(obj)
            raise DataError(f"expected an object with 'tokens' and a tag list, found {found}", str(path), lineno)
        key = tag_key or next((k for k in TAG_KEYS if k in obj), None)
        if key is None or key not in obj:
            raise DataError(f"expected a tag list ({', '.join(repr(k) for k in ([tag_key] if tag_key else TAG_KEYS))}) "
                            "beside 'tokens'", str(path), lineno)
        problem = row_problem(obj["tokens"], obj[key], key)
        if problem is not None:
            raise DataError(problem, str(path), lineno)
        if obj["tokens"]:
            sents.append(Sentence(list(obj["tokens"]), [str(t) for t in obj[key]], lineno))
    return _check_nonempty(sents, path, saw_text, saw_lines)
