"""The encoder contract: wired sizes, shapes, padding that changes no real position, ``mask=None`` as all
real, and a gradient that reaches the input."""

from __future__ import annotations

from typing import Any, Mapping

from .common import build, fail
from .padding import agree, alone_as_padded, lengths_mask, repad

__all__ = ["contract_encoder"]

INPUT_DIM = 12


def contract_encoder(name: str, cfg: Mapping[str, Any], atol: float) -> None:
    """Check the encoder ``name`` built from ``cfg`` with ``input_dim`` 12, on a batch of 7, 4 and 1 tokens.

    Raises:
        AssertionError: ``[seqtag.testing contract] encoder 'NAME': ...``.
    """
    import torch

    enc = build("encoder", name, cfg, input_dim=INPUT_DIM)
    if getattr(enc, "input_dim", None) != INPUT_DIM:
        raise fail("contract", "encoder", name, f"must set self.input_dim = input_dim ({INPUT_DIM}), "
                   f"got {getattr(enc, 'input_dim', None)!r}")
    dim = getattr(enc, "output_dim", None)
    if not isinstance(dim, int) or dim <= 0:
        raise fail("contract", "encoder", name, f"must set self.output_dim to a positive int, got {dim!r}")
    gen = torch.Generator().manual_seed(0)
    lengths = [7, 4, 1]
    x = torch.randn(3, 7, INPUT_DIM, generator=gen)  # shape: (batch, seq, input_dim)
    mask = lengths_mask(lengths)  # shape: (batch, seq)
    noisy = repad(x, mask, 100 * torch.randn(3, 7, INPUT_DIM, generator=gen))  # other values at padding
    enc.eval()
    with torch.no_grad():
        out = enc(x, mask)  # shape: (batch, seq, output_dim)
        if tuple(out.shape) != (3, 7, dim):
            raise fail("contract", "encoder", name, f"forward(x {tuple(x.shape)}, mask) gave {tuple(out.shape)}, "
                       f"expected {(3, 7, dim)} (batch, seq, output_dim)")
        if not bool(torch.isfinite(out[mask]).all()):
            raise fail("contract", "encoder", name, "forward gave NaN or infinite values at real positions")
        agree("encoder", name, enc(noisy, mask)[mask], out[mask], atol,
              "real positions change when the padded positions hold other values")
        alone_as_padded("encoder", name, lengths, [out], lambda i, n: [enc(x[i:i + 1, :n], lengths_mask([n]))[0]],
                        atol, "the vectors")
        agree("encoder", name, enc(x, None), enc(x, torch.ones(3, 7, dtype=torch.bool)), atol,
              "forward(x, None) differs from forward(x, all-True mask)", advice="mask=None must mean every "
              "position is real")
    enc.train()
    xg = x.clone().requires_grad_(True)
    enc(xg, mask).sum().backward()
    if xg.grad is None or not bool(torch.isfinite(xg.grad).all()):
        raise fail("contract", "encoder", name, "no finite gradient reaches the input")
