"""A linear-chain CRF head: emissions and learned transitions; the recursions are in :mod:`.crf_functions`.

Optionally constrained to the transitions that are valid in the tag scheme (IOB2, BIOES): invalid
starts, transitions and ends get a large negative score, so decoding never yields them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .. import registry
from ..labels import allowed_transitions
from ..resources import PartSize
from . import crf_functions
from .base import Head, check_temperature

NEG = -1.0e4


@registry.heads.register("crf.v1")
class CRFHead(Head):
    """Emission scores from a linear layer plus learned tag transitions, trained by log-likelihood.

    Args:
        constrained: Forbid transitions that are invalid in the tag scheme.
        temperature: Divides the emissions and transitions before the confidences (the marginals) are
            computed; the tags are the same at any temperature. Fitted on dev after training
            (`training.calibrate`, `seqtag calibrate`); 1.0: the scores as trained.
    """

    start_penalty: torch.Tensor  # NEG where the scheme forbids a start, a transition, an end (buffers)
    trans_penalty: torch.Tensor
    end_penalty: torch.Tensor

    def __init__(self, input_dim: int, labels: Sequence[str], scheme: str = "IOB2", constrained: bool = True,
                 temperature: float = 1.0) -> None:
        super().__init__(input_dim, labels, scheme)
        self.constrained = constrained
        self.temperature = check_temperature(temperature)
        k = self.num_tags
        self.proj = nn.Linear(input_dim, k)
        self.start_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(k, k).uniform_(-0.1, 0.1))
        start_ok, trans_ok, end_ok = allowed_transitions(self.labels, scheme) if constrained else (
            [True] * k, [[True] * k] * k, [True] * k)
        self.register_buffer("start_penalty", (~torch.tensor(start_ok)).float() * NEG, persistent=False)
        self.register_buffer("trans_penalty", (~torch.tensor(trans_ok).view(k, k)).float() * NEG, persistent=False)
        self.register_buffer("end_penalty", (~torch.tensor(end_ok)).float() * NEG, persistent=False)

    @classmethod
    def estimate_size(cls, input_dim: int, labels: Sequence[str], /, **config: Any) -> PartSize:
        """The emission layer, the transitions and the start and end scores; the forward algorithm keeps a
        ``(num_tags, num_tags)`` score table per token."""
        k = len(labels)
        return PartSize((input_dim + 1) * k + k * k + 2 * k, k, activations=k * k + 2 * k)

    # -- scores -----------------------------------------------------------------------------------
    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.start_transitions + self.start_penalty, self.transitions + self.trans_penalty,
                self.end_transitions + self.end_penalty)

    def emissions(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # shape: (batch, seq, num_tags)

    def loss(self, x: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return -self.log_likelihood(self.emissions(x), tags, mask).sum() / x.size(0)

    def log_likelihood(self, em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``tags`` per sequence, shape ``(batch,)``."""
        params = self._params()
        return crf_functions.sequence_score(em, tags, mask, *params) - crf_functions.log_partition(em, mask, *params)

    def log_partition(self, em: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` per sequence by the forward algorithm, shape ``(batch,)``."""
        return crf_functions.log_partition(em, mask, *self._params())

    # -- decoding ---------------------------------------------------------------------------------
    def viterbi(self, em: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best tag sequences ``(batch, seq)`` and their scores ``(batch,)``; padding holds the last tag."""
        return crf_functions.viterbi(em, mask, *self._params())

    def marginals(self, em: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Posterior probability of each tag at each position, shape ``(batch, seq, num_tags)``, in ``em``'s
        dtype (computed in float32 at least, see :func:`seqtag.heads.crf_functions.marginals`)."""
        return crf_functions.marginals(em, mask, *self._params()).to(em.dtype)

    def decode(self, x: torch.Tensor, mask: torch.Tensor,
               with_confidence: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        em = self.emissions(x)  # shape: (batch, seq, num_tags)
        start, trans, end = self._params()
        # traced for ONNX, the recursions run scripted, so their loops over time stay loops of any length
        tracing = torch.jit.is_tracing()
        viterbi = crf_functions.scripted(crf_functions.viterbi) if tracing else crf_functions.viterbi
        path, _ = viterbi(em, mask, start, trans, end)  # shape: (batch, seq)
        path = path.masked_fill(~mask, 0)
        if not with_confidence:
            return path, mask.to(em.dtype)
        marginals = crf_functions.scripted(crf_functions.marginals) if tracing else crf_functions.marginals
        if self.temperature != 1.0:  # calibrated confidences (seqtag.calibration); the path is the same
            t = self.temperature
            em, start, trans, end = em / t, start / t, trans / t, end / t
        probs = marginals(em, mask, start, trans, end)  # float32 at least, shape: (batch, seq, num_tags)
        conf = probs.gather(2, path.unsqueeze(2)).squeeze(2).to(em.dtype)  # shape: (batch, seq)
        return path, conf.masked_fill(~mask, 0.0)
