"""Character-level word representations: a character CNN and a character BiLSTM.

Each batch is reduced to its distinct words first, so a word that occurs many times in a batch is
encoded once. In training those words come shortest first, and groups of them are encoded each padded to
its own longest word (:func:`length_groups`); in inference each word's vector is computed once and kept.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import registry
from ..encoders.padded_rnn import padded_rnn
from ..errors import ConfigError
from ..masks import mask_from_lengths
from ..resources import PartSize, VocabSource
from .base import CACHE_SIZE, Embedding, Features, WordVectorCache, distinct_words, pad_ids
from .vocab import Vocab

GROUP_CELLS = 512  # the fixed cost of encoding one more group of words, in padded character cells


def length_groups(lengths: Sequence[int], group_cells: int = GROUP_CELLS) -> list[tuple[int, int, int]]:
    """Cut words sorted by ascending length into contiguous groups ``(start, end, width)``, each to be
    padded to its longest (``width``), that minimise the padded character cells plus ``group_cells`` a
    group. Lengths not in ascending order make one group."""
    runs: list[list[int]] = []  # [end, width] of each run of equal lengths
    for i, n in enumerate(lengths):
        if runs and runs[-1][1] == n:
            runs[-1][0] = i + 1
        elif runs and n < runs[-1][1]:
            return [(0, len(lengths), max(lengths))]
        else:
            runs.append([i + 1, n])
    if len(runs) <= 1:
        return [(0, len(lengths), max(lengths, default=1))] if lengths else []
    # best[j]: the least cost of the words before runs[j]'s end, and the run the last group starts after
    best: list[tuple[int, int]] = []
    for j, (end, width) in enumerate(runs):
        options = [((end * width + group_cells), -1)]
        options += [(best[i][0] + (end - runs[i][0]) * width + group_cells, i) for i in range(j)]
        best.append(min(options))
    groups, j = [], len(runs) - 1
    while j >= 0:
        i = best[j][1]
        groups.append((runs[i][0] if i >= 0 else 0, runs[j][0], runs[j][1]))
        j = i
    return groups[::-1]


class CharEmbeddingBase(Embedding):
    """Shared parts: the character vocabulary and the distinct-word featurization."""

    context_free = True

    def __init__(self, char_dim: int, min_freq: int, max_word_length: int) -> None:
        super().__init__()
        self._check_base(char_dim, max_word_length)
        self.char_dim, self.min_freq, self.max_word_length = char_dim, min_freq, max_word_length
        self.chars = Vocab()
        self._char_ids: dict[str, list[int]] = {}  # word -> its character ids, filled as words are met
        self._vectors = WordVectorCache()  # inference: each word's vector, encoded once
        self.char_embed = nn.Embedding(2, char_dim, padding_idx=0)

    @classmethod
    def _check_base(cls, char_dim: int, max_word_length: int) -> None:
        if char_dim <= 0 or max_word_length <= 0:
            raise ConfigError(f"{cls.__name__}: char_dim and max_word_length must be positive")

    @classmethod
    def _char_table(cls, vocab: VocabSource, char_dim: int, max_word_length: int) -> int:
        """Parameters of the character vectors (the distinct training characters bound their vocabulary)."""
        cls._check_base(char_dim, max_word_length)
        return vocab.size("chars", vocab.chars) * char_dim

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        counts: Counter[str] = Counter(ch for s in sentences for w in s for ch in w)
        self.set_assets({"chars": Vocab.from_counts(counts, self.min_freq).to_list()})

    def get_assets(self) -> dict[str, Any]:
        return {"chars": self.chars.to_list()}

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        self.chars = Vocab((assets or {}).get("chars", []))
        self._char_ids = {}
        self.char_embed = nn.Embedding(len(self.chars), self.char_dim, padding_idx=0)

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        return self._featurize(batch, self._ids_of)

    def index_columns(self, sentences: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
        ids_of = self._ids_of
        return {"chars": [[ids_of(w) for w in sent] for sent in sentences]}

    def featurize_indexed(self, batch: Sequence[Sequence[str]], columns: Mapping[str, Sequence[Any]]) -> Features:
        if "chars" not in columns:
            return self.featurize(batch)
        given = {w: ids for sent, rows in zip(batch, columns["chars"]) for w, ids in zip(sent, rows)}
        return self._featurize(batch, given.__getitem__)

    def _featurize(self, batch: Sequence[Sequence[str]], ids_of: Callable[[str], list[int]]) -> Features:
        """The batch's distinct words (``word_index`` points each token at one) and, outside inference,
        their character ids from ``ids_of``."""
        word_index, words = distinct_words(batch)
        if torch.is_inference_mode_enabled():  # the cached forward finds characters for unseen words alone
            return {"word_index": word_index, "_words": words}
        rows = [ids_of(w) for w in words]
        # the words shortest first, so that groups of them are each padded to their own longest (forward)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        if order != list(range(len(rows))):
            position = [0] * (len(rows) + 1)  # an old index (from 1) -> the new one; 0 stays the padding
            for new, old in enumerate(order, 1):
                position[old + 1] = new
            word_index = torch.tensor(position)[word_index]
            rows, words = [rows[i] for i in order], [words[i] for i in order]
        chars, lengths = self._char_tensors(rows)
        return {"word_index": word_index, "chars": chars, "lengths": lengths, "_words": words,
                "_groups": length_groups([len(r) for r in rows])}

    def _ids_of(self, word: str) -> list[int]:
        """A word's character ids, remembered for up to ``CACHE_SIZE`` words (then the memory starts again)."""
        ids = self._char_ids.get(word)
        if ids is None:
            if len(self._char_ids) >= CACHE_SIZE:
                self._char_ids.clear()
            lookup = self.chars.stoi.get
            ids = self._char_ids[word] = [lookup(ch, 1) for ch in word[: self.max_word_length]] or [1]
        return ids

    @staticmethod
    def _char_tensors(rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded character ids ``(n_words, n_chars)`` and the words' lengths ``(n_words,)``."""
        lengths = torch.tensor([len(r) for r in rows] or [1], dtype=torch.long)
        return pad_ids(rows or [[1]]), lengths

    def encode_words(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: Features) -> torch.Tensor:
        if "chars" not in features or (torch.is_inference_mode_enabled() and "_words" in features):
            return self._cached_forward(features)
        chars, lengths, groups = features["chars"], features["lengths"], features.get("_groups")
        if groups and len(groups) > 1:  # each group of words as wide as its longest (an exported graph has one)
            words = torch.cat([self.encode_words(chars[a:b, :width], lengths[a:b]) for a, b, width in groups])
        else:
            words = self.encode_words(chars, lengths)  # shape: (n_words, output_dim)
        words = torch.cat([words.new_zeros(1, words.size(1)), words], dim=0)  # row 0 = padding
        return words[features["word_index"]]  # shape: (batch, seq, output_dim)

    def _cached_forward(self, features: Features) -> torch.Tensor:
        """Inference: a word's vector depends on its characters alone, so each word is encoded once and
        kept (:class:`~seqtag.embeddings.base.WordVectorCache`)."""
        return self._vectors.lookup(self, features["_words"], features["word_index"], self.encode_strings)

    def encode_strings(self, words: list[str]) -> torch.Tensor:
        """The vectors ``(len(words), output_dim)`` of ``words``, on the embedding's device."""
        chars, lengths = self._char_tensors([self._ids_of(w) for w in words])
        device = self.char_embed.weight.device
        return self.encode_words(chars.to(device), lengths.to(device))


@registry.embeddings.register("char_cnn.v1")
class CharCNNEmbedding(CharEmbeddingBase):
    """A character CNN with max pooling over each word (Ma and Hovy, 2016).

    Args:
        char_dim: Size of a character vector.
        filters: Number of convolution filters (the output size).
        kernel_size: Width of the convolution window in characters.
        min_freq: Characters seen fewer times become ``<unk>``.
        max_word_length: Characters beyond this are ignored.
    """

    def __init__(self, char_dim: int = 30, filters: int = 50, kernel_size: int = 3, min_freq: int = 1,
                 max_word_length: int = 30) -> None:
        super().__init__(char_dim, min_freq, max_word_length)
        self._check(filters, kernel_size)
        self.filters, self.kernel_size = filters, kernel_size
        self.output_dim = filters
        self.conv = nn.Conv1d(char_dim, filters, kernel_size, padding=kernel_size // 2)

    @staticmethod
    def _check(filters: int, kernel_size: int) -> None:
        if filters <= 0 or kernel_size <= 0:
            raise ConfigError("char_cnn.v1: filters and kernel_size must be positive")

    @classmethod
    def estimate_size(cls, vocab: VocabSource, /, *, char_dim: int, filters: int, kernel_size: int,  # type: ignore[override]
                      max_word_length: int, **config: Any) -> PartSize:
        table = cls._char_table(vocab, char_dim, max_word_length)
        cls._check(filters, kernel_size)
        # per token at most: its characters' vectors and the convolution's output at each character
        return PartSize(table + filters * char_dim * kernel_size + filters, filters,
                        activations=max_word_length * (char_dim + filters) + filters)

    def encode_words(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # padding characters are zeroed whatever the padding row holds, so a word's vector never depends
        # on how wide its batch is (the inference cache relies on it)
        x = self.char_embed(chars).masked_fill((chars == 0).unsqueeze(2), 0.0)  # shape: (n_words, n_chars, char_dim)
        # the convolution as one matrix product over each position's window of characters (self.conv's
        # weights): no kernel compiled per batch shape, as oneDNN's convolution is, whose cache the
        # recurrences need, and as fast
        k, pad = self.kernel_size, self.kernel_size // 2
        x = F.pad(x, (0, 0, pad, pad))  # shape: (n_words, n_chars + 2 * pad, char_dim)
        n = x.size(1) - k + 1  # the convolution's output length
        windows = torch.cat([x[:, j: j + n] for j in range(k)], dim=2)  # shape: (n_words, n, k * char_dim)
        weight = self.conv.weight.permute(0, 2, 1).reshape(self.filters, -1)  # (filters, k * char_dim), as windows
        h = F.linear(windows, weight, self.conv.bias)  # shape: (n_words, n, filters)
        valid = mask_from_lengths(lengths, n)  # shape: (n_words, n)
        h = h.masked_fill(~valid.unsqueeze(2), float("-inf"))
        return h.max(dim=1).values  # shape: (n_words, filters)


@registry.embeddings.register("char_lstm.v1")
class CharLSTMEmbedding(CharEmbeddingBase):
    """A character BiLSTM whose last states (both directions) represent a word (Lample et al., 2016).

    Args:
        char_dim: Size of a character vector.
        hidden_size: LSTM size per direction; the output is twice this.
        min_freq: Characters seen fewer times become ``<unk>``.
        max_word_length: Characters beyond this are ignored.
    """

    def __init__(self, char_dim: int = 25, hidden_size: int = 25, min_freq: int = 1, max_word_length: int = 30) -> None:
        super().__init__(char_dim, min_freq, max_word_length)
        self._check(hidden_size)
        self.hidden_size = hidden_size
        self.output_dim = 2 * hidden_size
        self.lstm = nn.LSTM(char_dim, hidden_size, batch_first=True, bidirectional=True)

    @staticmethod
    def _check(hidden_size: int) -> None:
        if hidden_size <= 0:
            raise ConfigError(f"char_lstm.v1: hidden_size must be positive, got {hidden_size}")

    @classmethod
    def estimate_size(cls, vocab: VocabSource, /, *, char_dim: int, hidden_size: int, max_word_length: int,  # type: ignore[override]
                      **config: Any) -> PartSize:
        table = cls._char_table(vocab, char_dim, max_word_length)
        cls._check(hidden_size)
        h = hidden_size
        # per token at most: its characters' vectors, and both directions' four gates, cell and state per character
        return PartSize(table + 2 * 4 * (char_dim * h + h * h + 2 * h), 2 * h,
                        activations=max_word_length * (char_dim + 2 * 6 * h))

    def encode_words(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.char_embed(chars)  # shape: (n_words, n_chars, char_dim)
        out = padded_rnn(self.lstm, x, lengths)  # shape: (n_words, n_chars, 2 * hidden)
        h = self.hidden_size
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, h)  # shape: (n_words, 1, hidden)
        fwd = out[:, :, :h].gather(1, last).squeeze(1)  # the forward state after the last character
        bwd = out[:, 0, h:]  # the backward state after reading back to the first character
        return torch.cat([fwd, bwd], dim=-1)  # shape: (n_words, 2 * hidden)
