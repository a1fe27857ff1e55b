"""Sentences from the rows of Hugging Face datasets: Parquet files, ``save_to_disk`` folders and the
splits ``datasets.load_dataset`` returns.

A dataset holds a ``tokens`` column and a tag column (``tags``, ``ner_tags``, ``upos``...) of strings
or ``ClassLabel`` ids, whose names are then the tags. Whatever a damaged file or a wrong row holds is
one :class:`~seqtag.errors.DataError` line naming the file and the row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import DataError
from .readers import TAG_KEYS, Sentence, row_problem

__all__ = ["open_parquet", "load_saved", "read_dataset_file", "sentences_from_dataset", "unreadable"]


def unreadable(exc: BaseException, what: str, where: str) -> DataError:
    """A reader's exception as one line naming the file (``MemoryError`` is re-raised, it is no data error)."""
    if isinstance(exc, MemoryError):
        raise exc
    text = " ".join(str(exc).split())
    first = text.split(f"{where}': ", 1)[-1][:200] or "no details"  # pyarrow repeats the path: once is enough
    return DataError(f"{what} ({type(exc).__name__}: {first})", where)


def open_parquet(path: Path) -> Any:
    """A Parquet file as a ``datasets.Dataset`` (its Hugging Face features kept, e.g. ``ClassLabel`` names).

    Read with pyarrow rather than ``Dataset.from_parquet``, which logs its own error lines and draws a
    progress bar on stderr around a failure, where the CLI promises one line.
    """
    import datasets
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
        return datasets.Dataset(datasets.table.InMemoryTable(table))
    except Exception as exc:  # pyarrow's ArrowInvalid/OSError, or datasets refusing the schema's metadata
        raise unreadable(exc, "not a readable Parquet file", str(path)) from None


def load_saved(path: Path) -> Any:
    """A folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # a damaged dataset_info.json/state.json/arrow file: many exception types
        raise unreadable(exc, "not a dataset folder written by save_to_disk", str(path)) from None


def read_dataset_file(path: Path, fmt: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of one Parquet file (``fmt="parquet"``) or ``save_to_disk`` folder of one split."""
    import datasets

    ds = open_parquet(path) if fmt == "parquet" else load_saved(path)
    if isinstance(ds, datasets.DatasetDict):
        raise DataError("holds several splits; pass the folder as the dataset, not as one split", str(path))
    return sentences_from_dataset(ds, str(path), tag_key)


def _tag_column_of(ds: Any, wanted: str | None, where: str) -> str:
    candidates = [wanted] if wanted else list(TAG_KEYS)
    for col in candidates:
        if col in ds.column_names:
            return col
    raise DataError(f"no tag column {' or '.join(repr(c) for c in candidates)}; columns: {', '.join(ds.column_names)}",
                    where)


def sentences_from_dataset(ds: Any, where: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of a dataset's rows; a row whose tokens or tags are not lists of strings is one line naming it.

    Each sentence's ``line`` is its row number, counted from 1.
    """
    if "tokens" not in ds.column_names:
        raise DataError(f"no 'tokens' column; columns: {', '.join(ds.column_names)}", where)
    col = _tag_column_of(ds, tag_key, where)
    feature = ds.features[col]
    names = getattr(getattr(feature, "feature", None), "names", None)
    try:  # Arrow decodes the columns here: strings that are not UTF-8 fail now
        rows = list(zip(ds["tokens"], ds[col]))
    except Exception as exc:
        raise unreadable(exc, f"the 'tokens' and {col!r} columns cannot be read", where) from None
    sents = []
    for i, (tokens, tags) in enumerate(rows, 1):
        problem = row_problem(tokens, tags, col)
        if problem is None and names and any(not isinstance(t, int) or not 0 <= t < len(names) for t in tags):
            problem = f"{col!r} holds a label id outside its {len(names)} label names"
        if problem is not None:
            raise DataError(f"row {i}: {problem}", where)
        if tokens:
            sents.append(Sentence(list(tokens), [names[t] if names else str(t) for t in tags], i))
    if not sents:
        raise DataError("the dataset has no sentences", where)
    return sents
