"""A concatenation of several embeddings (e.g. words and characters)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from .. import registry
from ..devices import to_device
from ..errors import ConfigError
from ..export_hook import export_children
from ..resources import PartSize, VocabSource, estimate_part
from .base import Embedding, Features, WordVectorCache, distinct_words


@registry.embeddings.register("concat.v1")
class ConcatEmbedding(Embedding):
    """Concatenates the vectors of several embeddings, each given as a config table.

    Args:
        parts: Configs of the embeddings, e.g. ``[{type = "word.v1"}, {type = "char_cnn.v1"}]``.
    """

    nested = {"parts": "embedding"}

    def __init__(self, parts: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__()
        from ..config import build_part

        self._check(parts)
        self.parts: Sequence[Embedding] = nn.ModuleList(  # type: ignore[assignment]  # a ModuleList of embeddings
            [build_part("embedding", cfg) for cfg in parts])
        self._vectors = WordVectorCache()  # inference, when every part is context-free

    @staticmethod
    def _check(parts: Sequence[dict[str, Any]]) -> None:
        if not parts:
            raise ConfigError("concat.v1: 'parts' must name at least one embedding")

    @classmethod
    def estimate_size(cls, vocab: VocabSource, /, *, parts: Sequence[dict[str, Any]], **config: Any) -> PartSize:  # type: ignore[override]
        cls._check(parts)
        sizes = [estimate_part("embedding", cfg, vocab.part(str(i))) for i, cfg in enumerate(parts)]
        dim = sum(s.output_dim for s in sizes)
        # the concatenation is one more vector per token
        return PartSize(sum(s.parameters for s in sizes), dim, activations=sum(s.activations for s in sizes) + dim)

    @property
    def output_dim(self) -> int:  # type: ignore[override]
        return sum(p.output_dim for p in self.parts)

    @property
    def context_free(self) -> bool:  # type: ignore[override]
        return all(p.context_free for p in self.parts)

    def _cached(self) -> bool:
        """Inference over context-free parts: featurize to the batch's distinct words, and look their
        concatenated vectors up in one table (one gather a batch instead of one a part, and no copy
        into the concatenation)."""
        return torch.is_inference_mode_enabled() and self.context_free

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        sentences = list(sentences)
        for part in self.parts:
            part.initialize(sentences)

    def get_assets(self) -> dict[str, Any]:
        return {str(i): p.get_assets() for i, p in enumerate(self.parts)}

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        for i, p in enumerate(self.parts):
            p.set_assets((assets or {}).get(str(i)))

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        if self._cached():
            word_index, words = distinct_words(batch)
            return {"word_index": word_index, "_words": words}
        return {str(i): p.featurize(batch) for i, p in enumerate(self.parts)}

    def index_columns(self, sentences: Sequence[Sequence[str]]) -> dict[str, list[Any]]:
        return {f"{i}.{key}": values for i, p in enumerate(self.parts)
                for key, values in p.index_columns(sentences).items()}

    def featurize_indexed(self, batch: Sequence[Sequence[str]], columns: Mapping[str, Sequence[Any]]) -> Features:
        if self._cached():
            return self.featurize(batch)
        out = {}
        for i, p in enumerate(self.parts):
            prefix = f"{i}."
            own = {k[len(prefix):]: v for k, v in columns.items() if k.startswith(prefix)}
            out[str(i)] = p.featurize_indexed(batch, own)
        return out

    def forward(self, features: Features) -> torch.Tensor:
        if "_words" in features:  # featurized by the cached path
            return self._vectors.lookup(self, features["_words"], features["word_index"], self.encode_strings)
        return torch.cat([p(features[str(i)]) for i, p in enumerate(self.parts)], dim=-1)

    def encode_strings(self, words: list[str]) -> torch.Tensor:
        """The concatenated vectors ``(len(words), output_dim)`` of ``words``, each read as a sentence
        of one word: the parts are context-free."""
        batch = [[w] for w in words]
        device = next(self.parameters()).device
        # the parts' plain forward, outside inference mode: their own caches would keep a second copy
        with torch.inference_mode(False), torch.no_grad():
            return torch.cat([p(to_device(p.featurize(batch), device)) for p in self.parts], dim=-1)[:, 0]

    def export_module(self) -> nn.Module:
        """This concatenation over the export forms of its parts."""
        return export_children(self, "parts", "embedding")
