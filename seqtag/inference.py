"""Prediction around the network, for every runtime: inputs to token lists, length-sorted batches, tag
ids to :class:`Prediction`s with entity spans and confidences.

A runtime (the PyTorch :class:`~seqtag.tagger.Tagger`, the onnxruntime
:class:`~seqtag.onnx_runtime.OnnxTagger`) gives a :class:`Predictor` one function, ``run_batch``, that
tags a batch of token lists; the predictor does everything else. The loop is tuned for throughput and
flat memory on long streams: a sentence is a list of words and a list of offsets (no object per
token), tag ids are decoded through a :class:`~seqtag.labels.LabelTable` (no string parsing), the
cycle collector is paused while a chunk is tagged, and the C heap's free memory is handed back to the
system between chunks.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy

from .config import build_part
from .context import InContext, encoder_reach, read_length
from .labels import LabelTable, tags_from_spans
from .tokenizers import Tokenizer, word_offsets

__all__ = ["Entity", "Prediction", "Predictor", "PredictingTagger", "RunBatch", "Sentence", "confidence_rows",
           "plan_batches", "limit_kernel_cache"]

Sentence = tuple[list[str], list[tuple[int, int]]]  # the words of a sentence and their character offsets
RunBatch = Callable[[list[list[str]]], tuple[list[list[int]], Optional[list[list[float]]]]]
"""Tags a batch of non-empty token lists: tag-id rows and confidence rows (``None``: no confidences),
each row at least as long as its sentence (padding past it is ignored)."""

DEFAULT_TOKENIZER = {"type": "whitespace.v1"}


@dataclass
class Entity:
    """An entity span: tokens ``[start, end)``, characters ``[start_char, end_char)``, a confidence in [0, 1]."""

    label: str
    start: int
    end: int
    start_char: int
    end_char: int
    text: str
    score: float


@dataclass
class Prediction:
    """The tags of one sentence (IOB2 for NER), a confidence per tag, and the entity spans (NER)."""

    tokens: list[str]
    tags: list[str]
    scores: list[float]
    entities: list[Entity] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Predictor:
    """Turns inputs into :class:`Prediction`s with a runtime's ``run_batch``.

    Args:
        tokenizer: Splits text inputs into tokens (token-list inputs are taken as they are).
        labels: The model's labels; tag id ``i`` is ``labels[i]``.
        task: ``"ner"`` (tags become IOB2 and entity spans) or ``"pos"``.
        scheme: The scheme of ``labels`` (``IOB1``, ``IOB2`` or ``BIOES``).
    """

    def __init__(self, tokenizer: Tokenizer, labels: Sequence[str], task: str, scheme: str,
                 encoder_reach: int = 0) -> None:
        self.tokenizer, self.task, self.scheme = tokenizer, task, scheme
        self.table = LabelTable(labels)
        self.encoder_reach = encoder_reach  # the tokens of document context a side the runtime's encoder reads

    @classmethod
    def from_config(cls, config: Mapping[str, Any], labels: Sequence[str], reads_context: bool = False) -> "Predictor":
        """The predictor of a saved tagger's config (its tokenizer, ``task`` and ``scheme``); with
        ``reads_context``, for a runtime that reads the document context a model was trained with."""
        model_cfg = config["model"]
        tokenizer = build_part("tokenizer", model_cfg.get("tokenizer", DEFAULT_TOKENIZER))
        reach = encoder_reach(model_cfg) if reads_context else 0
        return cls(tokenizer, labels, config.get("task", "ner"), config.get("scheme", "IOB2"), reach)

    @property
    def labels(self) -> Sequence[str]:
        return self.table.labels

    def tokenize(self, item: str | Sequence[str]) -> Sentence:
        """The words and character offsets of one input: a text (tokenized) or a token list."""
        if isinstance(item, str):
            toks = self.tokenizer(item)
            return [t.text for t in toks], [(t.start, t.end) for t in toks]
        words = item if isinstance(item, InContext) else list(item)  # a sentence keeps its document context
        return words, word_offsets(words)

    def make_prediction(self, words: list[str], offsets: list[tuple[int, int]], tag_ids: list[int],
                        conf: list[float] | None) -> Prediction:
        """One sentence's :class:`Prediction` from its tag ids and confidences (a row of
        :func:`confidence_rows`; ``None``: every score 1.0)."""
        table = self.table
        if isinstance(words, InContext):  # the prediction is the sentence's; its context is not tagged
            words = list(words)
        n = len(words)
        scores = conf[:n] if conf is not None else [1.0] * n
        if self.task != "ner":
            return Prediction(words, [table.labels[t] for t in tag_ids], scores, [], offsets)
        if tag_ids.count(table.outside) == n:  # most sentences name nothing
            return Prediction(words, ["O"] * n, scores, [], offsets)
        spans = table.spans(tag_ids)
        tags = [table.labels[t] for t in tag_ids] if self.scheme == "IOB2" else tags_from_spans(spans, n, "IOB2")
        entities = [Entity(label, start, end, offsets[start][0], offsets[end - 1][1], " ".join(words[start:end]),
                           round(sum(scores[start:end]) / (end - start), 6)) for start, end, label in spans]
        return Prediction(words, tags, scores, entities, offsets)

    def predict(self, inputs: str | Iterable[str | Sequence[str]], run_batch: RunBatch,
                batch_size: int = 128) -> list[Prediction]:
        """:meth:`predict_stream` on one text or a list of inputs, as a list."""
        if isinstance(inputs, str):
            inputs = [inputs]
        return list(self.predict_stream(inputs, run_batch, batch_size))

    def predict_stream(self, inputs: Iterable[str | Sequence[str]], run_batch: RunBatch, batch_size: int = 128,
                       chunk_size: int = 4096) -> Iterator[Prediction]:
        """Read ``chunk_size`` inputs, tokenize them, tag them in length-sorted batches with ``run_batch``
        and yield their predictions in input order; lazily, so memory stays flat on any stream.

        The cycle collector is paused while a chunk is tagged: predict allocates many small acyclic
        objects (freed by reference counting), and each full collection would walk the caller's whole heap.
        """
        chunk: list[Sentence] = []
        for item in inputs:
            chunk.append(self.tokenize(item))
            if len(chunk) >= chunk_size:
                with _gc_paused():
                    done = self._tag_chunk(chunk, run_batch, batch_size)
                chunk = []
                yield from done
                del done
                release_free_memory()
        if chunk:
            with _gc_paused():
                done = self._tag_chunk(chunk, run_batch, batch_size)
            yield from done

    def _tag_chunk(self, sents: list[Sentence], run_batch: RunBatch, batch_size: int) -> list[Prediction]:
        results: list[Prediction | None] = [None] * len(sents)
        lengths = [len(words) for words, _ in sents]
        # sorted and cut by what the encoder reads: with document context, the windows (sorted by the
        # sentences', CoNLL-2003's windows of 32 tokens a side padded 14% instead of 1%)
        reads = [read_length(words, self.encoder_reach) for words, _ in sents]
        order = sorted((i for i, n in enumerate(lengths) if n), key=reads.__getitem__)
        for i, n in enumerate(lengths):
            if not n:
                results[i] = Prediction([], [], [])
        make = self.make_prediction
        for start, stop in plan_batches([reads[i] for i in order], batch_size):
            idx = order[start:stop]
            words = [sents[i][0] for i in idx]
            tag_rows, conf_rows = run_batch(words)
            for row, i in enumerate(idx):
                n = lengths[i]
                results[i] = make(words[row], sents[i][1], tag_rows[row][:n],
                                  None if conf_rows is None else conf_rows[row][:n])
        return results  # type: ignore[return-value]


def confidence_rows(conf: Any) -> list[list[float]]:
    """A batch's confidences ``(batch, seq)`` (a numpy array, or a CPU tensor) as rows of floats rounded
    to 6 decimals, what predictions hold: one rounding for the batch, not one call per token."""
    return numpy.round(numpy.asarray(conf, dtype=numpy.float64), 6).tolist()


class PredictingTagger:
    """The prediction API every runtime's tagger offers (:class:`~seqtag.tagger.Tagger`,
    :class:`~seqtag.onnx_runtime.OnnxTagger`): a subclass sets ``predictor`` and ``labels`` and gives
    :meth:`run_batch`, its network."""

    predictor: Predictor
    labels: list[str]

    @property
    def task(self) -> str:
        """``"ner"`` or ``"pos"``."""
        return self.predictor.task

    @property
    def scheme(self) -> str:
        """The scheme of :attr:`labels` (predictions are IOB2 whatever it is)."""
        return self.predictor.scheme

    @property
    def tokenizer(self) -> Tokenizer:
        """What splits text inputs into tokens (replaceable, e.g. by a wrapper that reports bad lines)."""
        return self.predictor.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: Tokenizer) -> None:
        self.predictor.tokenizer = tokenizer

    def run_batch(self, with_confidence: bool) -> RunBatch:
        """The network as a :data:`RunBatch` (``with_confidence`` false: it may give no confidences)."""
        raise NotImplementedError

    def predict(self, inputs: str | Sequence[str] | Sequence[Sequence[str]] | Iterable[Any], batch_size: int = 128,
                with_confidence: bool = True) -> list[Prediction]:
        """Tag texts (tokenized by the tagger's tokenizer) or token lists, in length-sorted batches.

        ``inputs`` is one text, a list of texts, or a list of token lists (``[["EU", "rejects"]]``);
        ``with_confidence`` false: every score is 1.0 (faster where confidences cost extra work).
        """
        return self.predictor.predict(inputs, self.run_batch(with_confidence), batch_size)

    def predict_stream(self, inputs: Iterable[str | Sequence[str]], batch_size: int = 128,
                       with_confidence: bool = True, chunk_size: int = 4096) -> Iterator[Prediction]:
        """Like :meth:`predict` but lazy: reads ``chunk_size`` inputs at a time, so memory stays flat."""
        return self.predictor.predict_stream(inputs, self.run_batch(with_confidence), batch_size, chunk_size)


def plan_batches(lengths: Sequence[int], batch_size: int, max_cells: int = 3200, slack: float = 1.1,
                 min_padding: int = 128, min_size: int = 16) -> list[tuple[int, int]]:
    """Cut sentences sorted by ascending length into batches ``(start, stop)`` of at most ``batch_size``.

    Once a batch holds more than ``min_size`` sentences it is also closed before its padded size
    (sentences x longest length) passes ``max_cells`` and before its padding passes ``slack`` times its
    real tokens by more than ``min_padding`` cells. Padding costs recurrent steps at the full rate, while
    the CPU's recurrent kernels run about as fast per token from 64 to 256 sentences a batch and each
    extra call costs little: on CoNLL-2003 test (batch 256) these bounds pad 5% where 6,400 cells and
    a slack of 1.25 padded 11.5%, and predict about 6% faster (benchmarks/bench_limits.py)."""
    pieces: list[tuple[int, int]] = []
    start, total = 0, 0
    for j, n in enumerate(lengths):
        count = j - start + 1
        cells = count * n
        total += n
        if count > batch_size or (count > min_size and (cells > max_cells or (cells > slack * total
                                                                               and cells - total > min_padding))):
            pieces.append((start, j))
            start, total = j, n
    if lengths:
        pieces.append((start, len(lengths)))
    return pieces


# -- memory -----------------------------------------------------------------------------------------
def limit_kernel_cache(capacity: int = 64) -> None:
    """Cap oneDNN's cache of compiled kernels (1,024 by default, one per input shape) at ``capacity``.

    Streaming predict meets many batch shapes, so a small cache keeps memory flat as input grows; but a
    cache smaller than the shapes that recur compiles kernels again and again, every one of them on each
    pass, as the cache is least-recently-used: training's epochs repeat their batch shapes (16 kernels
    made a training step about 14% slower than 32 or 64), and so do passes over one corpus. CoNLL-2003
    test is 24 batches at batch 256 (32 kernels with the weights' two layout conversions, 34 beside a bare
    BiLSTM) and 31 at the default batch 128 (about 40): 32 recompiled every recurrence kernel on each pass.
    Only the recurrences use it (the character CNN is a plain matrix product). A million streamed tokens
    peak within 10% of the memory of 100,000 with 64 (1.044 through the CLI, 1.049 through the API; 32:
    1.028 and 1.038; 128: 1.075 and 1.087; benchmarks/bench_memory.py, 2026-12-04).

    oneDNN reads the variable when it compiles its first kernel, so this must run before the network
    first runs in the process. A user's own setting wins.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def release_free_memory() -> None:
    """Hand memory that is free inside the C heap back to the system (glibc's ``malloc_trim``), between
    chunks of a long stream: batches of ever new shapes leave freed blocks that the heap keeps resident,
    so without this a stream's resident memory creeps up with its length. A no-op elsewhere."""
    _malloc_trim()()


@functools.cache
def _malloc_trim() -> Callable[[], Any]:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            return functools.partial(ctypes.CDLL("libc.so.6").malloc_trim, 0)
        except (OSError, AttributeError):
            pass
    return lambda: None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector (see :meth:`Predictor.predict_stream`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
