"""A loaded corpus: its sentences per split, one label index, each split converted to a tag scheme once.

A :class:`Corpus` keeps the sentences as they were read (NER tags valid in the corpus's ``scheme``
after loading checked and repaired them). A split converted to a tag scheme is kept, so training, its
dev scoring and ``seqtag evaluate`` never convert the same split twice, and tags stay strings until
the trainer maps them to the model's ids, once. The Hugging Face ``DatasetDict`` view of the corpus
(``tags`` as ``ClassLabel`` ids over :attr:`Corpus.labels`) is built on first use only.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from .errors import DataError
from .labels import convert
from .readers import Sentence

__all__ = ["Corpus", "SPLIT_ALIASES", "TaggedSentence", "token_line"]

SPLIT_ALIASES = {"dev": ("dev", "validation", "valid", "testa"), "test": ("test", "testb"), "train": ("train",)}
SINGLE = "data"  # the name of the one split of a corpus read from a single file

TaggedSentence = tuple[list[str], list[str]]  # (tokens, tags)

# sources with a row per sentence (JSON lines, Parquet, datasets given as ``name[split]``), not a line per token
_ROW_SOURCES = (".jsonl", ".json", ".parquet", "]")


def token_line(source: str, line: int, token: int) -> int:
    """The line of a sentence's ``token`` in ``source`` for messages: in CoNLL files each token has its
    line (``line + token``); in sources with a row per sentence it is the sentence's row, ``line``."""
    return line if source.endswith(_ROW_SOURCES) else line + token


class Corpus:
    """A loaded corpus: its splits, its original tag scheme (NER) and where each split came from.

    Args:
        name: What the corpus was loaded from (a catalogue name, a path, a hub id).
        task: ``ner`` or ``pos``.
        read: The sentences of each split, as read (NER tags valid in ``scheme``).
        scheme: The NER tag scheme of the data (``None`` for POS).
        sources: Where each split came from (a file, ``name[split]``), for messages that point at data.
    """

    def __init__(self, name: str, task: str, read: Mapping[str, list[Sentence]], scheme: str | None = None,
                 sources: Mapping[str, str] | None = None) -> None:
        self.name, self.task, self.scheme = name, task, scheme
        self.sources = dict(sources or {})
        self._read = dict(read)
        # the one label index: the ``ClassLabel`` names of every split
        self.labels: list[str] = sorted({t for sents in self._read.values() for s in sents for t in s.tags})
        self._converted: dict[tuple[str, str | None], list[TaggedSentence]] = {}
        self._datasets: Any = None

    @property
    def split_names(self) -> list[str]:
        """The names of the splits, as stored (``validation``, not ``dev``)."""
        return list(self._read)

    @property
    def single(self) -> bool:
        """Whether the corpus is one file or one saved dataset: its one split, ``data``, serves as any split."""
        return self.split_names == [SINGLE]

    @property
    def splits(self) -> Any:
        """The corpus as a ``datasets.DatasetDict``: ``tokens``, ``tags`` (``ClassLabel`` ids over
        :attr:`labels`) and ``line`` (where each sentence starts in its file, or its row number)."""
        if self._datasets is None:
            import datasets

            features = datasets.Features({
                "tokens": datasets.Sequence(datasets.Value("string")),
                "tags": datasets.Sequence(datasets.ClassLabel(names=self.labels)),
                "line": datasets.Value("int64"),
            })
            index = {t: i for i, t in enumerate(self.labels)}
            self._datasets = datasets.DatasetDict({
                split: datasets.Dataset.from_dict(
                    {"tokens": [s.tokens for s in sents], "tags": [[index[t] for t in s.tags] for s in sents],
                     "line": [s.line for s in sents]}, features=features)
                for split, sents in self._read.items()})
        return self._datasets

    def has_split(self, name: str) -> bool:
        """Whether the corpus has the split ``name`` (``dev`` also finds ``validation``/``testa``, ``test``
        finds ``testb``). A corpus of one file has only the split ``data``."""
        return any(alias in self._read for alias in SPLIT_ALIASES.get(name, (name,)))

    def resolve(self, name: str) -> str:
        """The stored name of the split ``name``: an alias found, or ``data`` for a corpus of one file,
        which serves as every split (training holds its dev sentences out with :meth:`hold_out`)."""
        for alias in SPLIT_ALIASES.get(name, (name,)):
            if alias in self._read:
                return alias
        if self.single:
            return SINGLE
        raise DataError(f"the corpus {self.name!r} has no split {name!r}; its splits: {', '.join(self._read)}")

    def split(self, name: str) -> Any:
        """A split as a ``datasets.Dataset`` (see :meth:`resolve` for the names it answers)."""
        return self.splits[self.resolve(name)]

    def lines(self, name: str) -> list[int]:
        """The line where each sentence of a split starts in its file (its row number in a dataset)."""
        return [s.line for s in self._read[self.resolve(name)]]

    def source(self, name: str) -> str:
        """Where the split ``name`` came from: its file, or ``name[split]`` for a dataset."""
        split = self.resolve(name)
        return self.sources.get(split, split)

    def sentences(self, name: str, scheme: str | None = None, context: int = 0) -> list[TaggedSentence]:
        """``(tokens, tags)`` pairs of a split, NER tags converted to ``scheme`` (``None``: as read).

        The conversion is done on the first request for a split and scheme, and kept; the list
        returned is the caller's, the token and tag lists inside are shared (read them, do not change them).
        ``context``: each token list is an :class:`~seqtag.context.InContext` with up to that many tokens
        of the sentences around it in its document (see :mod:`seqtag.context`).
        """
        if context:
            from .context import with_context

            plain = self.sentences(name, scheme)
            read = self._read[self.resolve(name)]
            windows = with_context([t for t, _ in plain], [s.document for s in read], context)
            return [(w, tags) for w, (_, tags) in zip(windows, plain)]
        split = self.resolve(name)
        key = (split, scheme if self.task == "ner" else None)
        pairs = self._converted.get(key)
        if pairs is None:
            source = self.scheme or "IOB2"
            if key[1] is None:
                pairs = [(s.tokens, s.tags) for s in self._read[split]]
            else:
                pairs = [(s.tokens, convert(s.tags, source, key[1])) for s in self._read[split]]
            self._converted[key] = pairs
        return list(pairs)

    def hold_out(self, fraction: float = 0.1, seed: int = 0) -> "Corpus":
        """This corpus with a dev split held out of its training sentences.

        ``fraction`` of the train split (of the one split of a corpus of one file), at least one
        sentence, is drawn by a shuffle seeded with ``seed`` and becomes the split ``dev``; the rest
        is ``train``. Both keep the corpus's order; the other splits stay (a dev split there was is replaced).
        """
        source = self.resolve("train")
        sents = self._read[source]
        order = list(range(len(sents)))
        random.Random(seed).shuffle(order)
        held = set(order[: max(1, int(len(sents) * fraction))])
        kept = [k for k in self._read if k != source and k not in SPLIT_ALIASES["dev"]]
        read = {"train": [s for i, s in enumerate(sents) if i not in held],
                "dev": [s for i, s in enumerate(sents) if i in held], **{k: self._read[k] for k in kept}}
        sources = {k: self.sources[k] for k in kept if k in self.sources}
        if source in self.sources:
            sources.update(train=self.sources[source], dev=self.sources[source])
        return Corpus(self.name, self.task, read, self.scheme, sources)
