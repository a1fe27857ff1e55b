"""Per-part learning rates: a part that sets ``learning_rate`` trains in its own optimizer group."""

from __future__ import annotations

import torch
from torch import nn

from seqtag.config import TrainingConfig
from seqtag.trainer import make_optimizer, param_groups


class _Part(nn.Module):
    def __init__(self, rate: float | None) -> None:
        super().__init__()
        self.inner = nn.Linear(2, 2)
        self.learning_rate = rate


def _model() -> nn.Module:
    model = nn.Module()
    model.head = nn.Linear(3, 2)
    model.slow = _Part(1e-5)
    model.slow.inner.learning_rate = 1e-4  # a part inside a part: the innermost rate wins
    model.slow.extra = nn.Parameter(torch.zeros(3))
    model.plain = _Part(None)
    model.frozen = nn.Linear(2, 2).requires_grad_(False)
    return model


def test_each_rate_gets_one_group_and_frozen_parameters_none() -> None:
    model = _model()
    groups = param_groups(model, 0.002)
    assert [g["lr"] for g in groups] == [0.002, 1e-5, 1e-4]  # the tagger's rate first: the one the log shows
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[0] == {id(p) for p in (*model.head.parameters(), *model.plain.parameters())}
    assert ids[1] == {id(model.slow.extra)}
    assert ids[2] == {id(p) for p in model.slow.inner.parameters()}
    assert not {id(p) for p in model.frozen.parameters()} & set().union(*ids)


def test_a_model_without_rates_is_one_group_and_the_optimizer_steps_each_group_at_its_rate() -> None:
    plain = nn.Sequential(nn.Linear(2, 2), _Part(None))
    assert [g["lr"] for g in param_groups(plain, 0.1)] == [0.1]
    model = _model()
    opt = make_optimizer(model, TrainingConfig(optimizer="sgd", lr=0.1, momentum=0.0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p) if p.requires_grad else None
    opt.step()
    for name, p in model.named_parameters():
        rate = 1e-4 if name.startswith("slow.inner") else 1e-5 if name.startswith("slow") else 0.1
        rate = 0.0 if name.startswith("frozen") else rate
        torch.testing.assert_close(before[name] - p.detach(), torch.full_like(p, rate))
