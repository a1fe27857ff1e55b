"""Reading the JSON (and other text) files a user hands to seqtag, so that no content ends in a traceback.

Whatever a file holds (bytes that are not UTF-8, invalid JSON, a number over Python's digit limit,
nesting deep enough to exhaust the interpreter's recursion limit, a list where an object belongs),
the answer is one :class:`~seqtag.errors.SeqtagError` line that names the file. Callers choose the
error class: :class:`~seqtag.errors.ConfigError` for configs, :class:`~seqtag.errors.DataError` for
corpora, :class:`~seqtag.errors.ModelLoadError` for model directories.
"""

from __future__ import annotations

import json
import reprlib
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from .errors import DataError, SeqtagError

__all__ = ["loads_json", "read_text", "read_json_object", "json_kind", "shown", "short_repr",
           "value_error_reason", "error_at"]

BOM = b"\xef\xbb\xbf"


def error_at(error_cls: type[SeqtagError], path: str | Path, reason: str, line: int | None = None) -> SeqtagError:
    """An ``error_cls`` whose message starts with ``path`` (and ``line``), whatever the class's signature."""
    if issubclass(error_cls, DataError):
        return error_cls(reason, str(path), line)
    return error_cls(f"{path}:{line}: {reason}" if line is not None else f"{path}: {reason}")


def json_kind(value: Any) -> str:
    """How a JSON value is named in messages: ``an array``, ``a string``, ``a number``..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 40, 40, 4, 4


def short_repr(value: object) -> str:
    """The start of ``value``'s repr, so that a huge string, list or number cannot swamp a message."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer over Python's digit limit for str()
        return "(too long to show)"


def shown(value: object) -> str:
    """A value as a message shows it: its kind and the start of its repr (``str 'big'``, ``int 3``, ``null``)."""
    return "null" if value is None else f"{type(value).__name__} {short_repr(value)}"


def value_error_reason(exc: Exception) -> str:
    """A parser's ``ValueError`` in a few words (Python's integer digit limit named as the user sees it)."""
    text = " ".join(str(exc).split())
    if "integer string conversion" in text:
        return f"a number with more than {sys.get_int_max_str_digits()} digits"
    return text[:120]


def loads_json(text: str | bytes, fail: Callable[[str], SeqtagError]) -> Any:
    """``json.loads`` whose every failure is ``fail(reason)``, raised; ``reason`` is one line.

    ``json.loads`` raises more than ``JSONDecodeError``: a ``ValueError`` for an integer over
    Python's digit limit and a ``RecursionError`` for deep nesting (``[[[[...``), which would
    otherwise escape as tracebacks.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise fail(f"not valid JSON ({exc.msg} at {where})") from None
    except RecursionError:
        raise fail("JSON nested too deeply to read") from None
    except (ValueError, TypeError) as exc:  # a number over Python's digit limit; bytes in another encoding
        raise fail(f"JSON that cannot be read ({value_error_reason(exc)})") from None


def read_text(path: str | Path, error_cls: type[SeqtagError], what: str = "file") -> str:
    """The text of a UTF-8 file (a byte-order mark dropped).

    A missing or unreadable file, or bytes that are not UTF-8 (with the line and column), is one
    ``error_cls`` line naming ``path``.
    """
    from .readers import decode_lines

    p = Path(path)

    def fail(reason: str, line: int | None = None) -> NoReturn:
        raise error_at(error_cls, p, reason, line) from None

    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        fail("missing")
    except IsADirectoryError:
        fail(f"a folder, not a {what}")
    except OSError as exc:
        fail(f"cannot be read ({exc.strerror or type(exc).__name__})")
    try:
        return raw.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:  # the line-by-line decoder finds the line and column and words the message
        for _ in decode_lines(raw.splitlines(keepends=True), str(p), what):
            pass
    except DataError as exc:
        fail(str(exc).removeprefix(f"{p}:{exc.line}: "), exc.line)
    fail(f"bytes that are not UTF-8; save the {what} as UTF-8")  # pragma: no cover - decode_lines found them


def read_json_object(path: str | Path, error_cls: type[SeqtagError]) -> dict[str, Any]:
    """The JSON object in ``path``.

    A missing file, bytes that are not UTF-8, invalid JSON, JSON nested too deeply to read, or a
    value that is not an object is one ``error_cls`` line naming the file.
    """
    text = read_text(path, error_cls)
    data = loads_json(text, lambda reason: error_at(error_cls, path, reason))
    if not isinstance(data, dict):
        raise error_at(error_cls, path, f"expected a JSON object, found {json_kind(data)}")
    return data
