"""The base class of tagging heads: encoder states in, a loss in training and tags when decoding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from ..resources import PartSize


def check_temperature(value: float) -> float:
    """A head's ``temperature`` argument (see :mod:`seqtag.calibration`), checked: a positive number.

    Raises:
        ConfigError: It is not a positive finite number (one line).
    """
    from ..errors import ConfigError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < float("inf"):
        raise ConfigError(f"model.head.temperature must be a positive number, got {value!r}")
    return float(value)


class Head(nn.Module):
    """Scores tags from encoder states. ``input_dim``, ``labels`` and ``scheme`` are wired by the model.

    ``loss(x, tags, mask)`` returns a scalar to minimise; ``decode(x, mask, with_confidence)`` returns
    the best tag ids ``(batch, seq)`` and the confidence of each chosen tag ``(batch, seq)`` in ``[0, 1]``.
    Shapes: ``x`` ``(batch, seq, input_dim)``, ``tags`` long ``(batch, seq)``, ``mask`` bool ``(batch, seq)``.
    ``export_module(with_confidence)`` gives the head's traceable form for the ONNX export (see
    :mod:`seqtag.export_hook`).
    """

    input_dim: int
    labels: list[str]
    scheme: str

    def __init__(self, input_dim: int, labels: Sequence[str], scheme: str = "IOB2") -> None:
        super().__init__()
        self.input_dim, self.labels, self.scheme = input_dim, list(labels), scheme

    @classmethod
    def estimate_size(cls, input_dim: int, labels: Sequence[str], /, **config: Any) -> "PartSize | None":
        """The part's size from its resolved config, input size and labels, before it is built (see
        :mod:`seqtag.resources`). ``None``, the default, means the part cannot tell."""
        return None

    @property
    def num_tags(self) -> int:
        return len(self.labels)

    def loss(self, x: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x: torch.Tensor, mask: torch.Tensor,
               with_confidence: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The best tags and their confidences.

        Args:
            x: Encoder states ``(batch, seq, input_dim)``.
            mask: Bool ``(batch, seq)``, ``True`` at real tokens.
            with_confidence: Compute each chosen tag's confidence; ``False`` lets the head skip that work
                and return the mask as float scores (1 at real tokens).

        Returns:
            Tag ids long ``(batch, seq)`` and scores float ``(batch, seq)``, both 0 at padding.
        """
        raise NotImplementedError

    def export_module(self, with_confidence: bool = True) -> nn.Module:
        """The head's traceable form for the ONNX export: ``forward(x, mask) -> (tags, scores)``.

        The default runs :meth:`decode`, so a head whose ``decode`` traces needs nothing more (the CRF
        head's recursions switch to their scripted forms while traced). Override it otherwise, or raise
        :func:`seqtag.export_hook.not_exportable` for a head that cannot be exported.
        """
        from ..export_hook import HeadDecoder

        return HeadDecoder(self, with_confidence)
