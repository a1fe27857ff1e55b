"""Built-in tokenizers. Tokenizers import no torch: they turn text into tokens with character offsets."""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Sequence

from .. import registry
from ..errors import ConfigError

__all__ = ["Token", "Tokenizer", "WhitespaceTokenizer", "SpacyTokenizer", "PretokenizedTokenizer", "tokens_from_words",
           "word_offsets", "whitespace_pieces"]


class Token(NamedTuple):
    """A token and its character offsets ``[start, end)`` in the text it came from (an immutable tuple,
    cheap to create: predict makes one per word)."""

    text: str
    start: int
    end: int


class Tokenizer:
    """Base class: ``tokenizer(text)`` gives a list of :class:`Token`."""

    def __call__(self, text: str) -> list[Token]:
        raise NotImplementedError

    def pipe(self, texts: Sequence[str]) -> list[list[Token]]:
        return [self(text) for text in texts]


def word_offsets(words: Sequence[str], separator: str = " ") -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of pre-tokenized words, as if they were joined by ``separator``."""
    out, pos, gap = [], 0, len(separator)
    for word in words:
        end = pos + len(word)
        out.append((pos, end))
        pos = end + gap
    return out


def tokens_from_words(words: Sequence[str], separator: str = " ") -> list[Token]:
    """Tokens for pre-tokenized words, with offsets as if the words were joined by ``separator``."""
    return [Token(word, start, end) for word, (start, end) in zip(words, word_offsets(words, separator))]


_WS = re.compile(r"\S+")


@registry.tokenizers.register("whitespace.v1")
class WhitespaceTokenizer(Tokenizer):
    """Splits on runs of whitespace."""

    def __call__(self, text: str) -> list[Token]:
        return [Token(m.group(), m.start(), m.end()) for m in _WS.finditer(text)]


@registry.tokenizers.register("spacy.v1")
class SpacyTokenizer(Tokenizer):
    """spaCy's rule-based tokenizer for a language (a blank pipeline), e.g. ``lang = "en"``.

    Texts of any length are taken: one longer than :attr:`max_chars` (or the pipeline's ``max_length``,
    past which spaCy refuses a text) is tokenized in pieces cut at whitespace, which gives the tokens
    and offsets of the whole text (see :func:`whitespace_pieces`).

    Args:
        lang: The spaCy language code whose rules split the text (``"en"``, ``"de"``, ``"xx"`` for many
            languages at once); one spaCy does not know is an error when the first text is tokenized.
    """

    # spaCy's vocabulary keeps every string it has seen; a long stream of text (new names, numbers,
    # URLs) would grow it without end, so the blank pipeline is made afresh after this many new strings
    max_new_strings = 20_000
    # the longest piece handed to spaCy at once: a Doc of a few thousand tokens at a time keeps the
    # memory of a huge line to its tokens, and the vocabulary check above runs between pieces
    max_chars = 100_000

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang
        self._nlp: Any = None
        self._base_strings = 0

    @property
    def nlp(self) -> Any:
        if self._nlp is not None and len(self._nlp.vocab.strings) - self._base_strings > self.max_new_strings:
            self._nlp = None
        if self._nlp is None:
            import spacy

            try:
                self._nlp = spacy.blank(self.lang)
            except Exception as exc:  # spaCy raises ImportError/KeyError subclasses here
                raise ConfigError(f"spacy.v1 tokenizer: spaCy has no language {self.lang!r} ({exc})") from None
            self._base_strings = len(self._nlp.vocab.strings)
        return self._nlp

    def __call__(self, text: str) -> list[Token]:
        nlp = self.nlp
        limit = max(1, min(self.max_chars, nlp.max_length))
        if len(text) <= limit:
            return _spacy_tokens(nlp.tokenizer(text), 0)
        out: list[Token] = []
        for start, end in whitespace_pieces(text, limit):
            out.extend(_spacy_tokens(self.nlp.tokenizer(text[start:end]), start))
        return out

    def pipe(self, texts: Sequence[str]) -> list[list[Token]]:
        # spaCy's own Tokenizer.pipe calls the tokenizer once per text too
        return [self(text) for text in texts]


def _spacy_tokens(doc: Any, shift: int) -> list[Token]:
    """The tokens of a spaCy Doc that are not whitespace, offsets moved by ``shift``."""
    return [Token(t.text, t.idx + shift, t.idx + shift + len(t.text)) for t in doc if not t.is_space]


_SPACE = re.compile(r"\s")


def whitespace_pieces(text: str, limit: int) -> list[tuple[int, int]]:
    """Cut ``text`` into pieces ``[start, end)`` of at most ``limit`` characters, each cut at a whitespace
    character (the piece after a cut starts with it); a stretch of ``limit`` characters without whitespace
    is cut at the limit.

    A tokenizer that splits at whitespace first (spaCy's does: ``str.isspace``, like ``\\s``) gives the
    same non-space tokens for the pieces as for the whole text, since no piece boundary falls inside a word.
    """
    pieces: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while n - start > limit:
        stop = start + limit
        # the last whitespace at or before the limit (text[stop] exists: more than limit characters are left)
        cut = text.rfind(" ", start + 1, stop + 1)  # the common case, found without a regex
        if cut < 0:
            found = None
            for found in _SPACE.finditer(text, start + 1, stop + 1):  # noqa: B007 - the last match is wanted
                pass
            cut = found.start() if found is not None else stop
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


@registry.tokenizers.register("pretokenized.v1")
class PretokenizedTokenizer(Tokenizer):
    """Input that is already tokenized: tokens are separated by exactly ``separator`` (one space by default).

    Args:
        separator: The text between two tokens (not empty); where it stands twice in a row there is no
            empty token between, and the offsets still count it.
    """

    def __init__(self, separator: str = " ") -> None:
        if not separator:
            raise ConfigError("pretokenized.v1: separator must not be empty")
        self.separator = separator

    def __call__(self, text: str) -> list[Token]:
        out: list[Token] = []
        pos = 0
        for word in text.split(self.separator):
            if word:
                out.append(Token(word, pos, pos + len(word)))
            pos += len(word) + len(self.separator)
        return out
