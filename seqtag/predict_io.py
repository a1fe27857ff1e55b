"""What ``seqtag predict`` reads and writes: text lines or CoNLL columns from a file, a pipe or a terminal
in, JSON lines or CoNLL out.

Nothing a line holds stops the stream: a line the model's tokenizer cannot take is reported in one
``warning:`` line and tagged as empty, so output records still match input lines. ``--input-format auto``
decides by the file name where that tells (``.conll``...), or else by the first lines' content, and says
on standard error what it chose. A terminal is answered line by line.

While a file or a pipe is tagged into a file or a pipe, a progress bar is drawn on standard error when
that is a terminal (:func:`seqtag.tables.progress_bar`): how far through the file the tagged inputs
reach (when its size is known) and how many have been written. :func:`counting_tokens` gives
``seqtag evaluate`` its bar.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import stat
import sys
from typing import Any, Callable, Iterable, Iterator, Sequence, TextIO

from .context import context_size, iter_with_context
from .errors import ConfigError
from .readers import conll_blocks, decode_lines
from .tokenizers import Token, Tokenizer

__all__ = ["predict_lines", "input_lines", "read_conll_blocks", "sniff_format", "counting_tokens", "CONLL_SUFFIXES"]

# file names that decide ``--input-format auto`` without looking inside
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio", ".tsv")
# how much ``auto`` reads before deciding: enough for a few CoNLL sentences, and bounded in characters
# so that a file of huge text lines is not held in memory to be sniffed
SNIFF_LINES = 200
SNIFF_CHARS = 100_000


def input_lines(stream: TextIO, where: str) -> Iterator[str]:
    """Lines of a predict input without line ends: UTF-8 with a BOM dropped and CRLF accepted.

    Bytes that are not UTF-8 are a :class:`DataError` naming the line (read from the byte stream
    beneath when there is one, so the line number is exact).
    """
    raw = getattr(stream, "buffer", None)
    if raw is None:  # a text stream without bytes beneath (io.StringIO)
        for lineno, line in enumerate(stream, 1):
            yield (line.lstrip("\ufeff") if lineno == 1 else line).rstrip("\r\n")
        return
    for _, text in decode_lines(iter(raw.readline, b""), where, "input"):  # click's stdin wrapper is not iterable
        yield text


def read_conll_blocks(lines: Iterable[str], context: int = 0) -> Iterator[list[str]]:
    """The token lists of CoNLL column lines: the first column of each line, a block per sentence.

    Sentences are cut as :func:`seqtag.readers.read_conll` cuts them (the same block reader: blank
    lines end a sentence, ``-DOCSTART-`` lines are skipped and end one too), as the lines stream by.
    ``context``: each comes with up to that many tokens of its document around it (an
    :class:`~seqtag.context.InContext`; documents begin at ``-DOCSTART-`` lines), for a model trained so.
    """
    blocks = conll_blocks(enumerate(lines, 1), _first_column)
    if not context:
        for _, _, tokens in blocks:
            yield tokens
        return
    yield from iter_with_context(((tokens, document) for _, document, tokens in blocks), context)


def _first_column(lineno: int, line: str, cols: list[str]) -> str:
    return cols[0]


def sniff_format(lines: Iterator[str]) -> tuple[str, list[str]]:
    """``("conll", read)`` or ``("text", read)``: the format the first lines look like, and those lines.

    Column files are told by a ``-DOCSTART-`` line, or by blank lines between sentences together with
    the same number of whitespace-separated columns on every other line (one column too: a token per
    line) and at least one sentence of two lines or more. Reading stops at :data:`SNIFF_LINES` lines
    (or :data:`SNIFF_CHARS` characters), at the first line that breaks the column count, or at the first
    blank line after two sentences. The caller chains ``read`` back before the rest of ``lines``.
    """
    read: list[str] = []
    chars = 0
    ncols = 0  # the column count of the first non-blank line
    blocks = 0  # sentences started
    current = 0  # lines in the sentence being read
    longest = 0
    for line in lines:
        read.append(line)
        chars += len(line)
        cols = line.split()
        if not cols:
            if current and blocks >= 2:
                break
            current = 0
        elif cols[0] == "-DOCSTART-":
            return "conll", read
        elif ncols and len(cols) != ncols:
            return "text", read
        else:
            ncols = ncols or len(cols)
            blocks += current == 0
            current += 1
            longest = max(longest, current)
        if len(read) >= SNIFF_LINES or chars >= SNIFF_CHARS:
            break
    return ("conll" if blocks >= 2 and longest >= 2 else "text"), read


class LineTokenizer(Tokenizer):
    """A model's tokenizer for ``predict``: a line it cannot take (any exception) is reported in one
    ``warning:`` line with its ``file:line`` and gives no tokens, so its record stays in place, empty.

    A :class:`ConfigError` (a spaCy language that is not installed) is an error of every line alike and
    is raised as it is.
    """

    def __init__(self, inner: Tokenizer, where: str, log: Callable[[str], None]) -> None:
        self.inner, self.where, self.log = inner, where, log
        self.lineno = 0

    def numbered(self, lines: Iterable[str]) -> Iterator[str]:
        """``lines``, noting each one's number: the tagger tokenizes an input as soon as it takes it,
        before it takes the next, so the number noted is that of the line being tokenized."""
        for lineno, line in enumerate(lines, 1):
            self.lineno = lineno
            yield line

    def __call__(self, text: str) -> list[Token]:
        try:
            return self.inner(text)
        except ConfigError:
            raise
        except Exception as exc:  # whatever a tokenizer (a plugin's too) raises on one line
            detail = " ".join(f"{type(exc).__name__}: {exc}".split()) if str(exc) else type(exc).__name__
            if len(detail) > 160:
                detail = detail[:157] + "..."
            self.log(f"warning: {self.where}:{self.lineno}: cannot tokenize this line ({detail}); skipped")
            return []

    def pipe(self, texts: Sequence[str]) -> list[list[Token]]:
        return [self(text) for text in texts]


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty (a plain iterable), or a closed file
        return False


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _file_size(stream: Any) -> int | None:
    """The size in bytes of the regular file beneath ``stream`` (``None`` for a pipe, a terminal...)."""
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (io.StringIO), or a closed one
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _show_progress(progress: bool | None, interactive: bool) -> bool:
    """Draw the bar: as asked, or (``None``) when standard error is a terminal and the input and the
    output are not (a terminal's user sees each answer; the bar would tear the lines on screen)."""
    if progress is not None:
        return progress
    from .tables import is_terminal

    return not interactive and is_terminal(sys.stderr) and not is_terminal(sys.stdout)


def predict_lines(model: str, stream: TextIO, input_format: str = "auto", output_format: str = "auto",
                  batch_size: int = 128, log: Callable[[str], None] = _stderr, verify: bool = True,
                  device: str | None = None, progress: bool | None = None, int8: bool = False,
                  precision: str = "fp32") -> Iterator[str]:
    """Tag a stream: text lines (tokenized by the model) or CoNLL tokens; yield CoNLL or JSON lines.

    ``log`` gets the lines meant for standard error: the format ``auto`` chose, and a ``warning:`` for
    each line the tokenizer cannot take. From a terminal each line (each CoNLL block) is tagged and
    yielded as soon as it is read; other input is tagged in chunks, which is faster. ``verify``: check
    the model's files against the SHA-256 manifest in its ``meta.json``. ``device``: where the network
    runs (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``; ``None``: the CPU); an unknown or absent one
    is a one-line :class:`~seqtag.errors.DeviceError`, raised when the first line is asked for, before
    any input is read. ``progress``: draw a bar on standard error (``None``: when it is a terminal and
    neither the input nor standard output is; ``log``'s lines then go above the bar). ``precision``: run the
    model as saved (``fp32``), dynamically quantized (``int8``) or with its recurrences in bfloat16 (``bf16``),
    the last two on the CPU (:func:`seqtag.quantize.load_precision`); ``int8=True`` is ``precision="int8"``.
    """
    from .quantize import load_precision
    from .tables import progress_bar
    from .tagger import Tagger

    tagger: Tagger = load_precision(model, "int8" if int8 else precision, verify=verify, device=device)
    name = str(getattr(stream, "name", "-"))
    interactive = _is_terminal(stream)
    show = _show_progress(progress, interactive)
    size = _file_size(stream) if show else None
    with progress_bar(f"tagging {os.path.basename(name)}", "inputs", total=size, enabled=show) as bar:
        if bar.shown:
            log = bar.print
        yield from _predict(tagger, stream, name, interactive, input_format, output_format, batch_size, log,
                            bar if bar.shown else None)


def _predict(tagger: Any, stream: TextIO, name: str, interactive: bool, input_format: str, output_format: str,
             batch_size: int, log: Callable[[str], None], bar: Any) -> Iterator[str]:
    """:func:`predict_lines` once the model is loaded; ``bar``: a :class:`~seqtag.tables.Bar` to move."""
    lines: Iterator[str] = input_lines(stream, name)
    read = 0  # bytes read so far, about (line ends counted as one byte)
    if bar is not None:
        def counted(source: Iterator[str]) -> Iterator[str]:
            nonlocal read
            for line in source:
                read += len(line.encode("utf-8", "surrogatepass")) + 1
                yield line

        lines = counted(lines)
    if input_format == "auto":
        if name.endswith(CONLL_SUFFIXES):
            input_format = "conll"
        elif interactive:  # sniffing would wait for lines not typed yet
            input_format = "text"
        else:
            input_format, sniffed = sniff_format(lines)
            lines = itertools.chain(sniffed, lines)
            if input_format == "conll":
                log(f"reading {name} as CoNLL columns (first column: tokens); pass --input-format text "
                    f"to read it as text")
            else:
                log(f"reading {name} as text (one text per line); pass --input-format conll to read it "
                    f"as CoNLL columns")
    if output_format == "auto":
        output_format = "conll" if input_format == "conll" else "jsonl"
    if bar is not None:
        bar.set_unit("sentences" if input_format == "conll" else "lines")
    inputs: Iterable[Any]
    if input_format == "conll":
        inputs = read_conll_blocks(lines, context_size(tagger.config["model"]))
    else:
        guard = LineTokenizer(tagger.tokenizer, name, log)
        tagger.tokenizer = guard
        inputs = guard.numbered(lines)
    ends: collections.deque[int] = collections.deque()  # where in the file each input not yet written ends
    if bar is not None:
        def marked(source: Iterable[Any]) -> Iterator[Any]:
            for item in source:
                ends.append(read)
                yield item

        inputs = marked(inputs)
    # a chunk of one input answers a terminal at once; the default chunks keep the batches full
    preds = tagger.predict_stream(inputs, batch_size=batch_size, chunk_size=1) if interactive \
        else tagger.predict_stream(inputs, batch_size=batch_size)
    for pred in preds:
        if output_format == "jsonl":
            yield json.dumps(pred.to_dict(), ensure_ascii=False)
        else:
            yield "\n".join(f"{tok}\t{tag}" for tok, tag in zip(pred.tokens, pred.tags)) + "\n"
        if bar is not None:
            bar.advance(1, completed=ends.popleft())


@contextlib.contextmanager
def counting_tokens(tagger: Any, bar: Any) -> Iterator[Any]:
    """Move ``bar`` (a :class:`~seqtag.tables.Bar`) while ``tagger`` predicts inside the block: each
    :meth:`predict` call sets the bar's total to its inputs' tokens, each batch the network tags
    advances it by the batch's tokens. The batches are the ones ``predict`` makes anyway; the tagger
    is as it was after the block."""
    if not bar.shown:
        yield tagger
        return
    run_batch, predict = tagger.run_batch, tagger.predict

    def counting_run_batch(with_confidence: bool) -> Callable[[list[list[str]]], Any]:
        run = run_batch(with_confidence)

        def counted(words: list[list[str]]) -> Any:
            out = run(words)
            bar.advance(sum(len(w) for w in words))
            return out

        return counted

    def counting_predict(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(inputs, str):
            inputs = list(inputs)
            if all(not isinstance(x, str) for x in inputs):  # token lists: their tokens are known now
                bar.start(sum(len(x) for x in inputs))
        return predict(inputs, *args, **kwargs)

    own = {k: v for k, v in vars(tagger).items() if k in ("run_batch", "predict")}
    tagger.run_batch, tagger.predict = counting_run_batch, counting_predict
    try:
        yield tagger
    finally:
        for key in ("run_batch", "predict"):  # the class's methods again (or what the tagger itself had)
            if key in own:
                setattr(tagger, key, own[key])
            else:
                delattr(tagger, key)
