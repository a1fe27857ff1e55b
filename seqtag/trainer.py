"""The training loop: length-bucketed batches, Adam(W) or SGD, clipping, a learning-rate schedule, early stopping
on the dev score, the best model kept, checkpoints written atomically and resumable.

Where a run stands is a :class:`TrainState`; a checkpoint saves it (the ``progress`` of
``checkpoint/trainer.json``) beside the model, optimizer, scheduler and RNG states, and ``--resume``
continues from it to the same weights an uninterrupted run reaches. Callbacks
(:mod:`seqtag.callbacks`) hear of each finished epoch and of the end of the run.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn, Sequence

import torch

from .averaging import WeightAverage
from .callbacks import notify
from .checkpoint import (
    CHECKPOINT_DIR,
    Interrupted,
    deferred_interrupt,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .config import TrainingConfig, build_config, default_config
from .context import context_size, read_length, window
from .data import index_sentences
from .devices import autocast, check_precision, grad_scaler, resolve_device
from .distributed import SINGLE, Dist, lost_rank
from .errors import ConfigError, DataError, DistributedError, TrainingDivergedError
from .evaluate import evaluate, main_score
from .history import write_history
from .labels import invalid_positions
from .model import TaggerModel, make_batch
from .optim import RowSparseAdam, clip_gradients, set_sparse_tables
from .tagger import Tagger
from .threads import configure_threads, describe, rebalance

# TrainingConfig, build_config and default_config live in seqtag.config; they stay importable from here
__all__ = ["TrainState", "TrainingConfig", "default_config", "build_config", "train", "make_batches", "make_optimizer",
           "param_groups", "apply_step", "resumed_config"]


@dataclass
class TrainState:
    """Where a run stands: saved in each checkpoint, and what a resumed run starts from.

    Attributes:
        epoch: Epochs finished.
        step_in_epoch: Batches of the current epoch done (0 at an epoch boundary).
        global_step: Batches done over the whole run.
        best_score: The best dev score so far (-1 before the first evaluation).
        best_epoch: The epoch (counted from 1) that reached it.
        bad_epochs: Epochs since then without a better dev score.
        elapsed: Seconds of training so far, over every resumed part of the run.
        history: ``{"epoch", "loss", "dev"}`` of each finished epoch.
        labels: The model's labels, in the training scheme.
        config: The run's complete config.
        epoch_loss: The summed loss of the current epoch's batches done so far.
        best_time: ``elapsed`` when the best dev score was reached.
        world_size: The processes the run trains with (``torchrun``; 1 for one process).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_score: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    epoch_loss: float = 0.0
    best_time: float = 0.0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The state as ``trainer.json`` holds it (its ``progress``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainState":
        """The state a checkpoint saved; keys it lacks (older checkpoints) keep their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def out_of_steps(self, tc: TrainingConfig) -> bool:
        """The run has done the ``max_steps`` batches it may (never, without a limit)."""
        return bool(tc.max_steps and self.global_step >= tc.max_steps)

    def finished(self, tc: TrainingConfig) -> bool:
        """The run has stopped early, or reached its last epoch or its step limit."""
        return self.bad_epochs >= tc.patience or self.epoch >= tc.max_epochs or self.out_of_steps(tc)


def resumed_config(saved: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The config a resumed run goes on with: the checkpoint's ``saved`` one, with ``given``'s
    ``training.max_epochs`` (the one setting a resume may change: ``seqtag train --resume DIR --max-epochs N``
    trains an ended run on up to epoch ``N``).

    Raises:
        ConfigError: ``given`` differs from ``saved`` elsewhere (one line, naming the first setting).
    """
    training = dict(saved["training"])
    training["max_epochs"] = given.get("training", {}).get("max_epochs", training["max_epochs"])
    resumed = {**saved, "training": training}
    if dict(given) != resumed:
        raise ConfigError(f"a resumed run goes on with its checkpoint's config, which only training.max_epochs may "
                          f"change; the config given differs in {_first_difference(given, resumed)}")
    return resumed


def _first_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """The dotted name of the first setting (in key order) where two unequal configs differ."""
    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    x, y = a.get(key), b.get(key)
    return f"{key}.{_first_difference(x, y)}" if isinstance(x, Mapping) and isinstance(y, Mapping) else key


def make_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Length-bucketed batches: sort by length (with a little noise when shuffling), cut, shuffle the batches."""
    if rng is None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    else:
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i] + rng.uniform(-2, 2)))
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def param_groups(model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
    """The trainable parameters in optimizer groups: first those at ``lr``, then one group per learning rate
    that a part asks for. A part (any submodule) sets ``learning_rate`` to train its parameters at its own rate,
    as a fine-tuned pretrained transformer does (``transformer_embeddings.v1``'s ``lr``); a part inside it may
    set its own again. The learning-rate decay scales every group alike."""
    rates: dict[int, float] = {}
    for _, module in model.named_modules():  # parents come before their children, so the innermost rate wins
        rate = getattr(module, "learning_rate", None)
        if rate:
            for p in module.parameters():
                rates[id(p)] = float(rate)
    groups: dict[float, list[torch.nn.Parameter]] = {lr: []}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault(rates.get(id(p), lr), []).append(p)
    return [{"params": ps, "lr": rate} for rate, ps in groups.items()]  # only the first may be empty


def make_optimizer(model: torch.nn.Module, tc: TrainingConfig, *, sparse: bool = True) -> torch.optim.Optimizer:
    """The optimizer of ``[training]`` over the trainable parameters (the training loop's and the spaCy
    component's). Adam and AdamW train the embedding tables row-sparse (:mod:`seqtag.optim`) when
    ``training.sparse_embeddings`` and ``sparse`` allow it (distributed runs and the spaCy component pass
    ``False``) and neither weight decay nor weight averaging needs every row at every step; the tables are
    switched here, to this optimizer."""
    params = param_groups(model, tc.lr)
    if tc.optimizer == "sgd":
        cls: Any = torch.optim.SGD
        kwargs: dict[str, Any] = {"momentum": tc.momentum}
    else:
        cls, kwargs = RowSparseAdam, {"decoupled_weight_decay": tc.optimizer == "adamw"}
    try:  # the fused kernels update large embedding tables several times faster
        optimizer = cls(params, lr=tc.lr, weight_decay=tc.weight_decay, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        optimizer = cls(params, lr=tc.lr, weight_decay=tc.weight_decay, **kwargs)
    row_sparse = (sparse and tc.sparse_embeddings and isinstance(optimizer, RowSparseAdam)
                  and not tc.weight_decay and not tc.average)
    set_sparse_tables(model, optimizer if row_sparse else None)
    return optimizer


def apply_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: Any, loss: torch.Tensor,
               grad_clip: float) -> None:
    """One optimizer step on a batch's loss: backward (scaled for fp16), the gradient norm clipped to
    ``grad_clip`` (0: not clipped; :func:`seqtag.optim.clip_gradients`), the update. The training loop's
    step, and the one benchmarks time."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        clip_gradients(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


def check_scheme(task: str, scheme: str, sents: Sequence[tuple[list[str], list[str]]]) -> None:
    """NER training tags must be valid in the scheme the model trains in (the CRF's transitions are
    constrained by it): IOB2 tags under a BIOES config would train to a dev F1 of 0. The first invalid
    tag is one :class:`DataError` line."""
    if task != "ner":
        return
    for k, (_, tags) in enumerate(sents, 1):
        bad = invalid_positions(tags, scheme)
        if bad:
            i = bad[0]
            shown = list(tags[max(0, i - 1): i + 2])
            raise DataError(f"training sentence {k}, token {i + 1}: the tag {tags[i]!r} in {shown} is not valid "
                            f"{scheme}, the scheme the model trains in; convert the training tags to {scheme} first "
                            f"(seqtag.train and `seqtag train` convert them from IOB1, IOB2 or BIOES)")


def _drop_empty(sents: list[tuple[list[str], list[str]]]) -> list[tuple[list[str], list[str]]]:
    return [s for s in sents if s[0]]


class _Run:
    """The objects a run trains and saves, and the steps that touch several of them: the finiteness check,
    checkpointing, and stopping at a step boundary when Ctrl-C or SIGTERM came."""

    def __init__(self, out: Path, model: TaggerModel, optimizer: torch.optim.Optimizer, scheduler: Any,
                 rng: random.Random, state: TrainState, log: Callable[[str], None], dist: Dist = SINGLE,
                 average: WeightAverage | None = None, calibrates: bool = False) -> None:
        self.out, self.ckpt_dir = out, out / CHECKPOINT_DIR
        self.average = average
        self.calibrates = calibrates  # the end of the run fits the head's temperature (training.calibrate)
        self.model, self.optimizer, self.scheduler, self.rng = model, optimizer, scheduler, rng
        self.state, self.log, self.dist = state, log, dist
        self.start_time = time.time() - state.elapsed
        self.stop_requested: Callable[[], int] = lambda: 0  # set while signals are deferred
        self.stopped = False  # this run saved its state and raised Interrupted itself

    def seconds(self) -> float:
        return time.time() - self.start_time

    def diverged(self, what: str) -> TrainingDivergedError:
        kept = f"the last good checkpoint stays in {self.ckpt_dir}" if (self.ckpt_dir / "trainer.json").is_file() \
            else "no checkpoint had been written yet"
        return TrainingDivergedError(f"{what}; training stopped and {kept}; lower training.lr or training.grad_clip")

    def check_finite(self) -> None:
        bad = next((n for n, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())), None)
        if bad is not None:  # never let a diverged model overwrite the best model or the last good checkpoint
            raise self.diverged(f"the parameter {bad} became NaN or infinite by step {self.state.global_step}")

    def checkpoint(self) -> None:
        """Save the resumable state (model, optimizer, RNGs, progress and vocabularies) as one atomic directory
        (rank 0 of a distributed run; the others hold the same model and optimizer)."""
        self.state.elapsed = self.seconds()
        self.check_finite()
        if not self.dist.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.ckpt_dir, self.model, self.optimizer, self.scheduler, self.state.to_dict(), self.rng,
                        assets=self.model.get_assets(),
                        extra=None if self.average is None else self.average.state_tensors())

    def stop_if_asked(self) -> None:
        """Ctrl-C was pressed or SIGTERM came (on any rank): save the state at this step boundary and stop."""
        signum = self.dist.any(self.stop_requested())
        if signum:
            self.stop(signum)

    def stop(self, signum: int) -> NoReturn:
        self.checkpoint()
        self.stopped = True
        self.log(f"interrupted{' (SIGTERM)' if signum == signal.SIGTERM else ''}: state saved in {self.ckpt_dir}; "
                 f"continue with `seqtag train --resume {self.out}`")
        state = self.state
        if state.best_epoch:  # the best model so far is usable as it is; what the end of the run adds to it
            self.log(f"the best model so far (epoch {state.best_epoch}, dev {state.best_score:.2f}) is in {self.out}, "
                     f"not yet scored on test" + (f" nor calibrated (`seqtag calibrate {self.out}` calibrates it "
                                                  f"now; the end of the run does both)" if self.calibrates else ""))
        raise Interrupted(signum)


def train(config: Mapping[str, Any], train_sents: list[tuple[list[str], list[str]]],
          dev_sents: list[tuple[list[str], list[str]]], output: str | Path, *, resume: bool = False,
          log: Callable[[str], None] = print, progress: bool = True, dev_gold_iob2: list[list[str]] | None = None,
          meta: Mapping[str, Any] | None = None, callbacks: Sequence[Any] = (), dist: Dist = SINGLE,
          device: torch.device | None = None, stream: Any = None) -> tuple[Tagger, dict[str, Any]]:
    """Train a tagger and keep the best one (by dev score) in ``output``.

    Args:
        config: A config from :func:`build_config`.
        train_sents: ``(tokens, tags)`` in the training scheme (with ``stream``: the first pass's sample,
            which the vocabularies are built from).
        dev_sents: ``(tokens, tags)`` in IOB2 (NER) or plain tags (POS), for model selection.
        output: The model directory; its ``checkpoint/`` subfolder holds the resumable state.
        resume: Continue from ``output/checkpoint``.
        callbacks: Objects with ``on_epoch_end(epoch, scores)`` and/or ``on_train_end(summary)``
            (see :mod:`seqtag.callbacks`); a plain function is called as ``on_epoch_end``.
        dist: This process's place in a distributed run (see :mod:`seqtag.distributed`); only rank 0
            logs, writes files and calls the callbacks.
        device: Where to train (default: ``training.device`` resolved).
        stream: A :class:`seqtag.streaming.StreamedSplit` to train from instead of ``train_sents``.

    Raises:
        DataError: A training tag invalid in the config's scheme (see :func:`check_scheme`).
        DistributedError: ``resume`` with another world size than the checkpoint's, or a rank lost.
    """
    tc = TrainingConfig.from_dict(config["training"])
    task, scheme = config["task"], config["scheme"]
    out = Path(output)
    device = device if device is not None else resolve_device(tc.device)
    check_precision(tc.precision, device)
    if not dist.main:  # one voice: rank 0's
        log, progress, callbacks = (lambda msg: None), False, ()
    configure_threads(tc.threads or None)  # 0: the CPUs other work leaves free (see seqtag.threads)
    torch.manual_seed(tc.seed + dist.rank)  # dropout differs per rank; DDP copies rank 0's initial weights
    random.seed(tc.seed)
    rng = random.Random(tc.seed)
    train_sents = _drop_empty(train_sents)
    if tc.max_train_sentences:
        train_sents = train_sents[: tc.max_train_sentences]
    if not train_sents:
        raise DataError("the training split has no sentences")
    check_scheme(task, scheme, train_sents)
    if resume:
        saved, assets = read_checkpoint(out)  # one-line ModelLoadError when missing or damaged
        labels, config = saved["labels"], resumed_config(saved["config"], config)
        model = TaggerModel(config["model"], labels, scheme, assets=assets)
    else:
        labels = list(stream.labels) if stream is not None else \
            sorted({t for _, tags in train_sents for t in tags} | ({"O"} if task == "ner" else set()))
        model = TaggerModel(config["model"], labels, scheme, sentences=[t for t, _ in train_sents])
    index = {t: i for i, t in enumerate(labels)}
    unknown = {t for _, tags in train_sents for t in tags} - set(index)
    if unknown:
        raise DataError(f"training tags {sorted(unknown)[:5]} are not among the model's labels")
    model.to(device)
    optimizer = make_optimizer(model, tc, sparse=not dist.enabled)  # DDP averages dense gradients
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=tc.lr_decay,
                                                           patience=tc.lr_patience) if tc.lr_decay < 1 else None
    scaler = grad_scaler(device, tc.precision)
    average = WeightAverage(model, tc.average) if tc.average else None
    state = TrainState(labels=labels, config=dict(config), world_size=dist.world_size)
    if resume:
        state = TrainState.from_dict(load_checkpoint(out / CHECKPOINT_DIR, model, optimizer, scheduler, rng,
                                                     extra=None if average is None else average.load_state_tensors))
        before = int(state.config["training"]["max_epochs"])
        state.config = dict(config)  # the next checkpoint keeps a new epoch limit, and so a later resume
        if tc.max_epochs != before:
            log(f"max_epochs: {before} -> {tc.max_epochs}")
        if state.world_size != dist.world_size:
            raise DistributedError(
                f"{out / CHECKPOINT_DIR}: this run trained with {state.world_size} process"
                f"{'es' if state.world_size != 1 else ''} and is resumed with {dist.world_size}; resume it with "
                + ("one process (seqtag train --resume)" if state.world_size == 1 else
                   f"the same world size (torchrun --nproc_per_node ... with {state.world_size} processes in all)"))
        if dist.enabled:  # each rank's own dropout stream, from where the run stopped
            torch.manual_seed(tc.seed * 1_000_003 + state.global_step * dist.world_size + dist.rank)
        log(f"resuming from {out / CHECKPOINT_DIR}: epoch {state.epoch + 1}, step {state.step_in_epoch} "
            f"(best dev {state.best_score:.2f})")
    tagger = Tagger(dict(config), labels, model, dict(meta or {}))
    step_loss = _step_loss(model, dist, device)
    if stream is None:
        train_ids = [[index[t] for t in tags] for _, tags in train_sents]
        lengths = [len(t) for t, _ in train_sents]
        read = [window(t)[0] for t, _ in train_sents]  # with document context, the windows the embedding reads
        # word and character ids of the training sentences: computed once (datasets.map, cached on disk;
        # rank 0 writes the cache, the others read it)
        with dist.main_first():
            indexed = index_sentences(model.embedding, read, progress=progress)
        # batches are bucketed by what the encoder reads: the windows, the sentences with context_scope =
        # "embedding" (bucketed by window the encoder padded each batch to about twice its sentences' tokens),
        # or the sentences and encoder_context tokens around them
        read_lengths = [read_length(t, model.encoder_reach) for t, _ in train_sents]
    elif context_size(config["model"]):
        raise ConfigError("model.context (document context) needs the training split in memory; "
                          "it cannot be streamed (drop --streaming or set model.context = 0)")
    dev_sents = _drop_empty(dev_sents)

    def epoch_batches(epoch: int, start: int) -> tuple[int | None, Any]:
        """The number of this epoch's steps (``None``: unknown, streamed) and its batches from ``start``:
        ``(words, tag ids, indexed columns or None, tokens in the whole step)``."""
        if stream is not None:
            per_rank = max(1, tc.batch_size // dist.world_size)
            parts = stream.batches(epoch, per_rank, tc.seed, rank=dist.rank, world_size=dist.world_size)

            def streamed() -> Any:  # the stream checks each tag against its labels as it reads
                for k, part in enumerate(_in_step(parts, dist)):
                    if k >= start:
                        yield ([w for w, _ in part], [[index[t] for t in tags] for _, tags in part], None,
                               sum(len(w) for w, _ in part) * dist.world_size)
            return None, streamed()
        batches = make_batches(read_lengths, tc.batch_size, random.Random(tc.seed * 1000 + epoch))

        def listed() -> Any:
            for b in range(start, len(batches)):
                idx = dist.shard(batches[b])  # this rank's share of the step's batch
                yield ([train_sents[i][0] for i in idx], [train_ids[i] for i in idx],
                       None if indexed is None else indexed[idx], sum(lengths[i] for i in batches[b]))
        return len(batches), listed()

    log(f"training on {device} with {describe()}")
    from .calibration import takes_temperature

    run = _Run(out, model, optimizer, scheduler, rng, state, log, dist, average,
               calibrates=tc.calibrate and takes_temperature(model.head))

    def averaged() -> Any:
        """The averaged weights in the model for a block (seqtag.averaging), or nothing without averaging."""
        return average.applied() if average is not None else contextlib.nullcontext()
    interrupt = deferred_interrupt()  # the first Ctrl-C or SIGTERM stops at the next step boundary, after a checkpoint
    run.stop_requested = interrupt.__enter__()
    finished = state.finished(tc)
    if resume and finished:
        why = (f"stopped early: no better dev score in {tc.patience} epochs, which a higher max_epochs does not "
               f"change" if state.bad_epochs >= tc.patience else
               f"its step limit, training.max_steps = {tc.max_steps}" if state.out_of_steps(tc) else
               f"max_epochs = {tc.max_epochs}; --max-epochs N with --resume trains on up to epoch N")
        log(f"this run had already finished at epoch {state.epoch} (best dev {state.best_score:.2f} "
            f"at epoch {state.best_epoch}; {why}); nothing to resume but the end of the run "
            f"({'calibration, scores' if run.calibrates else 'scores'}), done again")
    try:
        while state.epoch < tc.max_epochs and not finished:
            epoch = state.epoch
            steps, batches = epoch_batches(epoch, state.step_in_epoch)
            model.train()
            t0, tokens_done, loss_sum = time.time(), 0, float(state.epoch_loss)
            bar = _progress(steps, f"epoch {epoch + 1}", progress, initial=state.step_in_epoch)
            for words, ids, columns, step_tokens in batches:
                b = state.step_in_epoch
                batch = make_batch(model, words, ids, columns=columns)
                with autocast(device, tc.precision):
                    loss = step_loss(batch)
                if not torch.isfinite(loss):
                    raise run.diverged(f"the training loss became {loss.item()} at epoch {epoch + 1}, step {b + 1}")
                apply_step(model, optimizer, scaler, loss, tc.grad_clip)
                if average is not None:
                    average.update()
                loss_sum += loss.item()
                tokens_done += step_tokens
                state.step_in_epoch, state.global_step = b + 1, state.global_step + 1
                state.epoch_loss = loss_sum
                bar.update(1)
                if (threads := rebalance()) is not None:  # a program started or ended beside the run
                    log(f"threads: {threads}")
                if tc.checkpoint_every and state.global_step % tc.checkpoint_every == 0:
                    run.checkpoint()
                run.stop_if_asked()
                if state.out_of_steps(tc):
                    break
            bar.close()
            run.check_finite()
            train_time = time.time() - t0
            n_steps = max(1, state.step_in_epoch)
            model.eval()
            scored = None
            _flush(optimizer)  # row-sparse tables: every row up to date before dev reads them
            if dist.main:  # dev is scored once; every rank takes rank 0's score and decision
                with averaged():  # the averaged weights are scored and saved (seqtag.averaging)
                    full = evaluate(tagger, dev_sents, task, batch_size=tc.eval_batch_size, breakdown=False)
                scored = (main_score(task, full), _compact(full, task))
            score, scores = dist.broadcast(scored)
            improved = score > state.best_score
            lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trained with
            state.history.append({"epoch": epoch + 1, "loss": loss_sum / n_steps, "dev": score, "lr": lr,
                                  "tokens_per_second": round(tokens_done / max(train_time, 1e-9), 1),
                                  "seconds": round(run.seconds(), 1)})
            if improved:
                state.best_score, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
                state.best_time = run.seconds()
                if dist.main:
                    with averaged():
                        tagger.save(out, scores={"dev": scores, "epoch": epoch + 1,
                                                 "train_seconds_to_best": round(state.best_time, 1)})
            else:
                state.bad_epochs += 1
            if scheduler is not None:
                scheduler.step(score)
            metric = "F1" if task == "ner" else "acc"
            log(f"epoch {epoch + 1:3d}  loss {loss_sum / n_steps:8.3f}  dev {metric} "
                f"{score:6.2f}{' *' if improved else '  '}  {tokens_done / max(train_time, 1e-9):7.0f} tok/s  "
                f"lr {lr:.2g}  {run.seconds():6.0f}s")
            state.epoch, state.step_in_epoch, state.epoch_loss = epoch + 1, 0, 0.0
            run.checkpoint()
            if dist.main:
                write_history(out, state.history)
            notify(callbacks, "on_epoch_end", epoch + 1, {
                **state.history[-1], "scores": scores, "improved": improved,
                "best_dev": state.best_score, "best_epoch": state.best_epoch, "seconds": round(run.seconds(), 1)})
            run.stop_if_asked()
            if state.out_of_steps(tc):
                break
            if state.bad_epochs >= tc.patience:
                log(f"early stop: no dev improvement in {tc.patience} epochs")
                break
    except KeyboardInterrupt:
        if not run.stopped:  # a second signal, mid-step: the state may be half updated
            log(f"interrupted at once: the last checkpoint in {run.ckpt_dir} stays; "
                f"continue with `seqtag train --resume {out}`")
        raise
    except RuntimeError as exc:
        if dist.enabled and _peer_lost(exc):  # DDP's all-reduce: another rank is gone
            raise lost_rank(dist, exc) from None
        raise
    finally:
        interrupt.__exit__(None, None, None)
    if dist.main and tc.calibrate and state.best_epoch:
        from .calibration import calibrate_and_save

        calibrate_and_save(Tagger.load(out, device=device), dev_sents, out, batch_size=tc.eval_batch_size, log=log)
    dist.barrier()  # rank 0 has written the best model
    best = Tagger.load(out, device=device)
    summary = {"best_dev": state.best_score, "best_epoch": state.best_epoch, "epochs": state.epoch,
               "seconds": round(run.seconds(), 1), "seconds_to_best": round(state.best_time, 1),
               "history": state.history}
    notify(callbacks, "on_train_end", summary)
    return best, summary


def _flush(optimizer: torch.optim.Optimizer) -> None:
    if isinstance(optimizer, RowSparseAdam):
        optimizer.flush()


class _LossOf(torch.nn.Module):
    """The training loss as a module's ``forward``: what DistributedDataParallel wraps, so its hooks
    average the gradients of each step over the ranks."""

    def __init__(self, model: TaggerModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model.loss(batch)


def _step_loss(model: TaggerModel, dist: Dist, device: torch.device) -> Callable[[Any], torch.Tensor]:
    """The loss of a batch: the model's own in one process, through DistributedDataParallel in several."""
    if not dist.enabled:
        return model.loss
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(_LossOf(model), device_ids=ids)


def _in_step(parts: Any, dist: Dist) -> Any:
    """A streamed epoch's batches while every rank still has one (ranks' shards may differ by a batch;
    a step that some rank cannot take is taken by none, so no rank waits for the others forever)."""
    it = iter(parts)
    while True:
        part = next(it, None)
        if dist.any(int(part is None)):
            return
        yield part


def _peer_lost(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("connection", "gloo", "nccl", "peer", "timed out", "broken pipe"))


def _compact(scores: dict[str, Any], task: str) -> dict[str, Any]:
    keys = ("f1", "precision", "recall") if task == "ner" else ("accuracy",)
    return {k: round(float(scores[k]), 4) for k in keys}


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int | None, desc: str, enabled: bool, initial: int = 0) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="batch", disable=None, mininterval=1.0)

