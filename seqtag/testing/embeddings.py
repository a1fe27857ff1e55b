"""The embedding contract: vectors of the right shape that padding does not change, JSON assets that
rebuild the same embedding, and gradients when it has weights to train."""

from __future__ import annotations

import json
from typing import Any, Mapping

from .common import TINY_CORPUS, build, fail
from .padding import agree, alone_as_padded

__all__ = ["contract_embedding"]


def contract_embedding(name: str, cfg: Mapping[str, Any], atol: float) -> None:
    """Check the embedding ``name`` built from ``cfg``, initialized on :data:`~seqtag.testing.TINY_CORPUS`.

    Raises:
        AssertionError: ``[seqtag.testing contract] embedding 'NAME': ...``.
    """
    import torch

    sents = [t for t, _ in TINY_CORPUS]
    emb = build("embedding", name, cfg)
    emb.initialize(sents)
    dim = emb.output_dim
    if not isinstance(dim, int) or dim <= 0:
        raise fail("contract", "embedding", name, f"output_dim must be a positive int after initialize(), got {dim!r}")
    assets = emb.get_assets()
    try:
        assets_json = json.loads(json.dumps(assets))
    except (TypeError, ValueError) as exc:
        raise fail("contract", "embedding", name, f"get_assets() must return JSON data, got {exc}") from None
    emb.eval()
    batch = [sents[11], sents[0], ["Zorblax", "Quuxville"], sents[10]]  # 17, 6, 2 and 1 tokens; unseen words
    lengths = [len(s) for s in batch]
    with torch.no_grad():
        out = emb(emb.featurize(batch))  # shape: (batch, seq, output_dim)
        if tuple(out.shape) != (len(batch), max(lengths), dim):
            raise fail("contract", "embedding", name, f"forward gave shape {tuple(out.shape)}, expected "
                       f"{(len(batch), max(lengths), dim)} (batch, seq, output_dim)")
        if not bool(torch.isfinite(out).all()):
            raise fail("contract", "embedding", name, "forward gave NaN or infinite values")
        alone_as_padded("embedding", name, lengths, [out], lambda i, n: [emb(emb.featurize([batch[i]]))[0]], atol,
                        "the vectors")
    twin = build("embedding", name, cfg)
    twin.set_assets(assets_json)
    if twin.output_dim != dim:
        raise fail("contract", "embedding", name, f"after set_assets(get_assets()) output_dim is {twin.output_dim}, "
                   f"was {dim}")
    try:
        twin.load_state_dict(emb.state_dict(), strict=True)
    except RuntimeError as exc:
        raise fail("contract", "embedding", name, "set_assets(get_assets()) must allocate weights of the shapes "
                   f"initialize() made: {' '.join(str(exc).split())[:300]}") from None
    twin.eval()
    with torch.no_grad():
        again = twin(twin.featurize(batch))  # shape: (batch, seq, output_dim)
    agree("embedding", name, again, out, atol, "a copy rebuilt from the config, get_assets() and the state dict "
          "gives other vectors", advice="everything built from the data belongs in get_assets()")
    emb.train()
    x = emb(emb.featurize(batch[:2]))  # shape: (2, seq, output_dim)
    if any(p.requires_grad for p in emb.parameters()):
        if not x.requires_grad:
            raise fail("contract", "embedding", name, "has trainable parameters but its output carries no gradient")
        x.float().sum().backward()
