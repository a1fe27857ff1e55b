"""The fits check: a small tagger with the part in its slot learns the tiny corpus, and a part that
estimates its size before it is built estimates it right."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import SeqtagError
from .common import TINY_CORPUS, TINY_LABELS, CheckOptions, fail

if TYPE_CHECKING:
    from ..model import TaggerModel
    from ..tagger import Tagger

__all__ = ["tiny_config", "check_fits"]

# The other slots of the tagger a check trains: small, fast and deterministic (no dropout).
_BASE_MODEL: dict[str, Any] = {
    "tokenizer": {"type": "whitespace.v1"},
    "embedding": {"type": "word.v1", "dim": 16, "casing_dim": 4, "word_dropout": 0.0},
    "encoder": {"type": "lstm.v1", "hidden_size": 16},
    "head": {"type": "softmax.v1"},
    "dropout": 0.0,
}


def tiny_config(kind: str, part_cfg: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full tagger config that the checks train: small defaults, ``part_cfg`` in the ``kind`` slot."""
    from ..config import build_config, merge

    model = merge(_BASE_MODEL, dict(context or {}))
    model[kind] = dict(part_cfg)
    try:
        return build_config("ner", {"scheme": "IOB2", "model": model, "training": {"threads": 1}})
    except SeqtagError as exc:
        raise fail("fits", kind, str(part_cfg.get("type")), f"the tagger config does not build: {exc.one_line()}") \
            from None


def _accuracy(model: "TaggerModel", sents: Sequence[tuple[list[str], list[int]]]) -> float:
    """Token accuracy of ``model`` on ``sents`` (tokens, tag ids), counted over real positions."""
    import torch

    from ..model import make_batch

    model.eval()
    with torch.no_grad():
        batch = make_batch(model, [t for t, _ in sents], [g for _, g in sents])
        best, _ = model.decode(batch)  # shape: (batch, seq)
    assert batch.tags is not None
    right = int(((best == batch.tags) & batch.mask).sum())
    return right / int(batch.mask.sum())


def _check_estimate(kind: str, name: str, part_cfg: Mapping[str, Any], model: "TaggerModel",
                    labels: Sequence[str]) -> None:
    """A part with an ``estimate_size`` hook estimates its built size: seqtag refuses models too large for
    the machine's memory from the estimate, before building them (see :mod:`seqtag.resources`)."""
    from ..resources import VocabSource, estimate_part

    if kind == "tokenizer":
        return
    wired: tuple[Any, ...] = {
        "embedding": (VocabSource(loaded=True, assets=model.get_assets()["embedding"]),),
        "encoder": (model.embedding.output_dim,),
        "head": (model.encoder.output_dim, list(labels)),
    }[kind]
    part = getattr(model, kind)
    size = estimate_part(kind, part_cfg, *wired)
    if not size.estimated:  # no hook, or it returned None: nothing to hold the part to
        return
    real = sum(p.numel() for p in part.parameters())
    if abs(size.parameters - real) > 0.01 * real or size.output_dim != getattr(part, "output_dim", size.output_dim):
        raise fail("fits", kind, name, f"estimate_size gives {size.parameters:,} parameters and output size "
                   f"{size.output_dim}; the built part has {real:,} and {getattr(part, 'output_dim', '?')} (the "
                   "parameters must agree within 1%: seqtag refuses models too large for memory from the estimate)")


def check_fits(kind: str, name: str, config: Mapping[str, Any],
               options: CheckOptions | None = None) -> tuple["Tagger", dict[str, Any]]:
    """Train the tagger ``config`` on :data:`~seqtag.testing.TINY_CORPUS` until it fits it.

    Returns:
        The trained tagger and the run's numbers: ``steps``, ``train_accuracy``, ``first_loss``, ``last_loss``.

    Raises:
        AssertionError: ``[seqtag.testing fits] KIND 'NAME': ...``.
    """
    import torch

    from ..model import TaggerModel, make_batch
    from ..tagger import Tagger

    opts = options or CheckOptions()
    torch.manual_seed(opts.seed)
    rng = random.Random(opts.seed)
    labels = list(TINY_LABELS)
    index = {t: i for i, t in enumerate(labels)}
    data = [(toks, [index[t] for t in tags]) for toks, tags in TINY_CORPUS]
    try:
        model = TaggerModel(config["model"], labels, config["scheme"], sentences=[t for t, _ in TINY_CORPUS])
    except SeqtagError as exc:
        raise fail("fits", kind, name, f"the tagger does not build: {exc.one_line()}") from None
    _check_estimate(kind, name, config["model"][kind], model, labels)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise fail("fits", kind, name, "the tagger has no trainable parameter")
    optimizer = torch.optim.Adam(params, lr=opts.lr)
    losses: list[float] = []
    acc, step = 0.0, 0
    while step < opts.max_steps:
        order = list(range(len(data)))
        rng.shuffle(order)
        for b in range(0, len(order), opts.batch_size):
            idx = order[b: b + opts.batch_size]
            model.train()
            batch = make_batch(model, [data[i][0] for i in idx], [data[i][1] for i in idx])
            loss = model.loss(batch)
            if not bool(torch.isfinite(loss)):
                raise fail("fits", kind, name, f"the training loss became {loss.item()} at step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            losses.append(float(loss.item()))
            step += 1
            if step % opts.eval_every == 0 or step >= opts.max_steps:
                acc = _accuracy(model, data)
                if acc >= opts.min_accuracy:
                    break
            if step >= opts.max_steps:
                break
        if acc >= opts.min_accuracy:
            break
    first = sum(losses[:3]) / len(losses[:3])
    last = sum(losses[-3:]) / len(losses[-3:])
    if acc < opts.min_accuracy:
        raise fail("fits", kind, name, f"training accuracy on the tiny corpus is {acc:.1%} after {step} steps "
                   f"(needs {opts.min_accuracy:.0%}; loss {first:.3f} -> {last:.3f}); check that gradients flow "
                   "through the part, or raise CheckOptions.max_steps / lr")
    if len(losses) > 3 and not last < first:
        raise fail("fits", kind, name, f"the loss did not fall ({first:.4f} -> {last:.4f})")
    tagger = Tagger(json.loads(json.dumps(config)), list(labels), model)
    return tagger, {"steps": step, "train_accuracy": acc, "first_loss": first, "last_loss": last}
