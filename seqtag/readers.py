"""Readers of local corpus files into sentences: CoNLL column files, CoNLL-U and JSON lines.

Every reader checks what it reads and reports bad data in one line with ``file:line``. Files are read
as UTF-8 (a byte-order mark is dropped, CRLF line ends are accepted); bytes that are not UTF-8 are
an error that names the line. Column files (CoNLL, CoNLL-U, and the CoNLL input of ``seqtag predict``)
are cut into sentences by one streaming block reader, :func:`conll_blocks`; :func:`iter_conll` and
:func:`iter_conllu` give a file's sentences one by one as they are read (streamed training reads them so),
and :func:`read_conll` and :func:`read_conllu` are the same readers read to the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import DataError
from .jsonio import json_kind, loads_json, shown

__all__ = ["Sentence", "decode_lines", "read_lines", "conll_blocks", "read_conll", "iter_conll", "read_conllu",
           "iter_conllu", "read_jsonl", "row_problem", "TAG_KEYS"]

T = TypeVar("T")


@dataclass
class Sentence:
    """Tokens and tags of one sentence, with the line it starts on and the number of its document in its
    file (the ``-DOCSTART-`` lines before it; 0 in a file without them)."""

    tokens: list[str]
    tags: list[str]
    line: int
    document: int = 0


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


class _Watched:
    """Numbered lines passed on, noting whether any line went by and any line with more than whitespace,
    so that a file without sentences is told apart as holding no lines, blank lines or only skipped ones."""

    def __init__(self, lines: Iterable[tuple[int, str]]) -> None:
        self.lines = lines
        self.saw_lines = self.saw_text = False

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for lineno, line in self.lines:
            self.saw_lines = True
            if not self.saw_text and line.strip():
                self.saw_text = True
            yield lineno, line

    def check(self, sents: list[Sentence], path: str | Path) -> list[Sentence]:
        """``sents``, or a :class:`DataError` saying what the file held instead of sentences."""
        if not sents:
            what = "no sentences, only comments, -DOCSTART- lines or empty ones" if self.saw_text else \
                "only blank lines" if self.saw_lines else "no lines"
            raise DataError(f"the file is empty ({what}); expected one token per line and blank lines between "
                            f"sentences", str(path))
        return sents


def conll_blocks(lines: Iterable[tuple[int, str]], row: Callable[[int, str, list[str]], T | None], *,
                 separator: str | None = None, comment_prefix: str | None = None, docstart: bool = True,
                 newdoc_prefix: str | None = None,
                 documents: list[int] | None = None) -> Iterator[tuple[int, int, list[T]]]:
    """The sentences of numbered column lines as they stream by: ``(first line, document, rows)`` per sentence.

    Blank and whitespace-only lines end a sentence, and so do ``-DOCSTART-`` lines (skipped, when
    ``docstart``); lines starting with ``comment_prefix`` are skipped. Each token line is split on
    whitespace (or ``separator``) and handed to ``row(lineno, line, columns)`` at once, so a row that
    raises names its line before later lines are read; ``row`` returns the value kept for the line,
    or ``None`` to skip it. The first line of a sentence is that of its first kept row.

    Documents begin at ``-DOCSTART-`` lines (when ``docstart``) and at lines starting with
    ``newdoc_prefix`` (CoNLL-U's ``# newdoc``); a sentence's document is the number of those begun
    before its first line (0 before any). ``documents``: a list their line numbers are appended to.
    """
    rows: list[T] = []
    start = document = sentence_document = 0
    for lineno, line in lines:
        if newdoc_prefix and line.startswith(newdoc_prefix):
            document += 1
            if documents is not None:
                documents.append(lineno)
        if comment_prefix and line.startswith(comment_prefix):
            continue
        if line.strip():
            cols = line.split(separator) if separator else line.split()
            if docstart and cols[0] == "-DOCSTART-":
                document += 1
                if documents is not None:
                    documents.append(lineno)
            else:
                value = row(lineno, line, cols)
                if value is not None:
                    if not rows:
                        start, sentence_document = lineno, document
                    rows.append(value)
                continue
        if rows:
            yield start, sentence_document, rows
            rows = []
    if rows:
        yield start, sentence_document, rows


def _sentences(blocks: Iterable[tuple[int, int, list[tuple[str, str]]]], lines: _Watched,
               path: str | Path) -> Iterator[Sentence]:
    """The sentences of :func:`conll_blocks`' ``(first line, document, (token, tag) rows)`` as they are
    read; when there are none, at the end, the :class:`DataError` of :meth:`_Watched.check`."""
    none = True
    for start, document, rows in blocks:
        none = False
        yield Sentence([tok for tok, _ in rows], [tag for _, tag in rows], start, document)
    if none:
        lines.check([], path)


def read_conll(path: str | Path, tag_column: int = -1, token_column: int = 0, separator: str | None = None,
               comment_prefix: str | None = None, documents: list[int] | None = None) -> list[Sentence]:
    """Read a CoNLL column file: one token per line, columns split on whitespace (or ``separator``).

    ``-DOCSTART-`` lines are skipped (their line numbers appended to ``documents`` when it is a list, so
    a sentence's document is the last one that starts before its ``line``); blank and whitespace-only
    lines end a sentence. Every token line must have as many columns as the first one.
    """
    return list(iter_conll(path, tag_column, token_column, separator, comment_prefix, documents))


def iter_conll(path: str | Path, tag_column: int = -1, token_column: int = 0, separator: str | None = None,
               comment_prefix: str | None = None, documents: list[int] | None = None) -> Iterator[Sentence]:
    """The sentences of a CoNLL column file one by one as they are read, checked as :func:`read_conll` says.

    A line that breaks the format raises when the reading reaches it; a file without sentences raises
    at the end.
    """
    first: list[int] = []  # the number and column count of the first token line

    def row(lineno: int, line: str, cols: list[str]) -> tuple[str, str]:
        if not first:
            first.extend((lineno, len(cols)))
            for col, name in ((tag_column, "tag"), (token_column, "token")):
                if not -len(cols) <= col < len(cols):
                    raise DataError(f"the {name} column {col} does not exist: the line has {len(cols)} columns",
                                    str(path), lineno)
        elif len(cols) != first[1]:
            raise DataError(f"expected {first[1]} columns (as on line {first[0]}), found {len(cols)}: {line[:60]!r}",
                            str(path), lineno)
        return cols[token_column], cols[tag_column]

    lines = _Watched(read_lines(path))
    blocks = conll_blocks(lines, row, separator=separator, comment_prefix=comment_prefix, documents=documents)
    yield from _sentences(blocks, lines, path)


def read_conllu(path: str | Path, column: str = "upos") -> list[Sentence]:
    """Read CoNLL-U: UPOS (``column="upos"``) or XPOS tags of the syntactic words.

    Multiword-token ranges (``3-4``) and empty nodes (``8.1``) are skipped, so the tokens are the
    syntactic words that the tags belong to.
    """
    return list(iter_conllu(path, column))


def iter_conllu(path: str | Path, column: str = "upos") -> Iterator[Sentence]:
    """The sentences of a CoNLL-U file one by one as they are read, checked as :func:`read_conllu` says;
    ``# newdoc`` comment lines begin documents (:attr:`Sentence.document`)."""
    idx = {"upos": 3, "xpos": 4}.get(column.lower())
    if idx is None:
        raise DataError(f"CoNLL-U tag column must be 'upos' or 'xpos', not {column!r}", str(path))

    def row(lineno: int, line: str, cols: list[str]) -> tuple[str, str] | None:
        if len(cols) != 10:
            raise DataError(f"expected 10 tab-separated CoNLL-U columns, found {len(cols)}", str(path), lineno)
        if "-" in cols[0] or "." in cols[0]:
            return None
        if not cols[0].isdigit():
            raise DataError(f"the ID column holds {cols[0]!r}; expected a word number", str(path), lineno)
        return cols[1], cols[idx]

    lines = _Watched(read_lines(path))
    blocks = conll_blocks(lines, row, separator="\t", comment_prefix="#", docstart=False, newdoc_prefix="# newdoc")
    yield from _sentences(blocks, lines, path)


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
    lines = _Watched(read_lines(path))
    for lineno, line in lines:
        if not line.strip():
            continue
        obj = loads_json(line, partial(DataError, path=str(path), line=lineno))
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
    return lines.check(sents, path)
