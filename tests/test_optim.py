"""Row-sparse embedding tables: RowSparseAdam, clip_gradients and the trainer's switch."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from seqtag.checkpoint import _flatten_optimizer, _unflatten_optimizer
from seqtag.config import TrainingConfig
from seqtag.embeddings.base import Embedding
from seqtag.model import TaggerModel, make_batch
from seqtag.optim import RowSparseAdam, clip_gradients, set_sparse_tables, sparse_tables
from seqtag.trainer import apply_step, make_optimizer


def _tables(seed: int = 0) -> tuple[nn.Embedding, nn.Embedding]:
    torch.manual_seed(seed)
    dense = nn.Embedding(6, 4)
    sparse = nn.Embedding(6, 4, sparse=True)
    sparse.weight.data.copy_(dense.weight.data)
    return dense, sparse


@pytest.mark.parametrize("fused", [False, True])
def test_every_row_used_is_plain_adam(fused: bool) -> None:
    """When each step reads every row, the row-sparse update is Adam's to float precision."""
    dense, sparse = _tables()
    ref = torch.optim.Adam(dense.parameters(), lr=0.05)
    opt = RowSparseAdam(sparse.parameters(), lr=0.05, fused=fused)
    for step in range(5):
        ids = torch.tensor([[0, 1, 2, 3, 4, 5, 2, 2]]).roll(step, 1)  # repeated rows are summed
        target = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(step))
        for table, o in ((dense, ref), (sparse, opt)):
            o.zero_grad(set_to_none=True)
            ((table(ids) - target) ** 2).sum().backward()
            o.step()
        assert sparse.weight.grad is not None and sparse.weight.grad.is_sparse
    torch.testing.assert_close(sparse.weight.data, dense.weight.data, rtol=1e-5, atol=1e-6)
    assert float(opt.state[sparse.weight]["step"]) == 5.0


def _train_pair(steps: int, lr_at: dict[int, float], save_at: int | None = None) -> tuple[nn.Embedding, ...]:
    """A dense table under torch's Adam and a row-sparse one under RowSparseAdam, trained on the same
    batches, each reading a few of the rows (some rows wait many steps); the losses must agree at each step,
    so every row a batch reads is up to date."""
    dense, sparse = _tables()
    ref = torch.optim.Adam(dense.parameters(), lr=0.05)
    opt = RowSparseAdam(sparse.parameters(), lr=0.05, fused=True)
    set_sparse_tables(nn.ModuleDict({"word": _Part(sparse)}), opt)
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        if step == save_at:  # a checkpoint: the state saved and loaded into a new optimizer and table
            tensors, plain = _flatten_optimizer(opt.state_dict())
            saved = _unflatten_optimizer(json.loads(json.dumps(plain)), tensors)
            weights = sparse.weight.detach().clone()
            sparse = nn.Embedding(6, 4, sparse=True)
            sparse.weight.data.copy_(weights)
            opt = RowSparseAdam(sparse.parameters(), lr=0.05, fused=True)
            opt.load_state_dict(saved)
            set_sparse_tables(nn.ModuleDict({"word": _Part(sparse)}), opt)
        for o in (ref, opt):
            for group in o.param_groups:
                group["lr"] = lr_at.get(step, group["lr"])
        ids = torch.tensor([[0, 1], [5, 5]]) if step % 7 else torch.tensor([[2, 3], [4, 4]])
        if step in (0, 200):
            ids = torch.tensor([[0, 1, 2, 3, 4, 5]])
        target = torch.randn(*ids.shape, 4, generator=gen)
        losses = []
        for table, o in ((dense, ref), (sparse, opt)):
            o.zero_grad(set_to_none=True)
            loss = ((table(ids) - target) ** 2).sum()
            loss.backward()
            o.step()
            losses.append(loss.item())
        assert losses[1] == pytest.approx(losses[0], rel=1e-5), step
    opt.flush()
    return dense, sparse


class _Part(Embedding):
    sparse_tables = ("embed",)

    def __init__(self, table: nn.Embedding) -> None:
        super().__init__()
        self.embed = table


def test_rows_caught_up_match_adam() -> None:
    """Rows left out of many steps (more than the series keeps, and through learning-rate changes) are
    moved as Adam moves them, before they are read and at a flush."""
    dense, sparse = _train_pair(260, {30: 0.02, 120: 0.005})
    torch.testing.assert_close(sparse.weight.data, dense.weight.data, rtol=1e-5, atol=1e-6)


def test_a_saved_state_resumes_exactly() -> None:
    """A state saved mid-run (rows behind included, through JSON and safetensors as a checkpoint holds it)
    and loaded into a new optimizer goes on to the very weights of the run that was not interrupted."""
    dense, resumed = _train_pair(60, {30: 0.02}, save_at=25)
    _, uninterrupted = _train_pair(60, {30: 0.02})
    assert torch.equal(resumed.weight.data, uninterrupted.weight.data)
    torch.testing.assert_close(resumed.weight.data, dense.weight.data, rtol=1e-5, atol=1e-6)


def test_weight_decay_needs_a_dense_table() -> None:
    _, sparse = _tables()
    opt = RowSparseAdam(sparse.parameters(), lr=0.05, weight_decay=0.1)
    sparse(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="sparse_embeddings = false"):
        opt.step()


def test_dense_parameters_step_beside_sparse_ones() -> None:
    """One optimizer, one group: a linear layer's dense gradient steps as Adam's, the table's rows lazily."""
    torch.manual_seed(0)
    lin, lin_ref = nn.Linear(4, 2), nn.Linear(4, 2)
    lin_ref.load_state_dict(lin.state_dict())
    _, table = _tables()
    opt = RowSparseAdam([*lin.parameters(), table.weight], lr=0.01)
    ref = torch.optim.Adam(lin_ref.parameters(), lr=0.01)
    x = torch.randn(3, 4)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        ref.zero_grad(set_to_none=True)
        (lin(x).sum() + lin(table(torch.tensor([0, 3]))).sum()).backward()
        (lin_ref(x).sum() + lin_ref(table.weight.detach()[[0, 3]]).sum()).backward()
        opt.step()
        ref.step()
        table.weight.grad = None
    for a, b in zip(lin.parameters(), lin_ref.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_gradients_matches_torch(max_norm: float) -> None:
    """Clipped or not, the gradients are torch's clip_grad_norm_'s of the dense gradients."""
    torch.manual_seed(0)
    dense, sparse = _tables()
    lin = nn.Linear(4, 1)
    lin_ref = nn.Linear(4, 1)
    lin_ref.load_state_dict(lin.state_dict())
    ids = torch.tensor([[0, 2, 2, 5]])
    lin(sparse(ids)).sum().backward()
    lin_ref(dense(ids)).sum().backward()
    total = clip_gradients([sparse.weight, *lin.parameters()], max_norm)
    ref_total = torch.nn.utils.clip_grad_norm_([dense.weight, *lin_ref.parameters()], max_norm)
    torch.testing.assert_close(total, ref_total)
    assert sparse.weight.grad is not None and dense.weight.grad is not None
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)
    for a, b in zip(lin.parameters(), lin_ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def _model() -> TaggerModel:
    cfg = {"embedding": {"type": "concat.v1", "parts": [{"type": "word.v1", "dim": 8, "casing_dim": 4,
                                                         "word_dropout": 0.0},
                                                        {"type": "char_cnn.v1", "char_dim": 4, "filters": 6}]},
           "encoder": {"type": "lstm.v1", "hidden_size": 8}, "head": {"type": "crf.v1"}}
    sents = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    return TaggerModel(cfg, ["O", "B-ORG", "B-PER"], "IOB2", sentences=sents)


@pytest.mark.parametrize("settings, sparse", [({}, True), ({"sparse_embeddings": False}, False),
                                              ({"optimizer": "sgd"}, False), ({"optimizer": "adamw"}, True),
                                              ({"weight_decay": 0.01}, False), ({"average": 0.99}, False)])
def test_the_trainer_switches_the_word_table(settings: dict, sparse: bool) -> None:
    model = _model()
    tables = sparse_tables(model)
    assert [t.weight.shape[1] for t in tables] == [8]  # the word table; not the casing or character tables
    tc = TrainingConfig.from_dict({"lr": 0.01, **settings})
    opt = make_optimizer(model, tc)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    apply_step(model, opt, scaler, model.loss(make_batch(model, [["EU", "rejects", "German"]], [[1, 0, 0]])),
               tc.grad_clip)
    before = tables[0].weight.detach().clone()
    apply_step(model, opt, scaler, model.loss(make_batch(model, [["Peter"]], [[2]])), tc.grad_clip)
    assert tables[0].weight.grad is not None and tables[0].weight.grad.is_sparse == sparse
    changed = int((tables[0].weight.detach() != before).any(1).sum())
    # row-sparse: the second batch's one word, until the others are read or flushed; dense: the first
    # batch's words go on moving (momentum), and with weight decay every row
    assert changed == 1 if sparse else changed >= 4
    if sparse:
        opt.flush()
        assert int((tables[0].weight.detach() != before).any(1).sum()) == 4
    # a distributed run keeps the table dense whatever the setting
    make_optimizer(model, tc, sparse=False)
    assert not tables[0].sparse and not tables[0]._forward_pre_hooks
