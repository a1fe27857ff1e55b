"""The base class of embeddings: token strings in, vectors of ``output_dim`` out."""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

if TYPE_CHECKING:
    from ..resources import PartSize, VocabSource

Features = dict[str, Any]
CACHE_SIZE = 1 << 14  # words an embedding remembers features (or, in inference, vectors) of; then it starts again


class Embedding(nn.Module):
    """Turns a batch of token lists into vectors.

    The life of an embedding: construct from hyperparameters; ``initialize(sentences)`` builds what
    depends on the training data (vocabularies) and allocates weights, or ``set_assets(assets)``
    restores those from a saved tagger; ``featurize(batch)`` maps strings to index tensors once per
    batch; ``forward(features)`` gives ``(batch, seq, output_dim)``; ``export_module()`` gives the form
    the ONNX export traces. Features are tensors (or nested dicts of them); a key starting with ``_``
    holds a host-side extra that is no graph input (an ONNX export leaves it out), such as the word
    strings an inference cache is keyed on.
    """

    output_dim: int
    #: Outside training, a token's vector depends on its own string alone (not on its neighbours, nor
    #: on randomness). Predict then encodes each distinct word once and keeps its vector
    #: (:class:`WordVectorCache`); a concatenation of such parts is one too. ``False`` is always safe.
    context_free: bool = False
    #: The part's ``nn.Embedding`` tables (attribute names, or dotted paths below the part) that may train
    #: with row-sparse gradients: a step then updates only the rows its batch used, and the others catch up
    #: before they are next read (``training.sparse_embeddings``, :mod:`seqtag.optim`).
    #: Name large lookup tables whose rows a batch reads directly; ``()`` (the default) keeps all dense.
    sparse_tables: tuple[str, ...] = ()

    @classmethod
    def estimate_size(cls, vocab: "VocabSource", /, **config: Any) -> "PartSize | None":
        """The part's size from its resolved config, before it is built (see :mod:`seqtag.resources`);
        ``vocab`` bounds its vocabularies. ``None``, the default, means the part cannot tell."""
        return None

    def get_output_dim(self) -> int:
        return self.output_dim

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        """Build vocabularies from the training sentences and allocate weights."""

    def get_assets(self) -> dict[str, Any] | None:
        """JSON-serializable data (vocabularies) needed to rebuild the weights' shapes."""
        return None

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        """Restore what :meth:`get_assets` returned and allocate weights of the right shapes."""

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        raise NotImplementedError

    def index_columns(self, sentences: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
        """Per-sentence ids worth computing once for a whole corpus (training maps them over the
        dataset with ``datasets.map`` and caches them on disk): column name to one value per sentence.
        The default computes nothing and :meth:`featurize_indexed` featurizes from the strings."""
        return {}

    def featurize_indexed(self, batch: Sequence[Sequence[str]], columns: Mapping[str, Sequence[Any]]) -> Features:
        """:meth:`featurize` for a batch whose :meth:`index_columns` values are given (one per sentence)."""
        return self.featurize(batch)

    def forward(self, features: Features) -> torch.Tensor:  # shape: (batch, seq, output_dim)
        raise NotImplementedError

    def export_module(self) -> nn.Module:
        """The embedding's traceable form for the ONNX export: ``forward(features) -> (batch, seq, output_dim)``
        over the featurized tensors (keys starting with ``_`` left out).

        The default is the embedding itself, in eval mode: an embedding whose forward traces needs nothing
        more. Override it otherwise, or raise :func:`seqtag.export_hook.not_exportable` for an embedding
        that cannot be exported (see :mod:`seqtag.export_hook`).
        """
        return self


def distinct_words(batch: Sequence[Sequence[str]]) -> tuple[torch.Tensor, list[str]]:
    """A batch's distinct words, in order of first occurrence, and ``(batch, seq)`` long indices of
    each token's word among them, counted from 1 (0 is the padding)."""
    index: dict[str, int] = {}
    positions = []
    for sent in batch:
        row = []
        for w in sent:
            i = index.get(w)
            if i is None:
                i = index[w] = len(index) + 1
            row.append(i)
        positions.append(row)
    return pad_ids(positions), list(index)


_optimizer_steps = [0]  # steps taken by any torch optimizer in this process


def _count_step(optimizer: Any, args: Any, kwargs: Any) -> None:
    _optimizer_steps[0] += 1


# fused optimizers (Adam's, the trainer's default) update weights without bumping their versions
register_optimizer_step_post_hook(_count_step)


class WordVectorCache:
    """Inference for a :attr:`~Embedding.context_free` embedding: each word is encoded once and its
    vector kept, up to ``CACHE_SIZE`` words (then the cache starts again). Any change to the owner's
    weights empties the cache: a step of any torch optimizer (fused ones leave the weights' versions
    as they were), loading a state dict or any other in-place change (new versions), moving it to
    another device (new addresses)."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] = ()
        self._rows: dict[str, int] = {}
        self._table: torch.Tensor | None = None  # row 0 = padding, then the kept vectors

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, owner: Embedding, words: Sequence[str], word_index: torch.Tensor,
               encode: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """The vectors ``(batch, seq, dim)`` of a batch given as :func:`distinct_words`' ``words`` and
        ``word_index``; ``encode(words)`` gives the ``(len(words), dim)`` vectors of the words not kept."""
        key = (_optimizer_steps[0], *((p.data_ptr(), p._version) for p in owner.parameters()))
        if key != self._key or len(self._rows) >= CACHE_SIZE:
            self._key, self._rows, self._table = key, {}, None
        rows = self._rows
        missing = [w for w in dict.fromkeys(words) if w not in rows]
        if missing:
            vecs = encode(missing)  # shape: (n_missing, dim)
            start = len(rows) + 1
            need = start + len(missing)
            table = self._table
            if table is None or need > table.size(0):  # doubles, but never far past the cache's size
                grown = vecs.new_zeros(min(max(2 * need, 1024), max(need, CACHE_SIZE + 1024)), vecs.size(1))
                if table is not None:
                    grown[:start] = table[:start]
                self._table = table = grown
            table[start:need] = vecs
            rows.update(zip(missing, range(start, need)))
        if self._table is None:  # a batch of no words at all
            self._table = next(owner.parameters()).new_zeros(1, owner.output_dim)
        table = self._table
        table_rows = torch.tensor([0] + [rows[w] for w in words], dtype=torch.long, device=table.device)
        # an embedding lookup (index_select) is several times faster than advanced indexing here
        return F.embedding(F.embedding(word_index.to(table.device), table_rows[:, None]).squeeze(-1), table)


def pad_ids(rows: Sequence[Sequence[int]], pad: int = 0) -> torch.Tensor:
    """Pad lists of ids to a ``(len(rows), max_len)`` long tensor, filled through one flat C array
    (``torch.tensor`` of nested lists costs several times more per element)."""
    width = max(max(map(len, rows), default=0), 1)
    if not rows:
        return torch.zeros((0, width), dtype=torch.long)
    flat = array("q", [pad]) * (len(rows) * width)
    for i, row in enumerate(rows):
        flat[i * width: i * width + len(row)] = array("q", row)
    return torch.frombuffer(flat, dtype=torch.long).view(len(rows), width).clone()
