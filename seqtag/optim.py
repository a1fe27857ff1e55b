"""Row-sparse training of embedding tables: the gradient of a table holds the rows a batch used, and Adam
updates those rows alone, with the same result as Adam over the whole table.

A word table of CoNLL-2003 (17,494 words x 100) is most of a tagger's weights, but a batch of 16 sentences
reads a few hundred of its rows. With a dense gradient every step zeroes the whole table's gradient, takes
its norm for clipping, and has Adam read and write the table and both of its moments: about 80 MB of memory
traffic a step, a fifth of a training step on one CPU thread. With ``training.sparse_embeddings`` (on by
default) the tables that an :class:`~seqtag.embeddings.Embedding` names in ``sparse_tables`` get row-sparse
gradients (``nn.Embedding(sparse=True)``), :func:`clip_gradients` takes their norm over the rows used, and
:class:`RowSparseAdam` updates just those rows.

"Lazy" Adam (``torch.optim.SparseAdam``) would stop there: a row's moments would rest in the steps that do
not use it. Plain Adam goes on moving such a row by its decaying momentum, and on CoNLL-2003 the lazy
update trained the word table visibly slower (dev F1 about 1.2 lower after 5 epochs, seeds 0-2). So
:class:`RowSparseAdam` catches a row up before it is read again: the steps it missed had a zero gradient,
so its moments decay by ``beta1 ** n`` and ``beta2 ** n`` and its weights move by the sum of those steps'
updates, a short geometric series over the learning rates and bias corrections of each missed step
(:meth:`RowSparseAdam.catch_up`). The table's forward hook brings the rows of each training batch up to
date before they are read, and :meth:`RowSparseAdam.flush` (called by the trainer before dev is scored,
so also before the best model is saved) all of them. A checkpoint saves the rows as they stand and the
sums they still need, so a resumed run goes on exactly as an uninterrupted one. The weights are then Adam's up to
``eps`` in the missed steps (``eps`` against the decayed ``sqrt(v)``; a relative 1e-3 at most for rows
whose gradients are about 1e-5) and float rounding.

Row-sparse training needs the missed steps to be pure decay, so it is off (the table dense) with
``weight_decay``, with weight averaging (``training.average`` reads every row at every step), in
distributed runs (the ranks average dense gradients), for SGD and in the spaCy component.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import nn

__all__ = ["RowSparseAdam", "clip_gradients", "sparse_tables", "set_sparse_tables"]


def sparse_tables(model: nn.Module) -> list[nn.Embedding]:
    """The trainable ``nn.Embedding`` tables that the model's embedding parts allow to train row-sparse
    (each part names them, dotted paths below it, in its ``sparse_tables`` attribute)."""
    from .embeddings.base import Embedding

    found: dict[int, nn.Embedding] = {}
    for module in model.modules():
        if isinstance(module, Embedding):
            for name in getattr(module, "sparse_tables", ()):
                try:
                    table = module.get_submodule(name)
                except AttributeError:
                    continue
                if isinstance(table, nn.Embedding) and table.weight.requires_grad:
                    found[id(table)] = table
    return list(found.values())


def set_sparse_tables(model: nn.Module, optimizer: "RowSparseAdam | None") -> list[nn.Embedding]:
    """Train :func:`sparse_tables` row-sparse with ``optimizer`` (their sparse gradients on, and its
    :meth:`~RowSparseAdam.catch_up` as their forward pre-hook), or dense again (``None``); returns the tables."""
    tables = sparse_tables(model)
    for table in tables:
        old = table.__dict__.pop("_seqtag_catch_up", None)
        if old is not None:
            old.remove()
        table.sparse = optimizer is not None
        if optimizer is not None:
            table.__dict__["_seqtag_catch_up"] = table.register_forward_pre_hook(optimizer._before_lookup)
    return tables


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their joint L2 norm is at most ``max_norm``; returns the norm before.

    ``torch.nn.utils.clip_grad_norm_``'s rule (scale by ``max_norm / (norm + 1e-6)`` when that is below 1),
    for dense and row-sparse gradients alike: a sparse gradient is first coalesced (its repeated rows
    summed), so its norm is that of the dense gradient it stands for. On a CPU a scale of 1 is skipped (the
    same numbers, without rewriting every gradient at each step).
    """
    grads: list[torch.Tensor] = []
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())
        else:
            grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    norms = [torch.linalg.vector_norm(g.detach(), 2.0).to(device) for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    if device.type == "cpu" and float(coef) == 1.0:
        return total
    for g in grads:
        g.detach().mul_(coef.to(g.device, g.dtype))
    return total


class RowSparseAdam(torch.optim.Adam):
    """Adam (or AdamW, ``decoupled_weight_decay=True``) that also takes row-sparse gradients.

    Parameters with a dense gradient step as :class:`torch.optim.Adam` does (fused when ``fused=True``).
    A parameter with a sparse gradient (an ``nn.Embedding(sparse=True)`` table) updates the rows in its
    gradient by Adam's rule, after catching them up on the steps they missed (see the module's doc); its
    state holds Adam's ``step``, ``exp_avg`` and ``exp_avg_sq`` and ``row_step`` (the step each row is up
    to), so checkpoints save and resume it alike. ``amsgrad``, ``maximize`` and weight decay are not
    supported for sparse gradients (a missed step would not be pure decay).
    """

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        # gradient scaling (fp16) unscales before the step and skips a step with inf/NaN gradients for us
        self._step_supports_amp_scaling = False
        # per sparse parameter, the sums a row behind catches up by (_Steps; saved by state_dict)
        self._coef: dict[int, _Steps] = {}

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse = [(group, p, p.grad) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        for _, p, _ in sparse:  # the dense step skips parameters without a gradient
            p.grad = None
        try:
            super().step()
        finally:
            for _, p, grad in sparse:
                p.grad = grad
        for group, p, grad in sparse:
            self._rows_step(group, p, grad)
        return loss

    def _group_of(self, p: torch.Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))

    def _before_lookup(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """The tables' forward pre-hook: a training lookup reads its rows up to date."""
        weight = getattr(module, "weight", None)
        if module.training and torch.is_grad_enabled() and weight is not None and self.state.get(weight):
            self.catch_up(weight, args[0].reshape(-1).unique())

    @torch.no_grad()
    def catch_up(self, p: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Bring ``rows`` of the sparse parameter ``p`` (all of them: ``None``) up to its last step: apply
        the updates of the steps each missed, in which its gradient was 0."""
        state = self.state.get(p)
        if not state or "row_step" not in state:
            return
        done = int(state["step"])
        last = state["row_step"] if rows is None else state["row_step"].index_select(0, rows)
        behind = last < done
        if not bool(behind.any()):
            return
        if rows is None:
            rows = torch.arange(p.size(0), device=p.device)
        rows, last = rows[behind], last[behind]
        group = self._group_of(p)
        beta1, beta2 = _betas(group)
        missed = (done - last).to(torch.float64)  # shape: (rows,)
        weights = self._coef[id(p)].sums(last).to(p.device, p.dtype)  # shape: (rows,)
        exp_avg, exp_avg_sq = state["exp_avg"].index_select(0, rows), state["exp_avg_sq"].index_select(0, rows)
        move = exp_avg_sq.sqrt().clamp_min_(1e-30).reciprocal_().mul_(exp_avg).mul_(weights.neg_().unsqueeze(1))
        p.index_add_(0, rows, move)
        state["exp_avg"].index_copy_(0, rows, exp_avg.mul_((beta1 ** missed).to(p.device, p.dtype).unsqueeze(1)))
        state["exp_avg_sq"].index_copy_(0, rows,
                                        exp_avg_sq.mul_((beta2 ** missed).to(p.device, p.dtype).unsqueeze(1)))
        state["row_step"][rows] = done

    def flush(self) -> None:
        """Bring every row of every sparse parameter up to date (before its weights are read whole)."""
        for group in self.param_groups:
            for p in group["params"]:
                if "row_step" in self.state.get(p, {}):
                    self.catch_up(p)

    def state_dict(self) -> dict[str, Any]:
        """Adam's state, and for each sparse parameter the sums that its rows behind still need
        (``row_sums`` from step ``row_sums_from`` on): the rows are saved as they stand, so a run resumed
        from it goes on exactly as the run that saved it."""
        saved = super().state_dict()
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p, {})
                if "row_step" in state:
                    oldest = int(state["row_step"].min())
                    saved["state"][index[id(p)]] = {**saved["state"][index[id(p)]],
                                                    "row_sums": self._coef[id(p)].since(oldest).clone(),
                                                    "row_sums_from": oldest}
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        extra = {int(i): (st["row_sums"], int(st["row_sums_from"])) for i, st in state_dict["state"].items()
                 if "row_sums" in st}
        state_dict = {**state_dict, "state": {i: {k: v for k, v in st.items() if k not in ("row_sums", "row_sums_from")}
                                              for i, st in state_dict["state"].items()}}
        super().load_state_dict(state_dict)  # (it would cast the float64 sums to the weights' dtype)
        self._coef = {}
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in enumerate(params):
            state = self.state.get(p, {})
            if "row_step" in state:
                state["row_step"] = state["row_step"].to(device=p.device, dtype=torch.long)
                ratio = _ratio(self._group_of(p))
                if i in extra:
                    self._coef[id(p)] = _Steps(extra[i][1], ratio, extra[i][0])
                else:  # saved flushed: every row at the saved step
                    self._coef[id(p)] = _Steps(int(state["step"]), ratio)

    def _rows_step(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor) -> None:
        if group["amsgrad"] or group["maximize"] or group["weight_decay"]:
            raise ValueError("RowSparseAdam: amsgrad, maximize and weight decay are not supported for sparse "
                             "gradients (train the table dense: training.sparse_embeddings = false)")
        grad = grad.coalesce()
        rows, values = grad._indices()[0], grad._values()
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["row_step"] = torch.zeros(p.size(0), dtype=torch.long, device=p.device)
            self._coef[id(p)] = _Steps(0, _ratio(group))
        self.catch_up(p, rows)  # rows the hook did not see (a lookup outside the table's forward)
        state["step"] += 1
        step = int(state["step"])
        beta1, beta2 = _betas(group)
        lr, eps = float(group["lr"]), float(group["eps"])
        bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
        self._coef[id(p)].append(lr * math.sqrt(bias2) / bias1, state["row_step"])
        state["row_step"][rows] = step
        weights = p.index_select(0, rows)  # shape: (rows, dim)
        exp_avg = state["exp_avg"].index_select(0, rows).lerp_(values, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        denom = exp_avg_sq.sqrt_().div_(math.sqrt(bias2)).add_(eps)
        weights.addcdiv_(exp_avg, denom, value=-lr / bias1)
        p.index_copy_(0, rows, weights)


def _betas(group: dict[str, Any]) -> tuple[float, float]:
    """A parameter group's Adam betas as floats (they may be tensors)."""
    beta1, beta2 = group["betas"]
    return float(beta1), float(beta2)


def _ratio(group: dict[str, Any]) -> float:
    """How much of a step's update a row carries into the next step it misses: ``beta1 / sqrt(beta2)``
    (its momentum decays by ``beta1``, the root of its second moment by ``sqrt(beta2)``)."""
    beta1, beta2 = _betas(group)
    return beta1 / math.sqrt(beta2)


class _Steps:
    """A sparse parameter's missed-step sums: for each step ``s`` from ``base`` on, ``sums[s]`` is
    ``sum_j coef[s + j] * r ** j`` over the steps ``s + j`` done since, where ``coef[k]`` is step ``k``'s
    ``lr * sqrt(1 - beta2^k) / (1 - beta1^k)`` and ``r`` is :func:`_ratio`. A row last updated at step ``s``
    moves by ``sums[s] * m / sqrt(v)`` to catch up. Each new step adds its term to the last ``span`` sums
    only, ``r ** span < 1e-12`` (263 at Adam's betas; an older sum would gain less than 1e-12 of its first
    term), so a step costs ``span`` multiply-adds and a catch-up one lookup. A float64 buffer grown by
    doubling; the sums before the oldest row's step are dropped as it grows."""

    def __init__(self, base: int, ratio: float, sums: torch.Tensor | None = None) -> None:
        """From step ``base`` on, with ``sums`` (a saved :meth:`since`) or none yet."""
        span = max(1, int(math.ceil(math.log(1e-12) / math.log(ratio)))) if 0 < ratio < 1 else 1
        self._powers = torch.tensor([ratio ** d for d in range(span, 0, -1)], dtype=torch.float64)  # r^span..r
        self.base, self.size = base, 1 if sums is None else sums.numel()
        self._buf = torch.zeros(max(1024, 2 * self.size), dtype=torch.float64)  # [0]: step `base` itself
        if sums is not None:
            self._buf[: self.size] = sums.to(torch.float64)

    def since(self, step: int) -> torch.Tensor:
        """The sums from ``step`` on (a view)."""
        return self._buf[step - self.base: self.size]

    def sums(self, last: torch.Tensor) -> torch.Tensor:
        if int(last.min()) < self.base:
            raise RuntimeError("RowSparseAdam: a row is older than the steps kept")
        return self._buf[(last - self.base).cpu()]

    def append(self, value: float, row_step: torch.Tensor) -> None:
        """Add step ``base + size``, whose coefficient is ``value``; ``row_step``: each row's last step."""
        if self.size == self._buf.numel():
            oldest = int(row_step.min())
            keep = self._buf[oldest - self.base: self.size]
            buf = torch.zeros(max(1024, 2 * keep.numel()), dtype=torch.float64)
            buf[: keep.numel()] = keep
            self._buf, self.base, self.size = buf, oldest, keep.numel()
        first = max(0, self.size - self._powers.numel())
        self._buf[first: self.size].add_(self._powers[self._powers.numel() - (self.size - first):], alpha=value)
        self._buf[self.size] = 0.0
        self.size += 1
