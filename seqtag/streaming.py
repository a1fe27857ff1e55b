"""Streamed training corpora: the training split read as training goes, never held whole in memory.

``seqtag train --streaming`` trains from a ``datasets.IterableDataset``: a hub id (``owner/name[:config]``)
and JSON lines, Parquet and hub-like folders through ``datasets.load_dataset(..., streaming=True)``;
CoNLL and CoNLL-U files through ``IterableDataset.from_generator`` over seqtag's own column readers;
a ``save_to_disk`` folder through ``Dataset.to_iterable_dataset``. Only the dev and test splits, which
are small, are read whole, as the in-memory loader (:func:`seqtag.data.load_corpus`) reads them.

A bounded first pass over the training split, its first :data:`STREAM_SAMPLE` sentences (or
``sample_size``), gives what training must know before it starts: the NER tag scheme (declared, or
detected on those sentences and the dev and test splits), the labels (from the dataset's ``ClassLabel``
features when it has them, else from the first pass) and the sentences the vocabulary is built from.
A tag met later that is not among the labels is a one-line :class:`~seqtag.errors.DataError` naming its
file and line (or row).

Each epoch (:meth:`StreamedSplit.batches`) reads the split again through a shuffle buffer seeded by the
seed and the epoch (``IterableDataset.shuffle`` and ``set_epoch``), keeps this rank's share
(``datasets.distributed.split_dataset_by_node``), repairs NER tag sequences that break the scheme as the
in-memory loader does (``--strict``: an error), converts them to the training scheme, and cuts
length-bucketed batches within a window of sentences. Memory holds the shuffle buffer and one window,
whatever the size of the corpus.
"""

from __future__ import annotations

import inspect
import itertools
import random
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .corpus import SPLIT_ALIASES, Corpus, TaggedSentence, token_line
from .data import (
    _STRICT_FIX,
    _breaks,
    _catalogue_files,
    _check_tags,
    _column_sentences,
    _form,
    _format_of,
    _hub_id,
    _open_hub,
    _outside_scheme,
    _read_file,
    _reader_options,
    _repair,
    _saved_splits,
    _split_files,
    _split_list,
    catalogue,
    hub_scheme,
)
from .dataset_rows import describe_memory, iter_rows, open_split, read_split, row_sentence, tag_column, unreadable
from .errors import DataError
from .labels import SCHEMES, convert, invalid_positions, split_tag
from .readers import Sentence

__all__ = ["STREAM_SAMPLE", "WINDOW_BATCHES", "CAP_HINT", "StreamedSplit", "StreamedCorpus", "stream_corpus",
           "scheme_labels"]

STREAM_SAMPLE = 20_000  # the first pass reads at most this many training sentences (labels, scheme, vocabulary)
WINDOW_BATCHES = 50  # batches are cut from a window of this many batches' sentences, sorted by length
CAP_HINT = "raise the first pass's cap (--set data.stream_sample=N)"  # how a user raises STREAM_SAMPLE

_ROW = "__seqtag_row"  # the column that numbers a dataset's rows before they are shuffled


def scheme_labels(types: Any, scheme: str) -> list[str]:
    """Every label of the entity ``types`` in ``scheme`` (``B-``/``I-``, and ``E-``/``S-`` in BIOES), and ``O``."""
    prefixes = "BIES" if scheme == "BIOES" else "BI"
    return sorted({"O"} | {f"{p}-{t}" for t in types for p in prefixes})


# -- the training split, streamed -----------------------------------------------------------------------------

@dataclass
class _Stream:
    """A split as an ``IterableDataset`` (in its stored order) and how one of its rows becomes a sentence.

    ``read`` returns ``None`` for an empty sentence; a row it cannot read is a one-line :class:`DataError`.
    ``names`` are the label names of ``ClassLabel`` tag features (``None`` for tags stored as strings).
    """

    dataset: Any
    source: str
    read: Callable[[Mapping[str, Any]], Sentence | None]
    names: list[str] | None = None


@dataclass
class StreamedSplit:
    """The training split of a streamed corpus: what its first pass found, and its batches epoch by epoch.

    Attributes:
        name: The corpus's name (as :attr:`Corpus.name <seqtag.corpus.Corpus.name>` would be).
        source: Where the split is read from (a file, a folder, ``name[split]`` for a dataset).
        scheme: The data's NER tag scheme, declared or detected on the first pass (``None`` for POS).
        labels: Every label, in the training scheme: from the ``ClassLabel`` features, else from the
            first pass (for NER, each entity type met with every prefix of the training scheme, and ``O``).
        sample: The first pass's sentences (at most its cap), tags in the training scheme; the
            vocabulary is built from these.
        task: ``ner`` or ``pos``.
        train_scheme: The NER scheme batches are given in (``None``: the data's scheme).
        strict: A sentence whose tags break the scheme is an error instead of being repaired.
        sample_size: The first pass's cap.
    """

    name: str
    source: str
    scheme: str | None
    labels: list[str]
    sample: list[TaggedSentence]
    task: str = "ner"
    train_scheme: str | None = None
    strict: bool = False
    sample_size: int = STREAM_SAMPLE
    stream: _Stream | None = field(default=None, repr=False)
    warn: Callable[[str], None] | None = field(default=None, repr=False)
    warned: bool = field(default=False, repr=False)

    def batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1,
                buffer_size: int = 10_000) -> Iterator[list[TaggedSentence]]:
        """One epoch's batches of ``(tokens, tags in the training scheme)`` for this rank.

        The split is read through a shuffle buffer of ``buffer_size`` sentences seeded by ``seed`` and
        ``epoch``, this rank's share kept (:func:`datasets.distributed.split_dataset_by_node`: whole shards
        when their number divides ``world_size``, else every ``world_size``-th sentence), empty sentences
        dropped. A window of :data:`WINDOW_BATCHES` batches' sentences (at most ``buffer_size``) is sorted
        by length with a little noise, cut into batches and the batches shuffled, as
        :func:`seqtag.trainer.make_batches` does for a corpus in memory. So at most about ``buffer_size``
        plus one window of sentences are held. The batches are the same for the same ``(seed, epoch, rank,
        world_size)``. Ranks may receive a different number of batches (by one, or by a shard's worth).

        Raises:
            DataError: A tag outside :attr:`labels`, a row that cannot be read, or (``strict``) tags that
                break the scheme: one line naming the source and the line (or row).
        """
        from datasets.distributed import split_dataset_by_node

        from .trainer import make_batches

        if self.stream is None:
            raise ValueError("a StreamedSplit made without its stream has no batches")
        if batch_size < 1 or buffer_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"batch_size {batch_size}, buffer_size {buffer_size}, rank {rank} of {world_size}")
        # shards (files) are read one after another, in an order shuffled each epoch: interleaving them
        # costs datasets a thread hop per sentence and a pause at the end of each epoch
        ds = self.stream.dataset
        one_at_a_time = {"max_buffer_input_shards": 1} if _takes(ds.shuffle, "max_buffer_input_shards") else {}
        ds = ds.shuffle(seed=seed, buffer_size=buffer_size, **one_at_a_time)
        ds.set_epoch(epoch)
        if world_size > 1:
            ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
        rng = random.Random(f"{seed}:{epoch}:{rank}:{world_size}")
        window_size = max(batch_size, min(WINDOW_BATCHES * batch_size, buffer_size))
        known = frozenset(self.labels)
        window: list[TaggedSentence] = []
        for row in iter_rows(ds, self.source):
            sent = self.stream.read(row)
            if sent is None:
                continue
            window.append(self.admit(sent, known))
            if len(window) >= window_size:
                yield from _cut(window, batch_size, rng, make_batches)
                window = []
        if window:
            yield from _cut(window, batch_size, rng, make_batches)

    def admit(self, sent: Sentence, known: frozenset[str] | None = None) -> TaggedSentence:
        """A sentence as batches give it: NER tags checked (repaired, or an error when ``strict``) and in
        the training scheme; a tag outside :attr:`labels` (or ``known``, the same as a set) is a
        :class:`DataError` naming its line."""
        tags = sent.tags
        if self.task == "ner" and self.scheme is not None:
            tags = self._repaired(sent)
            tags = convert(tags, self.scheme, self.train_scheme or self.scheme)
        known = frozenset(self.labels) if known is None else known
        if not known.issuperset(tags):
            i = next(i for i, t in enumerate(tags) if t not in known)
            raise self._unknown(sent, i, tags[i])
        return sent.tokens, tags

    def _where(self, sent: Sentence, token: int) -> tuple[str, int | None, str]:
        """``(source, line, note)`` of a sentence's token: its line (row) when known, else its first words."""
        if sent.line > 0:
            return self.source, token_line(self.source, sent.line, token), ""
        return self.source, None, f"in the sentence {' '.join(sent.tokens[:8])!r}: "

    def _repaired(self, sent: Sentence) -> list[str]:
        """The sentence's tags valid in :attr:`scheme`: as they are, or repaired as
        :func:`seqtag.data.load_corpus` repairs them (``convert`` to IOB2 and back)."""
        assert self.scheme is not None
        tags = sent.tags
        bad = invalid_positions(tags, self.scheme)
        if not bad:
            return tags
        src, line, note = self._where(sent, bad[0])
        tag = tags[bad[0]]
        if split_tag(tag)[0] == "?":
            raise DataError(f"{note}{_outside_scheme(tag)}", src, line)
        msg = f"{note}{_breaks(tags, bad[0], self.scheme)}"
        if self.strict:
            raise DataError(msg + _STRICT_FIX, src, line)
        if not self.warned:
            self.warned = True
            where = f"{src}:{line}: " if line is not None else f"{src}: "
            (self.warn or _stderr)(f"{where}{msg}; repaired, as is every later training sentence that breaks it")
        return _repair(tags, self.scheme)

    def _unknown(self, sent: Sentence, token: int, tag: str) -> DataError:
        src, line, note = self._where(sent, token)
        if self.stream is not None and self.stream.names is not None:
            origin = "the dataset's label names"
        else:
            origin = f"the first pass over {len(self.sample):,} training sentences; {CAP_HINT}"
        if self.task == "ner":
            raw = sent.tags[token]
            known = sorted({split_tag(t)[1] for t in self.labels} - {""})
            what, among = f"the entity type {split_tag(raw)[1]!r} ({raw})", f"types ({', '.join(known) or 'none'})"
        else:
            shown = ", ".join(self.labels[:12]) + (", ..." if len(self.labels) > 12 else "")
            what, among = f"the tag {tag!r}", f"labels ({shown})"
        return DataError(f"{note}{what} is not among the training data's {among}, which come from {origin}",
                         src, line)


def _takes(method: Callable[..., Any], name: str) -> bool:
    """Whether ``method`` takes the keyword ``name`` (``datasets`` releases differ)."""
    return name in inspect.signature(method).parameters


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _cut(window: list[TaggedSentence], batch_size: int, rng: random.Random,
         make_batches: Callable[..., list[list[int]]]) -> Iterator[list[TaggedSentence]]:
    for batch in make_batches([len(tokens) for tokens, _ in window], batch_size, rng):
        yield [window[i] for i in batch]


# -- sources: one stream per form of split -------------------------------------------------------------------

def _column_rows(path: str, fmt: str, opts: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The generator of ``IterableDataset.from_generator``: a column file's sentences as rows (``tokens``,
    ``tags``, and ``line``, where each starts)."""
    for s in _column_sentences(Path(path), fmt, opts):
        yield {"tokens": s.tokens, "tags": s.tags, "line": s.line}


def _from_column_row(row: Mapping[str, Any]) -> Sentence:
    return Sentence(row["tokens"], row["tags"], row["line"])


def _file_stream(path: Path, fmt: str | None, opts: Mapping[str, Any]) -> _Stream:
    """A file (or ``save_to_disk`` folder) of one split, streamed: column files through their reader,
    JSON lines and Parquet through ``load_dataset(..., streaming=True)``."""
    import datasets

    fmt = fmt or _format_of(path)
    where = str(path)
    if fmt in ("conll", "conllu"):
        if not path.is_file():
            raise DataError("no such file", where)
        ds = datasets.IterableDataset.from_generator(
            _column_rows, gen_kwargs={"path": where, "fmt": fmt, "opts": dict(opts)})
        return _Stream(ds, where, _from_column_row)
    if fmt == "disk":
        return _rows_stream(open_split(path, fmt).to_iterable_dataset(), where, _tag_key(opts))
    builder = "json" if fmt == "jsonl" else "parquet"
    if not path.is_file():
        raise DataError("no such file", where)
    try:
        ds = datasets.load_dataset(builder, data_files={"train": where}, split="train", streaming=True)
    except Exception as exc:
        raise unreadable(exc, f"not a readable {'JSON lines' if fmt == 'jsonl' else 'Parquet'} file", where) from None
    return _rows_stream(ds, where, _tag_key(opts))


def _tag_key(opts: Mapping[str, Any]) -> str | None:
    """The tag column of a dataset's rows that ``--tag-column`` names (any name; a number means nothing here)."""
    key = opts.get("tag_key") or opts.get("tag_column")
    return key if isinstance(key, str) else None


def _rows_stream(ds: Any, where: str, tag_key: str | None) -> _Stream:
    """A streamed dataset of ``tokens`` and a tag column: its rows numbered (when it is one shard, so the
    numbers are rows of one file), tags named by its ``ClassLabel`` features."""
    columns = ds.column_names
    if columns is None:  # features unknown until a row is read
        first = next(iter(iter_rows(ds, where)), None)
        if first is None:
            raise DataError("the dataset has no sentences", where)
        columns = list(first)
    col, names = tag_column(list(columns), ds.features, tag_key, where)
    ds = ds.select_columns(["tokens", col])
    numbered = ds.num_shards == 1
    if numbered:
        ds = ds.map(lambda _, i: {_ROW: i + 1}, with_indices=True)

    def read(row: Mapping[str, Any]) -> Sentence | None:
        return row_sentence(row["tokens"], row[col], names, col, where, row.get(_ROW, 0))

    return _Stream(ds, where, read, names)


# -- what --dataset names, planned: the training split streamed, the others read whole ------------------------

@dataclass
class _Plan:
    """A corpus to stream: its training split, a reader for each other split, and a declared scheme."""

    name: str
    train: _Stream | None = None
    others: dict[str, tuple[Callable[[], list[Sentence]], str]] = field(default_factory=dict)
    scheme: str | None = None
    splits: list[str] = field(default_factory=list)


def _plan_files(name: str, files: Mapping[str, Path], fmt: str | None, opts: Mapping[str, Any],
                scheme: str | None = None) -> _Plan:
    plan = _Plan(name, scheme=scheme, splits=list(files))
    for split, path in files.items():
        if split == "train":
            plan.train = _file_stream(path, fmt, opts)
        else:
            plan.others[split] = (partial(_read_file, path, fmt, opts), str(path))
    return plan


def _plan_datasets(name: str, splits: Mapping[str, Any], tag_key: str | None, where: Callable[[str], str],
                   scheme: str | None = None) -> _Plan:
    """Splits given as ``datasets`` objects (``IterableDataset`` or ``Dataset``): train streamed, the others read."""
    import datasets

    plan = _Plan(name, scheme=scheme, splits=[str(s) for s in splits])
    for split, ds in splits.items():
        src = where(str(split))
        if not isinstance(ds, (datasets.IterableDataset, datasets.Dataset)):
            raise DataError(f"expected a datasets.IterableDataset or Dataset, got {type(ds).__name__}", src)
        if split == "train":
            plan.train = _rows_stream(ds if isinstance(ds, datasets.IterableDataset) else ds.to_iterable_dataset(),
                                      src, tag_key)
        else:
            plan.others[str(split)] = (partial(read_split, ds, src, tag_key), src)
    return plan


def _plan(spec: Any, opts: Mapping[str, Any]) -> _Plan:
    """What ``spec`` names, as :func:`seqtag.data.load_corpus` resolves it, planned for streaming."""
    if not isinstance(spec, str):
        if not isinstance(spec, Mapping):
            raise DataError("streamed training needs the splits of a dataset (an IterableDatasetDict or a dict "
                            "of split name to IterableDataset or Dataset), with a dev split",
                            describe_memory(spec))
        label = describe_memory(spec)
        return _plan_datasets(label, spec, _tag_key(opts), lambda s: f"{label}[{s}]")
    form = _form(spec)  # a spec of no form: the in-memory loader's one line for it
    path = Path(spec)
    if form == "catalogue":
        entry = catalogue()[spec]
        local = _catalogue_files(spec, entry)
        if local is not None:
            files, eopts = local
            return _plan_files(spec, files, entry.get("format"), {**eopts, **opts}, entry.get("scheme"))
        hub = entry["hub"]
        dd = _open_hub(hub, entry.get("hub_config"), entry.get("hub_revision"), streaming=True)
        return _plan_datasets(spec, dd, _tag_key(opts) or entry.get("hub_tag_column"), lambda s: f"{hub}[{s}]",
                              hub_scheme(entry))
    if form == "split_list":
        return _plan_files(spec, _split_list(spec), None, opts)
    if form == "saved_splits":
        return _plan_datasets(spec, _saved_splits(path), _tag_key(opts), lambda s: f"{path}[{s}]")
    if form == "folder":
        chosen = _split_files(path)
        if chosen:
            return _plan_files(spec, chosen, None, opts)
        return _plan_datasets(spec, _open_hub(str(path), None, streaming=True), _tag_key(opts),
                              lambda s: f"{path}[{s}]")
    if form == "file":
        return _Plan(spec, splits=["data"])  # one file: no dev split (refused by stream_corpus)
    hub_name, config = _hub_id(spec)
    return _plan_datasets(spec, _open_hub(hub_name, config, streaming=True), _tag_key(opts),
                          lambda s: f"{hub_name}[{s}]")


def _pick(plan: _Plan, split: str) -> str | None:
    return next((a for a in SPLIT_ALIASES[split] if a in plan.others), None)


# -- the corpus ---------------------------------------------------------------------------------------------------

@dataclass
class StreamedCorpus:
    """A corpus for streamed training.

    Attributes:
        train: The training split, streamed (:class:`StreamedSplit`).
        dev: The dev sentences, read whole: ``(tokens, tags)``, NER tags in IOB2.
        test: The test sentences, likewise (``None`` without a test split).
        name: The corpus's name.
        sources: Where each split is read from (``train``, ``dev``, ``test``).
        corpus: The dev and test splits as a :class:`~seqtag.corpus.Corpus` (their lines and sources), for
            checks that point at their data, e.g. :func:`seqtag.workflow.check_gold_labels`.
    """

    train: StreamedSplit
    dev: list[TaggedSentence] | None
    test: list[TaggedSentence] | None
    name: str
    sources: dict[str, str]
    corpus: Corpus | None = field(default=None, repr=False)


def stream_corpus(spec: Any, task: str, *, train_scheme: str | None, tag_column: Any = None,
                  scheme: str | None = None, strict: bool = False, sample_size: int = STREAM_SAMPLE,
                  warn: Callable[[str], None] | None = None) -> StreamedCorpus:
    """A corpus whose training split is streamed: what ``--dataset`` names (or a dict of ``datasets`` splits).

    The dev and test splits are read whole, checked and repaired as :func:`seqtag.data.load_corpus` checks
    them. The training split's first ``sample_size`` sentences are read once, here: the NER scheme is
    declared (``scheme``, or the catalogue's) or detected on them and the dev and test splits; invalid
    sequences among them are reported (and repaired, or an error when ``strict``); the labels come from
    the ``ClassLabel`` features or from these sentences.

    Args:
        spec: A catalogue name, a folder of split files, ``split=path,...``, a hub id ``owner/name[:config]``
            (or ``hf:name[:config]``), a ``save_to_disk`` folder of splits, or a dict of split name to
            ``IterableDataset``/``Dataset``. A single file has no dev split and is refused.
        task: ``ner`` or ``pos``.
        train_scheme: The NER scheme batches are given in (``None``: the data's).
        tag_column, scheme, strict: As ``--tag-column``, ``--scheme`` and ``--strict``.
        sample_size: The first pass's cap, :data:`STREAM_SAMPLE` by default.
        warn: Called with a one-line message about repairs (default: print to stderr).

    Raises:
        DataError: No train or no dev split, bad data in the first pass or the dev and test splits.
        HubUnavailableError: A hub dataset that cannot be streamed from here.
    """
    if spec is None:
        raise DataError("streamed training needs --dataset")
    if sample_size < 1:
        raise DataError(f"the first pass's cap must be at least 1 sentence, not {sample_size}")
    if task == "ner" and train_scheme is not None and train_scheme not in SCHEMES:
        raise DataError(f"unknown tag scheme {train_scheme!r}; expected one of {', '.join(SCHEMES)}")
    warn = warn or _stderr
    plan = _plan(spec, _reader_options(tag_column, task))
    if plan.train is None:
        only = ", ".join(plan.splits)
        if plan.splits == ["data"]:
            raise DataError(f"streamed training needs the corpus's splits, with a dev split for model selection, "
                            f"and {plan.name!r} is one file; pass a folder (train and dev files) or "
                            f"train=PATH,dev=PATH")
        raise DataError(f"the corpus {plan.name!r} has no train split; its splits: {only}")
    dev_name, test_name = _pick(plan, "dev"), _pick(plan, "test")
    if dev_name is None:
        raise DataError(f"streamed training needs a dev split for model selection (it holds none out of a stream), "
                        f"and the corpus {plan.name!r} has only {', '.join(plan.splits)}; add a dev file "
                        f"(train=PATH,dev=PATH)")
    stream = plan.train
    read = {name: plan.others[name][0]() for name in (dev_name, test_name) if name is not None}
    sources = {name: plan.others[name][1] for name in read}
    first = list(itertools.islice((s for s in (stream.read(r) for r in iter_rows(stream.dataset, stream.source))
                                   if s is not None), sample_size))
    if not first:
        raise DataError("the training split has no sentences", stream.source)
    # the scheme: declared, else detected on the first pass and the dev and test splits, as load_corpus does
    noted: list[str] = []

    def note(message: str) -> None:
        noted.append(message)
        warn(message)

    detected = _check_tags(task, {"train": first, **read}, {"train": stream.source, **sources},
                           scheme or plan.scheme, strict, note)
    target = (train_scheme or detected) if task == "ner" else None
    if task == "ner":
        assert detected is not None and target is not None
        if stream.names is not None:
            types = {split_tag(t)[1] for t in stream.names} - {""}
        else:
            types = {split_tag(t)[1] for s in first for t in s.tags} - {""}
        labels = scheme_labels(types, target)
    else:
        labels = sorted(stream.names if stream.names is not None else {t for s in first for t in s.tags})
    split = StreamedSplit(plan.name, stream.source, detected, labels, [], task=task, train_scheme=target,
                          strict=strict, sample_size=sample_size, stream=stream, warn=warn,
                          warned=any(m.startswith(f"{stream.source}:") for m in noted))
    split.sample = [split.admit(s) for s in first]
    evaluation = Corpus(plan.name, task, {"dev": read[dev_name], **({"test": read[test_name]} if test_name else {})},
                        detected, {"dev": sources[dev_name], **({"test": sources[test_name]} if test_name else {})})
    eval_scheme = "IOB2" if task == "ner" else None
    return StreamedCorpus(
        train=split, dev=evaluation.sentences("dev", eval_scheme),
        test=evaluation.sentences("test", eval_scheme) if test_name else None, name=plan.name,
        sources={"train": stream.source, **evaluation.sources}, corpus=evaluation)
