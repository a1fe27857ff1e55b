"""A softmax head: each token's tag is chosen independently."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import registry
from ..resources import PartSize
from .base import Head, check_temperature


@registry.heads.register("softmax.v1")
class SoftmaxHead(Head):
    """A linear layer and a softmax per token, trained with cross-entropy.

    Args:
        label_smoothing: Cross-entropy label smoothing (0 turns it off).
        temperature: Divides the logits before the softmax gives the confidences; the tags are the same
            at any temperature. Fitted on dev after training (`training.calibrate`, `seqtag calibrate`);
            1.0: the scores as trained.
    """

    def __init__(self, input_dim: int, labels: Sequence[str], scheme: str = "IOB2",
                 label_smoothing: float = 0.0, temperature: float = 1.0) -> None:
        super().__init__(input_dim, labels, scheme)
        self.label_smoothing = label_smoothing
        self.temperature = check_temperature(temperature)
        self.proj = nn.Linear(input_dim, self.num_tags)

    @classmethod
    def estimate_size(cls, input_dim: int, labels: Sequence[str], /, **config: Any) -> PartSize:
        k = len(labels)
        return PartSize((input_dim + 1) * k, k, activations=k)

    def loss(self, x: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.proj(x)  # shape: (batch, seq, num_tags)
        return F.cross_entropy(logits[mask], tags[mask], label_smoothing=self.label_smoothing,
                               reduction="sum") / x.size(0)

    def decode(self, x: torch.Tensor, mask: torch.Tensor,
               with_confidence: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.proj(x)  # shape: (batch, seq, num_tags)
        if self.temperature != 1.0:  # calibrated confidences (seqtag.calibration); the arg max is the same
            logits = logits / self.temperature
        probs = logits.softmax(dim=-1)
        conf, best = probs.max(dim=-1)  # shape: (batch, seq)
        best = best.masked_fill(~mask, 0)
        if not with_confidence:
            return best, mask.to(conf.dtype)
        return best, conf.masked_fill(~mask, 0.0)
