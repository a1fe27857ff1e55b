"""Sentences from the rows of Hugging Face datasets: Parquet files, ``save_to_disk`` folders, the
splits ``datasets.load_dataset`` returns, and data given in memory (a ``Dataset``, ``DatasetDict``,
``IterableDataset``, or a list of ``(tokens, tags)`` pairs).

A dataset holds a ``tokens`` column and a tag column (``tags``, ``ner_tags``, ``upos``...) of strings
or ``ClassLabel`` ids, whose names are then the tags. Whatever a damaged file or a wrong row holds is
one :class:`~seqtag.errors.DataError` line naming the file and the row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import DataError, SeqtagError
from .readers import TAG_KEYS, Sentence, row_problem

__all__ = ["open_parquet", "load_saved", "open_split", "read_dataset_file", "sentences_from_dataset", "read_split",
           "iter_rows", "tag_column", "row_sentence", "unreadable", "memory_splits", "describe_memory"]


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


def open_split(path: Path, fmt: str) -> Any:
    """One split as a ``datasets.Dataset``: a Parquet file (``fmt="parquet"``) or a ``save_to_disk`` folder
    of one split; a folder of several splits is one line of :class:`DataError`."""
    import datasets

    ds = open_parquet(path) if fmt == "parquet" else load_saved(path)
    if isinstance(ds, datasets.DatasetDict):
        raise DataError("holds several splits; pass the folder as the dataset, not as one split", str(path))
    return ds


def read_dataset_file(path: Path, fmt: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of one Parquet file (``fmt="parquet"``) or ``save_to_disk`` folder of one split."""
    return sentences_from_dataset(open_split(path, fmt), str(path), tag_key)


def tag_column(columns: list[str], features: Any, wanted: str | None, where: str) -> tuple[str, list[str] | None]:
    """The tag column of a dataset with ``columns`` beside its ``tokens`` column (``wanted``, else the first of
    :data:`~seqtag.readers.TAG_KEYS` it has), and its label names when ``features`` declare it a sequence of
    ``ClassLabel`` (``None`` for tags stored as strings, or features unknown). A dataset without the
    ``tokens`` column or the tag column is one line of :class:`DataError`."""
    if "tokens" not in columns:
        raise DataError(f"no 'tokens' column; columns: {', '.join(columns)}", where)
    candidates = [wanted] if wanted else list(TAG_KEYS)
    col = next((c for c in candidates if c in columns), None)
    if col is None:
        raise DataError(f"no tag column {' or '.join(repr(c) for c in candidates)}; columns: {', '.join(columns)}",
                        where)
    feature = features[col] if features is not None and col in features else None
    names = getattr(getattr(feature, "feature", None), "names", None)
    return col, list(names) if names else None


def row_sentence(tokens: Any, tags: Any, names: list[str] | None, col: str, where: str, row: int) -> Sentence | None:
    """One dataset row as a sentence whose ``line`` is ``row`` (``None`` for a row without tokens).

    Tags are ``names`` ids when ``names`` is set, else strings (or numbers, kept as their text). A row
    whose tokens or tags are wrong (:func:`~seqtag.readers.row_problem`), or with an id outside
    ``names``, is one line of :class:`DataError` naming the row (when ``row`` is 0, the row is unknown).
    """
    problem = row_problem(tokens, tags, col)
    if problem is None and names and any(not isinstance(t, int) or not 0 <= t < len(names) for t in tags):
        problem = f"{col!r} holds a label id outside its {len(names)} label names"
    if problem is not None:
        raise DataError(f"row {row}: {problem}" if row else problem, where)
    if not tokens:
        return None
    return Sentence(list(tokens), [names[t] for t in tags] if names else [str(t) for t in tags], row)


def sentences_from_dataset(ds: Any, where: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of a dataset's rows; a row whose tokens or tags are not lists of strings is one line naming it.

    Each sentence's ``line`` is its row number, counted from 1.
    """
    col, names = tag_column(ds.column_names, ds.features, tag_key, where)
    try:  # Arrow decodes the columns here: strings that are not UTF-8 fail now
        rows = list(zip(ds["tokens"], ds[col]))
    except Exception as exc:
        raise unreadable(exc, f"the 'tokens' and {col!r} columns cannot be read", where) from None
    return _sentences(rows, names, col, where)


def _sentences(rows: Iterable[Any], names: list[str] | None, col: str, where: str) -> list[Sentence]:
    """Sentences of ``(tokens, tags)`` rows, tags given as ``names`` ids when ``names`` is set; each checked."""
    sents = [s for i, (tokens, tags) in enumerate(rows, 1)
             if (s := row_sentence(tokens, tags, names, col, where, i)) is not None]
    if not sents:
        raise DataError("the dataset has no sentences", where)
    return sents


# -- data given in memory ----------------------------------------------------------------------------

def describe_memory(data: Any) -> str:
    """A name for data given in memory, for messages and ``meta.json`` (``<DatasetDict>``, ``<list>``, and for
    a plain dict of splits ``<train: Dataset, dev: list>``)."""
    if type(data) is dict:
        return "<" + ", ".join(f"{k}: {type(v).__name__}" for k, v in data.items()) + ">"
    return f"<{type(data).__name__}>"


def memory_splits(data: Any, tag_key: str | None) -> dict[str, tuple[list[Sentence], str]]:
    """The sentences of each split of data given in memory, with the name messages give each split.

    ``data`` is a ``DatasetDict`` (or ``IterableDatasetDict``, or a dict of split name to data), whose
    splits are its own, or one ``Dataset``, ``IterableDataset`` or list of ``(tokens, tags)`` pairs
    (or of ``{"tokens": ..., "tags": ...}`` rows), which is the one split ``data``. The tag column
    and, for ``ClassLabel`` ids, the label names come from the features, as for saved datasets.
    """
    if isinstance(data, Mapping):
        # a DatasetDict names its splits after itself, a plain dict of splits after each part
        names = {split: f"{describe_memory(data if type(data) is not dict else part)}[{split}]"
                 for split, part in data.items()}
        return {str(split): (_one(part, names[split], tag_key), names[split]) for split, part in data.items()}
    where = describe_memory(data)
    return {"data": (_one(data, where, tag_key), where)}


def iter_rows(ds: Any, where: str) -> Iterator[Mapping[str, Any]]:
    """The rows of an ``IterableDataset`` as it is read; a file behind it that cannot be read (damaged,
    vanished) is one line of :class:`DataError` naming ``where``."""
    it = iter(ds)
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except (SeqtagError, MemoryError):
            raise
        except Exception as exc:  # pyarrow, json, fsspec errors of a damaged or vanished file
            raise unreadable(exc, "cannot be read as it streams", where) from None
        yield row


def read_split(ds: Any, where: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of a ``Dataset`` or an ``IterableDataset`` read whole: an ``IterableDataset``'s rows
    are read once (:func:`iter_rows`), through the features it declares (``ClassLabel`` names kept)."""
    import datasets

    if isinstance(ds, datasets.IterableDataset):
        rows = list(iter_rows(ds, where))
        if not rows:
            raise DataError("the dataset has no sentences", where)
        ds = datasets.Dataset.from_list(rows, features=ds.features)
    return sentences_from_dataset(ds, where, tag_key)


def _one(data: Any, where: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of one split given in memory (see :func:`memory_splits`)."""
    import datasets

    if isinstance(data, (datasets.IterableDataset, datasets.Dataset)):
        return read_split(data, where, tag_key)
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise DataError(f"expected a datasets.Dataset, a DatasetDict, an IterableDataset or a list of "
                        f"(tokens, tags) pairs, got {type(data).__name__}", where)
    col = tag_key or "tags"
    pairs: list[Any] = []
    for row in data:
        if isinstance(row, Mapping):
            key = tag_key or next((k for k in TAG_KEYS if k in row), "tags")
            pairs.append((row.get("tokens"), row.get(key)))
        elif isinstance(row, (tuple, list)) and len(row) == 2:
            pairs.append((list(row[0]) if isinstance(row[0], tuple) else row[0],
                          list(row[1]) if isinstance(row[1], tuple) else row[1]))
        else:
            raise DataError(f"row {len(pairs) + 1}: expected a (tokens, tags) pair, got {type(row).__name__}", where)
    return _sentences(pairs, None, col, where)
