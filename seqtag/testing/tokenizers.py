"""The tokenizer contract: tokens whose offsets point into the text, in order, none for blank text."""

from __future__ import annotations

from typing import Any, Mapping

from .common import build, fail

__all__ = ["contract_tokenizer"]

# Leading, doubled and trailing white space, a tab, a newline, non-ASCII letters and a one-letter text.
TEXTS = ["John Smith visited Tokyo.", "  two  spaces\tand a tab\n", "Ünïcödé  wörds, too!", "x"]


def contract_tokenizer(name: str, cfg: Mapping[str, Any], atol: float = 0.0) -> None:
    """Check the tokenizer ``name`` built from ``cfg`` (``atol`` is unused: tokens are compared exactly).

    Raises:
        AssertionError: ``[seqtag.testing contract] tokenizer 'NAME': ...``.
    """
    from ..tokenizers import Token

    tok = build("tokenizer", name, cfg)
    for text in TEXTS:
        toks = tok(text)
        if not isinstance(toks, list) or not all(isinstance(t, Token) for t in toks):
            raise fail("contract", "tokenizer", name, f"must return a list of seqtag.tokenizers.Token, "
                       f"got {type(toks).__name__} for {text!r}")
        if not toks:
            raise fail("contract", "tokenizer", name, f"returned no tokens for {text!r}")
        end = 0
        for t in toks:
            if text[t.start:t.end] != t.text:
                raise fail("contract", "tokenizer", name, f"token {t.text!r} has offsets [{t.start}, {t.end}) "
                           f"that point at {text[t.start:t.end]!r} in {text!r}")
            if t.start < end or not t.text or t.text.isspace():
                raise fail("contract", "tokenizer", name, f"tokens must be non-empty, non-space, in order and "
                           f"not overlap; got {[(x.text, x.start, x.end) for x in toks]} for {text!r}")
            end = t.end
    for text in ("", "   \n\t "):
        if tok(text):
            raise fail("contract", "tokenizer", name, f"returned tokens for the blank text {text!r}")
    if tok.pipe(TEXTS) != [tok(t) for t in TEXTS]:
        raise fail("contract", "tokenizer", name, "pipe(texts) differs from [tokenizer(t) for t in texts]")
