"""Document context: the tokens around a sentence in its document, fed to the encoder but not tagged.

With ``model.context = N`` (tokens on each side; 0, the default, is off) a sentence of a corpus is given to
the network with up to ``N`` tokens of the sentences before it and ``N`` of those after it in the same
document (CoNLL files mark documents with ``-DOCSTART-`` lines; without them a file is one document). The
embedding and the encoder run over the whole window; the head scores, trains and decodes the centre
sentence alone (:meth:`seqtag.model.TaggerModel.encode` picks its positions out of the encoder's output).
With ``model.context_scope = "embedding"`` only the embedding reads the window (a transformer's vectors see
the document; word and character vectors are the same either way) and the encoder runs over the sentence
alone, so an epoch costs the encoder what it costs without context. Between the two, ``model.encoder_context
= K`` (below ``N``) gives the encoder the nearest ``K`` tokens of context on each side out of the embedding's
``N``: :func:`encoder_reach` is what the encoder reads, and batches are bucketed by it (:func:`read_length`).

The window rides with the tokens: :class:`InContext` is the centre sentence's token list, which every
part of seqtag reads as before, carrying ``left`` and ``right``. Corpora (training, scoring), ``seqtag
predict`` on CoNLL input (:func:`iter_with_context` as the blocks stream by) and the spaCy component (the
pieces of a doc cut at ``max_tokens``) give it; a text or a plain token list, and an exported ONNX model,
tag the sentence alone, as a model without context tags it.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from .errors import ConfigError
from .jsonio import shown

__all__ = ["InContext", "window", "read_length", "with_context", "iter_with_context", "context_size",
           "context_scope", "encoder_reach", "CONTEXT_SCOPES"]


class InContext(list[str]):
    """A sentence's tokens (the list itself) with ``left`` and ``right``: the tokens before and after it
    in its document, given to the encoder as context and not tagged."""

    __slots__ = ("left", "right")

    def __init__(self, tokens: Iterable[str], left: Sequence[str] = (), right: Sequence[str] = ()) -> None:
        super().__init__(tokens)
        self.left, self.right = list(left), list(right)

    def __repr__(self) -> str:
        return f"InContext({list(self)!r}, left={len(self.left)} tokens, right={len(self.right)} tokens)"


def window(tokens: Sequence[str]) -> tuple[list[str], int]:
    """The tokens the encoder reads for a sentence and where the sentence starts among them: its
    context around it for an :class:`InContext`, else the sentence alone at 0."""
    if isinstance(tokens, InContext) and (tokens.left or tokens.right):
        return [*tokens.left, *tokens, *tokens.right], len(tokens.left)
    return list(tokens), 0


def read_length(tokens: Sequence[str], reach: int) -> int:
    """The positions the encoder reads for a sentence, what batches are bucketed by: the sentence's own and
    up to ``reach`` tokens of its context on each side (:func:`encoder_reach`; 0: the sentence alone, as in
    a runtime that tags sentences alone)."""
    if reach and isinstance(tokens, InContext):
        return min(reach, len(tokens.left)) + len(tokens) + min(reach, len(tokens.right))
    return len(tokens)


def with_context(sentences: Sequence[Sequence[str]], documents: Sequence[int], size: int) -> list[InContext]:
    """Each sentence with up to ``size`` tokens of the sentences before and after it that share its
    document number (``documents``, one per sentence, in reading order): :func:`iter_with_context` on
    a list."""
    if len(documents) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences but {len(documents)} document numbers")
    return list(iter_with_context(zip(sentences, documents), size))


def iter_with_context(sentences: Iterable[tuple[Sequence[str], int]], size: int) -> Iterator[InContext]:
    """``(tokens, document number)`` pairs in reading order, as they stream by, to each sentence with up
    to ``size`` tokens of the sentences before and after it in the same document. Sentences of other
    documents are never context, and the context does not skip over them. A sentence is given once
    ``size`` tokens after it are read, its document has ended or the stream has; only the sentences its
    context may still need are held."""
    held: list[tuple[Sequence[str], int]] = []  # sentences read: the next one to give is held[nxt]
    nxt = 0

    def complete(i: int) -> bool:  # held[i]'s right context is all read
        doc, after = held[i][1], 0
        for tokens, d in held[i + 1:]:
            if d != doc:
                return True
            after += len(tokens)
            if after >= size:
                return True
        return False

    def give(i: int) -> InContext:
        tokens, doc = held[i]
        left: list[str] = []
        j = i - 1
        while j >= 0 and len(left) < size and held[j][1] == doc:
            left[:0] = held[j][0]
            j -= 1
        right: list[str] = []
        j = i + 1
        while j < len(held) and len(right) < size and held[j][1] == doc:
            right.extend(held[j][0])
            j += 1
        return InContext(tokens, left[len(left) - size:] if len(left) > size else left, right[:size])

    def forget() -> None:  # drop the sentences no context to come can reach
        nonlocal nxt
        while nxt > 0 and (held[0][1] != held[nxt][1] or sum(len(t) for t, _ in held[1:nxt]) >= size):
            del held[0]
            nxt -= 1

    for item in sentences:
        held.append(item)
        while nxt < len(held) - 1 and complete(nxt):
            yield give(nxt)
            nxt += 1
            forget()
    while nxt < len(held):
        yield give(nxt)
        nxt += 1


def context_size(model_cfg: Mapping[str, Any]) -> int:
    """``model.context`` of a model table: the tokens of context on each side (0: none)."""
    size = model_cfg.get("context", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ConfigError(f"[model] context must be a whole number of tokens >= 0, got {shown(size)}")
    return size


CONTEXT_SCOPES = ("encoder", "embedding")


def context_scope(model_cfg: Mapping[str, Any]) -> str:
    """``model.context_scope`` of a model table: the last part that reads the document context, ``"encoder"``
    (the default: the embedding and the encoder run over the window) or ``"embedding"`` (the embedding runs
    over the window, the encoder over the sentence alone)."""
    scope = model_cfg.get("context_scope", "encoder")
    if scope not in CONTEXT_SCOPES:
        raise ConfigError(f"[model] context_scope must be one of {', '.join(map(repr, CONTEXT_SCOPES))}, "
                          f"got {shown(scope)}")
    return scope


def encoder_reach(model_cfg: Mapping[str, Any]) -> int:
    """The tokens of document context on each side that the encoder reads: ``model.encoder_context`` (0 to
    ``model.context``) where it is set, else all of ``model.context`` with ``context_scope = "encoder"`` and
    none with ``"embedding"``. The embedding reads all of ``model.context`` either way."""
    size, scope = context_size(model_cfg), context_scope(model_cfg)
    if "encoder_context" not in model_cfg:
        return size if scope == "encoder" else 0
    reach = model_cfg["encoder_context"]
    if isinstance(reach, bool) or not isinstance(reach, int) or not 0 <= reach <= size:
        raise ConfigError(f"[model] encoder_context must be a whole number of tokens from 0 to model.context "
                          f"({size}), got {shown(reach)}")
    if scope != "encoder":
        raise ConfigError('[model] encoder_context is for context_scope = "encoder"; with "embedding" the '
                          "encoder reads no context")
    return reach
