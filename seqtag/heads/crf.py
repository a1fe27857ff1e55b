"""A linear-chain CRF head: forward algorithm, Viterbi and marginals, vectorized over the batch.

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
from .base import Head

NEG = -1.0e4


@registry.heads.register("crf.v1")
class CRFHead(Head):
    """Emission scores from a linear layer plus learned tag transitions, trained by log-likelihood.

    Args:
        constrained: Forbid transitions that are invalid in the tag scheme.
    """

    def __init__(self, input_dim: int, labels: Sequence[str], scheme: str = "IOB2", constrained: bool = True) -> None:
        super().__init__(input_dim, labels, scheme)
        self.constrained = constrained
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
        return self._score(em, tags, mask) - self.log_partition(em, mask)

    def _score(self, em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans, end = self._params()
        maskf = mask.to(em.dtype)  # shape: (batch, seq)
        emit = em.gather(2, tags.unsqueeze(2)).squeeze(2) * maskf  # shape: (batch, seq)
        step = trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]  # shape: (batch, seq - 1)
        last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # shape: (batch,)
        return start[tags[:, 0]] + emit.sum(1) + step.sum(1) + end[last]

    def log_partition(self, em: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` per sequence by the forward algorithm, shape ``(batch,)``."""
        start, trans, end = self._params()
        last = forward_alphas(em, mask, start, trans)[:, -1]  # padded steps carry the last real alpha
        return torch.logsumexp(last + end.unsqueeze(0), dim=1)

    # -- decoding ---------------------------------------------------------------------------------
    def viterbi(self, em: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best tag sequences ``(batch, seq)`` and their scores ``(batch,)``; padding holds the last tag."""
        start, trans, end = self._params()
        batch, seq, k = em.shape
        emits = em.unbind(1)  # one (batch, num_tags) view per step
        score = start.unsqueeze(0) + emits[0]  # shape: (batch, num_tags)
        trans = trans.unsqueeze(0)  # shape: (1, num_tags, num_tags)
        # steps before the shortest sequence's end are real for the whole batch: no masking there
        full = int(mask.sum(1).min()) if seq > 1 else seq
        steps = mask.unsqueeze(2).unbind(1)  # one (batch, 1) view per step
        keep = torch.arange(k).unsqueeze(0).expand(batch, k)
        history = []
        for t in range(1, seq):
            best, idx = (score.unsqueeze(2) + trans).max(dim=1)  # shape: (batch, num_tags)
            if t < full:
                score = best + emits[t]
                history.append(idx)
            else:
                m = steps[t]
                score = torch.where(m, best + emits[t], score)
                history.append(torch.where(m, idx, keep))  # padded steps point to themselves
        final, last = (score + end.unsqueeze(0)).max(dim=1)  # shape: (batch,)
        last = last.unsqueeze(1)  # shape: (batch, 1)
        path = [last]
        for idx in reversed(history):
            last = idx.gather(1, last)
            path.append(last)
        path.reverse()
        return torch.cat(path, dim=1), final  # shape: (batch, seq), (batch,)

    def marginals(self, em: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Posterior probability of each tag at each position, shape ``(batch, seq, num_tags)``.

        Forward-backward in float64, normalized at each position: in float32, the log-space sums of a
        long sentence (thousands of tokens) lose enough precision to give "probabilities" above 1.
        """
        dtype = em.dtype
        em = em.double()
        start, trans, end = (p.double() for p in self._params())
        alphas = forward_alphas(em, mask, start, trans)  # shape: (batch, seq, num_tags)
        betas = backward_betas(em, mask, trans, end)  # shape: (batch, seq, num_tags)
        # sum_j exp(alpha_t(j) + beta_t(j)) is Z at every real position t
        return torch.softmax(alphas + betas, dim=2).to(dtype)

    def decode(self, x: torch.Tensor, mask: torch.Tensor, with_confidence: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        em = self.emissions(x)
        path, _ = self.viterbi(em, mask)
        if not with_confidence:
            return path.masked_fill(~mask, 0), mask.to(em.dtype)
        conf = self.marginals(em, mask).gather(2, path.unsqueeze(2)).squeeze(2)  # shape: (batch, seq)
        return path.masked_fill(~mask, 0), conf.masked_fill(~mask, 0.0)


def forward_alphas(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Forward log-scores ``alpha_t(j)`` ``(batch, seq, num_tags)``; a padded step keeps the last real one."""
    alpha = start.unsqueeze(0) + em[:, 0]  # shape: (batch, num_tags)
    alphas = [alpha]
    for t in range(1, em.size(1)):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + em[:, t]  # shape: (batch, num_tags)
        alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1)


def backward_betas(em: torch.Tensor, mask: torch.Tensor, trans: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Backward log-scores ``beta_t(i)`` ``(batch, seq, num_tags)``: ``end`` at each sequence's last position."""
    beta = end.unsqueeze(0).expand(em.size(0), -1)  # shape: (batch, num_tags)
    betas = [beta] * em.size(1)
    trans = trans.unsqueeze(0)  # shape: (1, num_tags, num_tags)
    for t in range(em.size(1) - 2, -1, -1):
        prev = torch.logsumexp(trans + (em[:, t + 1] + beta).unsqueeze(1), dim=2)
        # position t + 1 is padding: t is the last real position (beta = end) or padding itself
        beta = torch.where(mask[:, t + 1].unsqueeze(1), prev, betas[-1])
        betas[t] = beta
    return torch.stack(betas, dim=1)
