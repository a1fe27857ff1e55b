"""Built-in tokenizers. Tokenizers import no torch: they turn text into tokens with character offsets."""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Sequence

from .. import registry
from ..errors import ConfigError

__all__ = ["Token", "Tokenizer", "WhitespaceTokenizer", "SpacyTokenizer", "PretokenizedTokenizer", "tokens_from_words",
           "word_offsets"]


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
    """spaCy's rule-based tokenizer for a language (a blank pipeline), e.g. ``lang = "en"``."""

    # spaCy's vocabulary keeps every string it has seen; a long stream of text (new names, numbers,
    # URLs) would grow it without end, so the blank pipeline is made afresh after this many new strings
    max_new_strings = 20_000

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
        doc = self.nlp.make_doc(text)
        return [Token(t.text, t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]

    def pipe(self, texts: Sequence[str]) -> list[list[Token]]:
        return [
            [Token(t.text, t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]
            for doc in self.nlp.tokenizer.pipe(texts)
        ]


@registry.tokenizers.register("pretokenized.v1")
class PretokenizedTokenizer(Tokenizer):
    """Input that is already tokenized: tokens are separated by exactly ``separator`` (one space by default)."""

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
