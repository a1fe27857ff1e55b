"""String-to-id vocabularies shared by the embeddings."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    """A list of strings with ``<pad>`` at 0 and ``<unk>`` at 1."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self.itos: list[str] = [PAD, UNK]
        self.stoi: dict[str, int] = {PAD: 0, UNK: 1}
        for item in items:
            self.add(item)

    def add(self, item: str) -> int:
        idx = self.stoi.get(item)
        if idx is None:
            idx = self.stoi[item] = len(self.itos)
            self.itos.append(item)
        return idx

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: str) -> bool:
        return item in self.stoi

    def lookup(self, item: str) -> int:
        return self.stoi.get(item, 1)

    @classmethod
    def from_counts(cls, counts: Counter[str], min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        items = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        return cls(items[:max_size] if max_size else items)

    def to_list(self) -> list[str]:
        return self.itos[2:]
