"""The linear-chain CRF recursions as pure functions: forward, backward, Viterbi and marginals.

One implementation serves training, eager decoding and the ONNX export: the functions are written in
the subset of Python that ``torch.jit.script`` compiles, so when a :class:`~seqtag.heads.CRFHead` is
traced for export it calls their scripted forms (:func:`scripted`) and the loops over time become
ONNX ``Loop``s of a dynamic length; in eager mode they run as plain Python, with no scripting cost.

Shapes: emissions ``em`` ``(batch, seq, k)``, bool ``mask`` ``(batch, seq)`` with every sequence
at least one position long and end-padded, ``start`` and ``end`` ``(k,)``, ``trans`` ``(k, k)``
(``trans[i, j]`` scores tag ``i`` followed by tag ``j``).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, List, Tuple

import torch

__all__ = ["forward_alphas", "backward_betas", "log_partition", "sequence_score", "viterbi", "marginals",
           "scripted"]


def _full_steps(mask: torch.Tensor) -> int:
    """How many leading steps are real in every sequence of the batch (no masking needed there); at
    least 1, as step 0 is always read."""
    return int(mask.sum(1).min().clamp(min=1))


def _log_product(scores: torch.Tensor, expt: torch.Tensor) -> torch.Tensor:
    """``log(exp(scores) @ expt)`` for ``scores`` ``(batch, k)``, shifted by each row's maximum (a constant to
    autograd: the value does not depend on it) so that ``exp`` stays in range; a ``(batch, k) @ (k, k)``
    product instead of a log-sum-exp over ``(batch, k, k)``. A tag nothing reaches scores ``log(1e-30)``
    below the rest, not ``-inf``, whose gradient would be NaN."""
    m = scores.max(dim=1, keepdim=True)[0].detach()  # shape: (batch, 1)
    return torch.log(torch.matmul(torch.exp(scores - m), expt).clamp_min(1e-30)) + m


def _shifted(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` ``(batch, k)`` less each row's maximum."""
    return scores - scores.max(dim=1, keepdim=True)[0]


def forward_alphas(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                   normalize: bool = False) -> torch.Tensor:
    """Forward log-scores ``alpha_t(j)`` ``(batch, seq, k)``; a padded step keeps the last real one.

    Each step is a product with the exponentiated transitions (:func:`_log_product`), which forward and
    backward run in about a third of a log-sum-exp's time. ``normalize``: each step's scores shifted to
    a maximum of 0 (right up to a constant per position, which is all marginals need; nothing then grows
    with the sentence's length).
    """
    seq = em.size(1)
    full = _full_steps(mask)
    emits = em.unbind(1)  # one (batch, k) view per step: cheaper than slicing at each step
    steps = mask.unsqueeze(2).unbind(1)  # one (batch, 1) view per step
    c = trans.max().detach()
    expt = torch.exp(trans - c)  # shape: (k, k), at most 1; forbidden transitions are 0
    alpha = start.unsqueeze(0) + emits[0]  # shape: (batch, k)
    if normalize:
        alpha = _shifted(alpha)
    alphas: List[torch.Tensor] = [alpha]
    for t in range(1, seq):
        nxt = _log_product(alpha, expt) + c + emits[t]  # shape: (batch, k)
        if normalize:
            nxt = _shifted(nxt)
        alpha = nxt if t < full else torch.where(steps[t], nxt, alpha)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1)


def backward_betas(em: torch.Tensor, mask: torch.Tensor, trans: torch.Tensor, end: torch.Tensor,
                   normalize: bool = False) -> torch.Tensor:
    """Backward log-scores ``beta_t(i)`` ``(batch, seq, k)``: ``end`` at each sequence's last position
    (``normalize``: as in :func:`forward_alphas`)."""
    seq = em.size(1)
    full = _full_steps(mask)
    emits = em.unbind(1)  # one (batch, k) view per step
    steps = mask.unsqueeze(2).unbind(1)  # one (batch, 1) view per step
    c = trans.max().detach()
    expt_t = torch.exp(trans - c).t()  # shape: (k, k), at most 1; forbidden transitions are 0
    ends = end.unsqueeze(0).expand(em.size(0), -1)  # shape: (batch, k)
    if normalize:
        ends = _shifted(ends)
    beta = ends
    betas: List[torch.Tensor] = [beta]  # positions seq - 1, seq - 2, ..., 0
    for i in range(seq - 1):
        t = seq - 2 - i
        prev = _log_product(emits[t + 1] + beta, expt_t) + c  # shape: (batch, k)
        if normalize:
            prev = _shifted(prev)
        # position t + 1 may be padding: then t is the last real position (beta = end) or padding itself
        beta = prev if t + 1 < full else torch.where(steps[t + 1], prev, ends)
        betas.append(beta)
    return torch.stack(betas, dim=1).flip(1)


def log_partition(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                  end: torch.Tensor) -> torch.Tensor:
    """``log Z`` per sequence by the forward algorithm, shape ``(batch,)``."""
    last = forward_alphas(em, mask, start, trans)[:, -1]  # padded steps carry the last real alpha
    return torch.logsumexp(last + end.unsqueeze(0), dim=1)


def sequence_score(em: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
                   trans: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The unnormalized log-score of the tag sequences ``tags`` (long ``(batch, seq)``), shape ``(batch,)``."""
    maskf = mask.to(em.dtype)  # shape: (batch, seq)
    emit = em.gather(2, tags.unsqueeze(2)).squeeze(2) * maskf  # shape: (batch, seq)
    step = trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]  # shape: (batch, seq - 1)
    last = tags.gather(1, (mask.long().sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # shape: (batch,)
    return start[tags[:, 0]] + emit.sum(1) + step.sum(1) + end[last]


def viterbi(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
            end: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Best tag sequences ``(batch, seq)`` and their scores ``(batch,)``; padding holds the last real tag.

    The forward pass keeps each step's best scores alone, laid out ``(k, batch)``: the maximum over the
    previous tag is then a reduction over the leading axis of a ``(k, k, batch)`` sum, whose rows are
    contiguous, several times faster than a maximum with indices over ``(batch, k, k)``. The backtrack
    finds, for the one tag chosen at each step, the previous tag that gave it its score: the same sums
    as the forward pass, so the same choice (the first of equal scores, as a maximum's index is).
    """
    seq = em.size(1)
    full = _full_steps(mask)
    emits = em.permute(1, 2, 0).contiguous().unbind(0)  # one (k, batch) per step
    steps = mask.t().unbind(0)  # one (batch,) per step
    trans3 = trans.unsqueeze(2)  # shape: (k, k, 1), [previous tag, tag]
    score = start.unsqueeze(1) + emits[0]  # shape: (k, batch)
    scores: List[torch.Tensor] = [score]
    # steps before the shortest sequence's end are real for the whole batch: no masking there
    for t in range(1, full):
        score = (score.unsqueeze(1) + trans3).amax(dim=0) + emits[t]  # shape: (k, batch)
        scores.append(score)
    for t in range(full, seq):
        nxt = (score.unsqueeze(1) + trans3).amax(dim=0) + emits[t]  # shape: (k, batch)
        score = torch.where(steps[t].unsqueeze(0), nxt, score)  # a padded step keeps the last real scores
        scores.append(score)
    final, last = (score + end.unsqueeze(1)).max(dim=0)  # shape: (batch,)
    path: List[torch.Tensor] = [last]
    for i in range(seq - 1):
        t = seq - 1 - i  # `last` holds each sequence's tag at t: which tag at t - 1 led to it
        prev = (scores[t - 1] + trans.index_select(1, last)).max(dim=0)[1]  # shape: (batch,); faster than argmax
        last = prev if t < full else torch.where(steps[t], prev, last)  # padded steps hold the tag
        path.append(last)
    # flipped as a tensor, not by list.reverse(): the ONNX export gets a reversed list wrong
    return torch.stack(path, dim=1).flip(1), final  # shape: (batch, seq), (batch,)


def marginals(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
              end: torch.Tensor) -> torch.Tensor:
    """Posterior probability of each tag at each position ``(batch, seq, k)``, in float32 (float64 for
    float64 inputs).

    Forward-backward normalized at each step (``normalize``): only a position's scores relative to each
    other matter for its marginals, so float32 is as exact as float64 was in log space (to 1e-6 on a
    5,000-token sentence). A tag that cannot be reached gets probability 0.
    """
    if em.dtype != torch.float64:  # half precision (autocast) is not enough for exp and log
        em, start, trans, end = em.float(), start.float(), trans.float(), end.float()
    alphas = forward_alphas(em, mask, start, trans, True)  # shape: (batch, seq, k)
    betas = backward_betas(em, mask, trans, end, True)  # shape: (batch, seq, k)
    return torch.softmax(alphas + betas, dim=2)


_SCRIPTED: dict[str, Any] = {}


def scripted(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled by ``torch.jit.script`` (once per process), for tracing: its loops stay loops."""
    if fn.__name__ not in _SCRIPTED:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.script")
            _SCRIPTED[fn.__name__] = torch.jit.script(fn)
    return _SCRIPTED[fn.__name__]
