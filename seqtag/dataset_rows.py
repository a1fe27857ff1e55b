"""Sentences from the rows of Hugging Face datasets: Parquet files, ``save_to_disk`` folders, the
splits ``datasets.load_dataset`` returns, and data given in memory (a ``Dataset``, ``DatasetDict``,
``IterableDataset``, or a list of ``(tokens, tags)`` pairs).

A dataset holds a ``tokens`` column and a tag column (``tags``, ``ner_tags``, ``upos``...) of strings
or ``ClassLabel`` ids, whose names are then the tags. Whatever a damaged file or a wrong row holds is
one :class:`~seqtag.errors.DataError` line naming the file and the row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import DataError
from .readers import TAG_KEYS, Sentence, row_problem

__all__ = ["open_parquet", "load_saved", "read_dataset_file", "sentences_from_dataset", "unreadable",
           "memory_splits", "describe_memory"]


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
    return _sentences(rows, names, col, where)


def _sentences(rows: Iterable[Any], names: list[str] | None, col: str, where: str) -> list[Sentence]:
    """Sentences of ``(tokens, tags)`` rows, tags given as ``names`` ids when ``names`` is set; each checked."""
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


def _one(data: Any, where: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of one split given in memory (see :func:`memory_splits`)."""
    import datasets

    if isinstance(data, datasets.IterableDataset):
        # its rows are read once, through the features it declares (ClassLabel names kept)
        rows = list(data)
        data = datasets.Dataset.from_list(rows, features=data.features) if rows else None
        if data is None:
            raise DataError("the dataset has no sentences", where)
    if isinstance(data, datasets.Dataset):
        return sentences_from_dataset(data, where, tag_key)
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
