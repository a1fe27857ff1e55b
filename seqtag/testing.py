"""The contract kit: the checks every part (tokenizer, embedding, encoder, head) must pass.

Plugin authors call these from their own tests::

    from seqtag.testing import check_encoder

    def test_my_encoder_keeps_the_contract(tmp_path):
        check_encoder("my_encoder.v1", distribution="seqtag-my-encoder", hidden_size=32)

:func:`check_part` (and its shorthands :func:`check_tokenizer`, :func:`check_embedding`,
:func:`check_encoder`, :func:`check_head`) runs, in order:

1. **registered**: the versioned name is found through the registry (entry points included) and, when
   ``distribution`` is given, it comes from that installed distribution; the part has a description.
2. **config**: the keyword arguments pass the signature check; the resolved config (every default
   filled in) is JSON and builds the part again.
3. **contract**: the kind's own rules: shapes, a bool padding mask that never changes real positions,
   gradients, JSON assets, tokens whose offsets point into the text, confidences in ``[0, 1]``.
4. **fits**: a small tagger with the part in its slot trains on a tiny built-in corpus until its
   training accuracy reaches ``min_accuracy`` (100 % by default), and its loss falls. A part with an
   ``estimate_size`` hook (:mod:`seqtag.resources`) must estimate the built part's parameter count
   (within 1 %) and its output size.
5. **save/load**: the tagger is saved, the Python objects are deleted, the folder is moved, and it
   is loaded again in this process and in a fresh Python process (so nothing outside the saved
   folder is used, such as a module-level cache); the predictions must be identical.

Every failure is an :class:`AssertionError` that says which check failed and why. torch is imported
only when a check runs.
"""

from __future__ import annotations

import gc
import inspect
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from . import registry
from .errors import SeqtagError

if TYPE_CHECKING:
    import torch

    from .model import TaggerModel
    from .tagger import Tagger

__all__ = [
    "CheckOptions",
    "CheckReport",
    "TINY_CORPUS",
    "check_part",
    "check_tokenizer",
    "check_embedding",
    "check_encoder",
    "check_head",
    "check_registered",
    "check_config",
    "check_fits",
    "check_save_load",
    "tiny_config",
    "write_tiny_corpus",
]

KINDS = ("tokenizer", "embedding", "encoder", "head")

# A tiny NER corpus (IOB2). Every word type has one tag, so any part, even one without context, can
# fit it; the lengths vary (1 to 17 tokens) so batches always hold padding.
_TINY = """\
John/B-PER Smith/I-PER lives/O in/O Paris/B-LOC ./O
Mary/B-PER works/O for/O Acme/B-ORG Corp/I-ORG in/O Berlin/B-LOC ./O
The/O Olympics/B-MISC opened/O in/O Tokyo/B-LOC yesterday/O ./O
Acme/B-ORG Corp/I-ORG hired/O John/B-PER Smith/I-PER ./O
Peter/B-PER visited/O Rome/B-LOC and/O Madrid/B-LOC ./O
Globex/B-ORG said/O profits/O rose/O ./O
Anna/B-PER and/O Peter/B-PER met/O at/O the/O Olympics/B-MISC ./O
Berlin/B-LOC is/O bigger/O than/O Rome/B-LOC ./O
Mary/B-PER Jones/I-PER joined/O Globex/B-ORG Industries/I-ORG ./O
It/O rained/O in/O Madrid/B-LOC ./O
Tokyo/B-LOC
Yesterday/O John/B-PER Smith/I-PER and/O Mary/B-PER Jones/I-PER flew/O from/O Paris/B-LOC to/O Tokyo/B-LOC \
with/O Acme/B-ORG Corp/I-ORG staff/O ,/O it/O said/O
"""

TINY_CORPUS: list[tuple[list[str], list[str]]] = [
    ([w.rsplit("/", 1)[0] for w in line.split()], [w.rsplit("/", 1)[1] for w in line.split()])
    for line in _TINY.splitlines() if line.strip()
]
"""``(tokens, IOB2 tags)`` pairs that every check trains on."""

# Inputs whose predictions must survive saving and loading: the training sentences, unseen words,
# and raw texts (these go through the tagger's tokenizer).
_UNSEEN_TOKENS = [["Zorblax", "visited", "Quuxville", "on", "Tuesday", "."], ["x"],
                  ["Peter", "Smith", "and", "Globex", "Corp", "met", "in", "Rome", "."]]
_TEXTS = ["John Smith visited Tokyo with Mary.", "Acme Corp opened an office in Madrid .", "Berlin"]

# The other slots of the tagger a check trains: small, fast and deterministic (no dropout).
_BASE_MODEL: dict[str, Any] = {
    "tokenizer": {"type": "whitespace.v1"},
    "embedding": {"type": "word.v1", "dim": 16, "casing_dim": 4, "word_dropout": 0.0},
    "encoder": {"type": "lstm.v1", "hidden_size": 16},
    "head": {"type": "softmax.v1"},
    "dropout": 0.0,
}


@dataclass
class CheckOptions:
    """How hard the checks push.

    Args:
        max_steps: Most optimizer steps to fit the tiny corpus.
        lr: Adam learning rate for fitting.
        batch_size: Sentences per step (small, so batches hold padding).
        min_accuracy: Training token accuracy the tagger must reach, in ``[0, 1]``.
        eval_every: Steps between measurements of the training accuracy.
        seed: Seed of torch and of the batch order.
        fresh_process: Also load the saved tagger in a new Python process.
        timeout: Seconds the fresh process may take.
        atol: Largest difference allowed between confidences before and after loading, and between
            real positions with and without padding.
        context: Configs for the other slots of the tagger, e.g. ``{"encoder": {"type": "gru.v1"}}``.
        imports: Modules the fresh process imports before loading (for parts registered in code,
            not through an entry point; the module of such a part is imported automatically).
    """

    max_steps: int = 300
    lr: float = 0.01
    batch_size: int = 4
    min_accuracy: float = 1.0
    eval_every: int = 5
    seed: int = 0
    fresh_process: bool = True
    timeout: float = 300.0
    atol: float = 1e-4
    context: dict[str, Any] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """What :func:`check_part` saw: the fitting run and the times."""

    kind: str
    name: str
    distribution: str
    version: str | None
    config: dict[str, Any]
    steps: int = 0
    train_accuracy: float = 0.0
    first_loss: float = math.nan
    last_loss: float = math.nan
    seconds: dict[str, float] = field(default_factory=dict)


def _fail(check: str, kind: str, name: str, message: str) -> AssertionError:
    return AssertionError(f"[seqtag.testing {check}] {kind} {name!r}: {message}")


def _norm_dist(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise AssertionError(f"[seqtag.testing] unknown part kind {kind!r}; kinds: {', '.join(KINDS)}")


def write_tiny_corpus(folder: str | Path) -> Path:
    """Write :data:`TINY_CORPUS` as ``train.conll``, ``dev.conll`` and ``test.conll`` (``token tag`` lines).

    For command-line tests: ``seqtag train --dataset FOLDER ...`` trains on it in seconds.

    Returns:
        The folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join("\n".join(f"{w} {t}" for w, t in zip(toks, tags)) + "\n" for toks, tags in TINY_CORPUS)
    for split in ("train", "dev", "test"):
        (out / f"{split}.conll").write_text(text, encoding="utf-8")
    return out


# -- 1. registered ----------------------------------------------------------------------------------
def check_registered(kind: str, name: str, distribution: str | None = None) -> registry.PartInfo:
    """The part is found by its versioned name, from ``distribution`` (through its entry point) if given.

    Returns:
        The registry's :class:`~seqtag.registry.PartInfo` for the part.
    """
    _check_kind(kind)
    if not registry.NAME_PATTERN.match(name):
        raise _fail("registered", kind, name, "names are lower-case and end in a version, e.g. 'my_encoder.v1'")
    reg = registry.get_registry(kind)
    try:
        info = reg.info(name)
    except SeqtagError as exc:
        raise _fail("registered", kind, name, f"not found by name: {exc.one_line()}") from None
    if name not in reg.names():
        raise _fail("registered", kind, name, "found by info() but missing from names() (and `seqtag plugins`)")
    if distribution is not None:
        if _norm_dist(info.distribution) != _norm_dist(distribution):
            raise _fail("registered", kind, name, f"registered by {info.distribution!r}, expected {distribution!r}")
        eps = [ep for ep in entry_points(group=reg.group) if ep.name == name]
        if not eps:
            raise _fail("registered", kind, name, f"no entry point named {name!r} in the group {reg.group!r}; "
                        f"declare it in pyproject.toml: [project.entry-points.\"{reg.group}\"] "
                        f"\"{name}\" = \"your_module:YourClass\" and reinstall the distribution")
        dists = {_norm_dist(ep.dist.name) for ep in eps if ep.dist is not None}
        if _norm_dist(distribution) not in dists:
            raise _fail("registered", kind, name, f"the entry point comes from {sorted(dists)}, not {distribution!r}")
    if not info.description:
        raise _fail("registered", kind, name, "has no docstring; its first line is the description "
                    "that `seqtag plugins` shows")
    if not callable(info.obj):
        raise _fail("registered", kind, name, f"registered object {info.obj!r} is not callable")
    wired = {"encoder": ("input_dim",), "head": ("input_dim", "labels", "scheme")}.get(kind, ())
    try:
        params = inspect.signature(info.obj).parameters
    except (TypeError, ValueError):
        raise _fail("registered", kind, name, "its signature cannot be read; the config check needs it") from None
    missing = [w for w in wired if w not in params]
    if missing:
        raise _fail("registered", kind, name, f"__init__ must take {', '.join(missing)} (wired by the model)")
    return info


# -- 2. config --------------------------------------------------------------------------------------
def check_config(kind: str, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The kwargs pass the signature check and the resolved config is JSON that resolves to itself.

    Returns:
        The resolved part config (``type`` and every argument, defaults filled in).
    """
    from .config import resolve

    _check_kind(kind)
    cfg = {"type": name, **dict(params or {})}
    try:
        resolved = resolve(kind, cfg)
    except SeqtagError as exc:
        raise _fail("config", kind, name, f"the config {cfg!r} is rejected: {exc.one_line()}") from None
    try:
        text = json.dumps(resolved, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise _fail("config", kind, name, f"the resolved config is not JSON ({exc}): defaults must be "
                    "numbers, strings, booleans, None, lists or tables") from None
    again = resolve(kind, json.loads(text))
    if json.dumps(again, sort_keys=True) != text:
        raise _fail("config", kind, name, f"resolving the saved config changes it: {resolved!r} -> {again!r}")
    return json.loads(text)


# -- 3. contract, per kind --------------------------------------------------------------------------
def _build(kind: str, name: str, cfg: Mapping[str, Any], **wired: Any) -> Any:
    from .config import build_part

    try:
        return build_part(kind, cfg, **wired)
    except SeqtagError as exc:
        raise _fail("contract", kind, name, f"does not build from {dict(cfg)!r}: {exc.one_line()}") from None


def _close(a: "torch.Tensor", b: "torch.Tensor", atol: float) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def _max_diff(a: "torch.Tensor", b: "torch.Tensor") -> float:
    return float((a - b).abs().max()) if a.shape == b.shape and a.numel() else math.inf


def _contract_tokenizer(name: str, cfg: Mapping[str, Any]) -> None:
    from .tokenizers import Token

    tok = _build("tokenizer", name, cfg)
    texts = ["John Smith visited Tokyo.", "  two  spaces\tand a tab\n", "Ünïcödé  wörds, too!", "x"]
    for text in texts:
        toks = tok(text)
        if not isinstance(toks, list) or not all(isinstance(t, Token) for t in toks):
            raise _fail("contract", "tokenizer", name, f"must return a list of seqtag.tokenizers.Token, "
                        f"got {type(toks).__name__} for {text!r}")
        if not toks:
            raise _fail("contract", "tokenizer", name, f"returned no tokens for {text!r}")
        end = 0
        for t in toks:
            if text[t.start:t.end] != t.text:
                raise _fail("contract", "tokenizer", name, f"token {t.text!r} has offsets [{t.start}, {t.end}) "
                            f"that point at {text[t.start:t.end]!r} in {text!r}")
            if t.start < end or not t.text or t.text.isspace():
                raise _fail("contract", "tokenizer", name, f"tokens must be non-empty, non-space, in order and "
                            f"not overlap; got {[(x.text, x.start, x.end) for x in toks]} for {text!r}")
            end = t.end
    for text in ("", "   \n\t "):
        if tok(text):
            raise _fail("contract", "tokenizer", name, f"returned tokens for the blank text {text!r}")
    if tok.pipe(texts) != [tok(t) for t in texts]:
        raise _fail("contract", "tokenizer", name, "pipe(texts) differs from [tokenizer(t) for t in texts]")


def _contract_embedding(name: str, cfg: Mapping[str, Any], atol: float) -> None:
    import torch

    sents = [t for t, _ in TINY_CORPUS]
    emb = _build("embedding", name, cfg)
    emb.initialize(sents)
    dim = emb.output_dim
    if not isinstance(dim, int) or dim <= 0:
        raise _fail("contract", "embedding", name, f"output_dim must be a positive int after initialize(), got {dim!r}")
    assets = emb.get_assets()
    try:
        assets_json = json.loads(json.dumps(assets))
    except (TypeError, ValueError) as exc:
        raise _fail("contract", "embedding", name, f"get_assets() must return JSON data, got {exc}") from None
    emb.eval()
    batch = [sents[11], sents[0], ["Zorblax", "Quuxville"], sents[10]]  # 17, 6, 2 and 1 tokens; unseen words
    with torch.no_grad():
        out = emb(emb.featurize(batch))  # shape: (batch, seq, output_dim)
        if tuple(out.shape) != (len(batch), max(map(len, batch)), dim):
            raise _fail("contract", "embedding", name, f"forward gave shape {tuple(out.shape)}, expected "
                        f"{(len(batch), max(map(len, batch)), dim)} (batch, seq, output_dim)")
        if not bool(torch.isfinite(out).all()):
            raise _fail("contract", "embedding", name, "forward gave NaN or infinite values")
        for i, sent in enumerate(batch):
            alone = emb(emb.featurize([sent]))[0]  # shape: (len, output_dim)
            if not _close(alone, out[i, : len(sent)], atol):
                raise _fail("contract", "embedding", name, f"the vectors of {sent!r} change when it is batched with "
                            f"longer sentences (max diff {_max_diff(alone, out[i, :len(sent)]):.2e}); padding must "
                            "not change real positions")
    twin = _build("embedding", name, cfg)
    twin.set_assets(assets_json)
    if twin.output_dim != dim:
        raise _fail("contract", "embedding", name, f"after set_assets(get_assets()) output_dim is {twin.output_dim}, "
                    f"was {dim}")
    try:
        twin.load_state_dict(emb.state_dict(), strict=True)
    except RuntimeError as exc:
        raise _fail("contract", "embedding", name, "set_assets(get_assets()) must allocate weights of the shapes "
                    f"initialize() made: {' '.join(str(exc).split())[:300]}") from None
    twin.eval()
    with torch.no_grad():
        again = twin(twin.featurize(batch))  # shape: (batch, seq, output_dim)
    if not _close(again, out, atol):
        raise _fail("contract", "embedding", name, "a copy rebuilt from the config, get_assets() and the state dict "
                    f"gives other vectors (max diff {_max_diff(again, out):.2e})")
    emb.train()
    x = emb(emb.featurize(batch[:2]))  # shape: (2, seq, output_dim)
    if any(p.requires_grad for p in emb.parameters()):
        if not x.requires_grad:
            raise _fail("contract", "embedding", name, "has trainable parameters but its output carries no gradient")
        x.float().sum().backward()


def _contract_encoder(name: str, cfg: Mapping[str, Any], atol: float) -> None:
    import torch

    input_dim = 12
    enc = _build("encoder", name, cfg, input_dim=input_dim)
    if getattr(enc, "input_dim", None) != input_dim:
        raise _fail("contract", "encoder", name, f"must set self.input_dim = input_dim ({input_dim}), "
                    f"got {getattr(enc, 'input_dim', None)!r}")
    dim = getattr(enc, "output_dim", None)
    if not isinstance(dim, int) or dim <= 0:
        raise _fail("contract", "encoder", name, f"must set self.output_dim to a positive int, got {dim!r}")
    gen = torch.Generator().manual_seed(0)
    lengths = [7, 4, 1]
    x = torch.randn(3, 7, input_dim, generator=gen)  # shape: (batch, seq, input_dim)
    mask = torch.arange(7).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # shape: (batch, seq)
    noisy = torch.where(mask.unsqueeze(-1), x, 100 * torch.randn(3, 7, input_dim, generator=gen))  # other padding
    enc.eval()
    with torch.no_grad():
        out = enc(x, mask)  # shape: (batch, seq, output_dim)
        if tuple(out.shape) != (3, 7, dim):
            raise _fail("contract", "encoder", name, f"forward(x {tuple(x.shape)}, mask) gave {tuple(out.shape)}, "
                        f"expected {(3, 7, dim)} (batch, seq, output_dim)")
        if not bool(torch.isfinite(out[mask]).all()):
            raise _fail("contract", "encoder", name, "forward gave NaN or infinite values at real positions")
        out2 = enc(noisy, mask)  # shape: (batch, seq, output_dim)
        if not _close(out2[mask], out[mask], atol):
            raise _fail("contract", "encoder", name, "real positions change when the padded positions hold other "
                        f"values (max diff {_max_diff(out2[mask], out[mask]):.2e}); use the mask")
        for i, n in enumerate(lengths):
            alone = enc(x[i:i + 1, :n], torch.ones(1, n, dtype=torch.bool))[0]  # shape: (n, output_dim)
            if not _close(alone, out[i, :n], atol):
                raise _fail("contract", "encoder", name, f"a sentence of {n} tokens gives other vectors alone than "
                            f"padded to 7 (max diff {_max_diff(alone, out[i, :n]):.2e}); padding must not change "
                            "real positions")
        full = enc(x, None)  # shape: (batch, seq, output_dim)
        ones = enc(x, torch.ones(3, 7, dtype=torch.bool))
        if not _close(full, ones, atol):
            raise _fail("contract", "encoder", name, "mask=None must mean every position is real "
                        f"(max diff {_max_diff(full, ones):.2e})")
    enc.train()
    xg = x.clone().requires_grad_(True)
    enc(xg, mask).sum().backward()
    if xg.grad is None or not bool(torch.isfinite(xg.grad).all()):
        raise _fail("contract", "encoder", name, "no finite gradient reaches the input")


def _contract_head(name: str, cfg: Mapping[str, Any], atol: float) -> None:
    import torch

    labels = sorted({t for _, tags in TINY_CORPUS for t in tags})
    head = _build("head", name, cfg, input_dim=10, labels=labels, scheme="IOB2")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 10, generator=gen)  # shape: (batch, seq, input_dim)
    lengths = [6, 3, 1]
    mask = torch.arange(6).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # shape: (batch, seq)
    o = labels.index("O")
    tags = torch.full((3, 6), o, dtype=torch.long)  # shape: (batch, seq)
    head.train()
    loss = head.loss(x, tags, mask)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not bool(torch.isfinite(loss)):
        raise _fail("contract", "head", name, f"loss(x, tags, mask) must be a finite scalar tensor, got {loss!r}")
    if any(p.requires_grad for p in head.parameters()):
        loss.backward()
    head.eval()
    with torch.no_grad():
        best, conf = head.decode(x, mask)  # shape: (batch, seq), (batch, seq)
        if tuple(best.shape) != (3, 6) or tuple(conf.shape) != (3, 6):
            raise _fail("contract", "head", name, f"decode must return two (batch, seq) tensors, got "
                        f"{tuple(best.shape)} and {tuple(conf.shape)}")
        if best.dtype not in (torch.long, torch.int64) or bool(((best < 0) | (best >= len(labels)))[mask].any()):
            raise _fail("contract", "head", name, f"decode must return long tag ids in [0, {len(labels)})")
        if bool(((conf < -1e-6) | (conf > 1 + 1e-6))[mask].any()):
            raise _fail("contract", "head", name, "confidences must lie in [0, 1]")
        for i, n in enumerate(lengths):
            b1, c1 = head.decode(x[i:i + 1, :n], torch.ones(1, n, dtype=torch.bool))
            if b1[0].tolist() != best[i, :n].tolist() or not _close(c1[0], conf[i, :n], atol):
                raise _fail("contract", "head", name, f"decoding a sentence of {n} tokens alone differs from "
                            "decoding it padded; padding must not change real positions")


# -- 4. fits ----------------------------------------------------------------------------------------
def tiny_config(kind: str, part_cfg: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full tagger config that the checks train: small defaults, ``part_cfg`` in the ``kind`` slot."""
    from .config import merge
    from .train import build_config

    model = merge(_BASE_MODEL, dict(context or {}))
    model[kind] = dict(part_cfg)
    try:
        return build_config("ner", {"scheme": "IOB2", "model": model, "training": {"threads": 1}})
    except SeqtagError as exc:
        raise _fail("fits", kind, str(part_cfg.get("type")), f"the tagger config does not build: {exc.one_line()}") \
            from None


def _accuracy(model: "TaggerModel", sents: Sequence[tuple[list[str], list[int]]]) -> float:
    import torch

    from .model import make_batch

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
    from .resources import VocabSource, estimate_part

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
        raise _fail("fits", kind, name, f"estimate_size gives {size.parameters:,} parameters and output size "
                    f"{size.output_dim}; the built part has {real:,} and {getattr(part, 'output_dim', '?')} (the "
                    "parameters must agree within 1%: seqtag refuses models too large for memory from the estimate)")


def check_fits(kind: str, name: str, config: Mapping[str, Any],
               options: CheckOptions | None = None) -> tuple["Tagger", dict[str, Any]]:
    """Train the tagger ``config`` on :data:`TINY_CORPUS` until it fits it; return it and the run's numbers."""
    import torch

    from .model import TaggerModel, make_batch
    from .tagger import Tagger

    opts = options or CheckOptions()
    torch.manual_seed(opts.seed)
    rng = random.Random(opts.seed)
    labels = sorted({t for _, tags in TINY_CORPUS for t in tags} | {"O"})
    index = {t: i for i, t in enumerate(labels)}
    data = [(toks, [index[t] for t in tags]) for toks, tags in TINY_CORPUS]
    try:
        model = TaggerModel(config["model"], labels, config["scheme"], sentences=[t for t, _ in TINY_CORPUS])
    except SeqtagError as exc:
        raise _fail("fits", kind, name, f"the tagger does not build: {exc.one_line()}") from None
    _check_estimate(kind, name, config["model"][kind], model, labels)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise _fail("fits", kind, name, "the tagger has no trainable parameter")
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
                raise _fail("fits", kind, name, f"the training loss became {loss.item()} at step {step + 1}")
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
        raise _fail("fits", kind, name, f"training accuracy on the tiny corpus is {acc:.1%} after {step} steps "
                    f"(needs {opts.min_accuracy:.0%}; loss {first:.3f} -> {last:.3f}); check that gradients flow "
                    "through the part, or raise CheckOptions.max_steps / lr")
    if len(losses) > 3 and not last < first:
        raise _fail("fits", kind, name, f"the loss did not fall ({first:.4f} -> {last:.4f})")
    tagger = Tagger(json.loads(json.dumps(config)), labels, model)
    return tagger, {"steps": step, "train_accuracy": acc, "first_loss": first, "last_loss": last}


# -- 5. save and load -------------------------------------------------------------------------------
def _predictions(tagger: "Tagger") -> list[dict[str, Any]]:
    inputs: list[Any] = [t for t, _ in TINY_CORPUS] + _UNSEEN_TOKENS
    preds = tagger.predict(inputs, batch_size=5) + tagger.predict(_TEXTS, batch_size=2)
    return [{"tokens": p.tokens, "tags": p.tags, "scores": p.scores} for p in preds]


_FRESH = """\
import importlib, json, sys
import torch
torch.set_num_threads(1)
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
from seqtag.tagger import Tagger
from seqtag.testing import _predictions
print("@@PREDICTIONS@@" + json.dumps(_predictions(Tagger.load(sys.argv[1]))))
"""


def _compare(where: str, kind: str, name: str, before: list[dict[str, Any]], after: list[dict[str, Any]],
             atol: float) -> None:
    if len(before) != len(after):
        raise _fail("save/load", kind, name, f"{where}: {len(after)} predictions, expected {len(before)}")
    for b, a in zip(before, after):
        if b["tokens"] != a["tokens"]:
            raise _fail("save/load", kind, name, f"{where}: tokens {a['tokens']} differ from {b['tokens']} "
                        "(the tokenizer is not restored)")
        if b["tags"] != a["tags"]:
            raise _fail("save/load", kind, name, f"{where}: tags for {b['tokens']} changed from {b['tags']} to "
                        f"{a['tags']}; something the part needs is not saved (vocabularies belong in get_assets(), "
                        "weights in parameters or persistent buffers, settings in __init__ arguments)")
        diff = max((abs(x - y) for x, y in zip(b["scores"], a["scores"])), default=0.0)
        if diff > atol:
            raise _fail("save/load", kind, name, f"{where}: confidences for {b['tokens']} changed by {diff:.2e}")


def _fresh_imports(info: registry.PartInfo, group: str, extra: Sequence[str]) -> list[str]:
    modules = list(extra)
    from_ep = any(ep.name == info.name for ep in entry_points(group=group)) and registry.autoload_enabled()
    module = getattr(info.obj, "__module__", "") or ""
    if not from_ep and module and module != "__main__" and not module.startswith("seqtag."):
        modules.append(module)
    return modules


def check_save_load(kind: str, name: str, tagger: "Tagger", workdir: str | Path,
                    options: CheckOptions | None = None, info: registry.PartInfo | None = None) -> None:
    """Save ``tagger``, delete it, move the folder, load it here and in a fresh process: same predictions."""
    from .tagger import Tagger

    opts = options or CheckOptions()
    info = info or registry.get_registry(kind).info(name)
    before = _predictions(tagger)
    saved, moved = Path(workdir) / "saved", Path(workdir) / "moved"
    for p in (saved, moved):
        if p.exists():
            shutil.rmtree(p)
    try:
        tagger.save(saved)
    except Exception as exc:
        raise _fail("save/load", kind, name, f"saving failed: {type(exc).__name__}: {exc}") from exc
    meta = json.loads((saved / "meta.json").read_text(encoding="utf-8"))
    if info.distribution != registry.BUILTIN_DIST and info.distribution not in (meta.get("plugins") or {}):
        raise _fail("save/load", kind, name, f"meta.json does not record the plugin distribution "
                    f"{info.distribution!r}: {meta.get('plugins')!r}")
    del tagger
    gc.collect()
    shutil.move(str(saved), str(moved))  # nothing may point at the folder it was saved to
    try:
        loaded = Tagger.load(moved)
    except Exception as exc:
        hint = ""
        if kind == "embedding" and "assets" in str(exc) and "JSON object" in str(exc):
            hint = " (get_assets() must return a dict, {} when nothing was built from the data, not None)"
        raise _fail("save/load", kind, name, f"loading the saved tagger failed: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:400]}{hint}") from exc
    _compare("loaded in this process", kind, name, before, _predictions(loaded), opts.atol)
    del loaded
    gc.collect()
    if not opts.fresh_process:
        return
    modules = _fresh_imports(info, registry.get_registry(kind).group, opts.imports)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.TemporaryDirectory() as cwd:  # another working directory: relative paths cannot help
        proc = subprocess.run([sys.executable, "-c", _FRESH, str(moved), json.dumps(modules)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=opts.timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise _fail("save/load", kind, name, f"loading in a fresh Python process failed (exit {proc.returncode}):\n{tail}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@PREDICTIONS@@")), None)
    if line is None:
        raise _fail("save/load", kind, name, f"the fresh process printed no predictions: {proc.stdout[-400:]!r}")
    _compare("loaded in a fresh process", kind, name, before, json.loads(line[len("@@PREDICTIONS@@"):]), opts.atol)


# -- all of it --------------------------------------------------------------------------------------
def check_part(kind: str, name: str, params: Mapping[str, Any] | None = None, *, distribution: str | None = None,
               options: CheckOptions | None = None, workdir: str | Path | None = None, **kwargs: Any) -> CheckReport:
    """Run every check on the part ``name`` of ``kind`` built with ``params`` and ``kwargs``.

    Args:
        kind: ``tokenizer``, ``embedding``, ``encoder`` or ``head``.
        name: The registered, versioned name, e.g. ``"transformer.v1"``.
        params: The part's keyword arguments (merged with ``kwargs``), for names that clash with these.
        distribution: The distribution that must provide the part through an entry point.
        options: How hard to push (steps, learning rate, target accuracy...).
        workdir: Where to save the tagger (a temporary folder, removed afterwards, by default).
        **kwargs: The part's keyword arguments, as in a config table.

    Returns:
        A :class:`CheckReport` with the fitting run's numbers and the time of each check.

    Raises:
        AssertionError: The first check that failed, with what was wrong.
    """
    _check_kind(kind)
    opts = options or CheckOptions()
    part_params = {**dict(params or {}), **kwargs}
    seconds: dict[str, float] = {}
    contracts = {"tokenizer": lambda c: _contract_tokenizer(name, c),
                 "embedding": lambda c: _contract_embedding(name, c, opts.atol),
                 "encoder": lambda c: _contract_encoder(name, c, opts.atol),
                 "head": lambda c: _contract_head(name, c, opts.atol)}

    def phase(label: str, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        except AssertionError:
            raise
        except Exception as exc:  # the part's own code failed: say in which check
            raise _fail(label, kind, name, f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:400]}") \
                from exc
        finally:
            seconds[label] = time.perf_counter() - t

    info = phase("registered", check_registered, kind, name, distribution)
    cfg = phase("config", check_config, kind, name, part_params)
    phase("contract", contracts[kind], cfg)
    config = tiny_config(kind, cfg, opts.context)
    tagger, run = phase("fits", check_fits, kind, name, config, opts)
    held = [tagger]  # check_save_load() gets the only reference, so it can really delete the tagger
    del tagger

    def save_load() -> None:
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
            check_save_load(kind, name, held.pop(), workdir, opts, info)
        else:
            with tempfile.TemporaryDirectory(prefix="seqtag-check-") as tmp:
                check_save_load(kind, name, held.pop(), tmp, opts, info)

    phase("save/load", save_load)
    return CheckReport(kind, name, info.distribution, info.version, cfg, seconds=seconds, **run)


def check_tokenizer(name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> CheckReport:
    """:func:`check_part` for a tokenizer."""
    return check_part("tokenizer", name, params, **kwargs)


def check_embedding(name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> CheckReport:
    """:func:`check_part` for an embedding."""
    return check_part("embedding", name, params, **kwargs)


def check_encoder(name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> CheckReport:
    """:func:`check_part` for an encoder."""
    return check_part("encoder", name, params, **kwargs)


def check_head(name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> CheckReport:
    """:func:`check_part` for a head."""
    return check_part("head", name, params, **kwargs)
