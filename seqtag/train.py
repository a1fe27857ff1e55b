"""Training: length-bucketed batches, Adam(W) or SGD, clipping, a learning-rate schedule, early stopping
on the dev score, the best model kept, checkpoints written atomically and resumable.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .checkpoint import CHECKPOINT_DIR, Interrupted, deferred_interrupt, load_checkpoint, read_checkpoint, save_checkpoint
from .config import check_model_table, check_table, check_top_level, load_config, merge, resolve
from .data import index_sentences
from .errors import ConfigError, DataError, TrainingDivergedError
from .evaluate import evaluate, main_score
from .model import TaggerModel, make_batch
from .tagger import Tagger

__all__ = ["TrainingConfig", "default_config", "build_config", "train", "make_batches"]

CONFIG_DIR = Path(__file__).with_name("configs")
TASKS = ("ner", "pos")


def default_config(task: str) -> dict[str, Any]:
    """The default config of a task (``ner`` or ``pos``)."""
    path = CONFIG_DIR / f"{task}.toml"
    if task not in TASKS or not path.is_file():
        raise ConfigError(f"unknown task {task!r}; expected 'ner' or 'pos'")
    return load_config(path)


@dataclass
class TrainingConfig:
    """The ``[training]`` table."""

    optimizer: str = "adam"
    lr: float = 0.002
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 16
    max_epochs: int = 30
    max_steps: int = 0
    patience: int = 6
    grad_clip: float = 5.0
    lr_decay: float = 0.5
    lr_patience: int = 2
    seed: int = 0
    threads: int = 0
    checkpoint_every: int = 0
    eval_batch_size: int = 256
    max_train_sentences: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingConfig":
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        check_table(data, list(known), "training")
        for key, value in data.items():
            want = known[key].type
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) if want == "float" else \
                isinstance(value, int) and not isinstance(value, bool) if want == "int" else isinstance(value, str)
            if not ok:
                raise ConfigError(f"[training] {key} must be {want}, got {type(value).__name__} {value!r}")
            kwargs[key] = value
        cfg = cls(**kwargs)
        if cfg.optimizer not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"[training] optimizer must be 'adam', 'adamw' or 'sgd', got {cfg.optimizer!r}")
        if cfg.batch_size <= 0 or cfg.lr <= 0:
            raise ConfigError("[training] batch_size and lr must be positive")
        for key, low in (("max_epochs", 1), ("eval_batch_size", 1), ("patience", 1), ("max_steps", 0),
                         ("lr_patience", 0), ("threads", 0), ("checkpoint_every", 0), ("max_train_sentences", 0),
                         ("grad_clip", 0), ("weight_decay", 0), ("momentum", 0)):
            if getattr(cfg, key) < low:
                raise ConfigError(f"[training] {key} must be at least {low}, got {getattr(cfg, key)!r}")
        if not 0 < cfg.lr_decay <= 1:
            raise ConfigError(f"[training] lr_decay must be in (0, 1] (1: no decay), got {cfg.lr_decay!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build_config(task: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The task's defaults merged with ``config``, every part's defaults filled in and checked."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected 'ner' or 'pos'")
    given = (config or {}).get("task", task)
    if given != task:
        raise ConfigError(f"the config's task {given!r} is not the task trained ({task!r}); "
                          f"expected 'ner' or 'pos', the same in the config, --set task=... and --task")
    cfg = merge(default_config(task), config or {})
    check_top_level(cfg)
    cfg["task"] = task
    model = cfg.setdefault("model", {})
    check_model_table(model)
    for slot in ("tokenizer", "embedding", "encoder", "head"):
        if slot not in model:
            raise ConfigError(f"the config has no [model.{slot}] table")
        model[slot] = resolve(slot, model[slot])
    cfg["training"] = TrainingConfig.from_dict(cfg.get("training", {})).to_dict()
    if task == "ner" and cfg.get("scheme") not in ("IOB2", "BIOES"):
        raise ConfigError(f"scheme must be 'IOB2' or 'BIOES' for NER, got {cfg.get('scheme')!r}")
    if task == "pos":
        cfg["scheme"] = "none"
    return cfg


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


def _optimizer(model: torch.nn.Module, tc: TrainingConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if tc.optimizer == "sgd":
        cls: Any = torch.optim.SGD
        kwargs: dict[str, Any] = {"momentum": tc.momentum}
    else:
        cls, kwargs = (torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam), {}
    try:  # the fused kernels update large embedding tables several times faster
        return cls(params, lr=tc.lr, weight_decay=tc.weight_decay, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return cls(params, lr=tc.lr, weight_decay=tc.weight_decay, **kwargs)


def _drop_empty(sents: list[tuple[list[str], list[str]]]) -> list[tuple[list[str], list[str]]]:
    return [s for s in sents if s[0]]


def train(config: Mapping[str, Any], train_sents: list[tuple[list[str], list[str]]],
          dev_sents: list[tuple[list[str], list[str]]], output: str | Path, *, resume: bool = False,
          log: Callable[[str], None] = print, progress: bool = True, dev_gold_iob2: list[list[str]] | None = None,
          meta: Mapping[str, Any] | None = None) -> tuple[Tagger, dict[str, Any]]:
    """Train a tagger and keep the best one (by dev score) in ``output``.

    Args:
        config: A config from :func:`build_config`.
        train_sents: ``(tokens, tags)`` in the training scheme.
        dev_sents: ``(tokens, tags)`` in IOB2 (NER) or plain tags (POS), for model selection.
        output: The model directory; its ``checkpoint/`` subfolder holds the resumable state.
        resume: Continue from ``output/checkpoint``.
    """
    tc = TrainingConfig.from_dict(config["training"])
    task, scheme = config["task"], config["scheme"]
    out = Path(output)
    ckpt_dir = out / CHECKPOINT_DIR
    torch.set_num_threads(tc.threads or max(1, os.cpu_count() or 1))
    torch.manual_seed(tc.seed)
    random.seed(tc.seed)
    rng = random.Random(tc.seed)
    train_sents = _drop_empty(train_sents)
    if tc.max_train_sentences:
        train_sents = train_sents[: tc.max_train_sentences]
    if not train_sents:
        raise DataError("the training split has no sentences")
    if resume:
        saved, assets = read_checkpoint(out)  # one-line ModelLoadError when missing or damaged
        labels, config = saved["labels"], saved["config"]
        model = TaggerModel(config["model"], labels, scheme, assets=assets)
    else:
        labels = sorted({t for _, tags in train_sents for t in tags} | ({"O"} if task == "ner" else set()))
        model = TaggerModel(config["model"], labels, scheme, sentences=[t for t, _ in train_sents])
    index = {t: i for i, t in enumerate(labels)}
    unknown = {t for _, tags in train_sents for t in tags} - set(index)
    if unknown:
        raise DataError(f"training tags {sorted(unknown)[:5]} are not among the model's labels")
    train_ids = [[index[t] for t in tags] for _, tags in train_sents]
    optimizer = _optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=tc.lr_decay,
                                                           patience=tc.lr_patience) if tc.lr_decay < 1 else None
    prog: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_score": -1.0, "best_epoch": 0,
                            "bad_epochs": 0, "elapsed": 0.0, "history": [], "labels": labels, "config": dict(config)}
    if resume:
        prog = load_checkpoint(ckpt_dir, model, optimizer, scheduler, rng)
        log(f"resuming from {ckpt_dir}: epoch {prog['epoch'] + 1}, step {prog['step_in_epoch']} "
            f"(best dev {prog['best_score']:.2f})")
    tagger = Tagger(dict(config), labels, model, dict(meta or {}))
    lengths = [len(t) for t, _ in train_sents]
    # word and character ids of the training sentences: computed once (datasets.map, cached on disk)
    indexed = index_sentences(model.embedding, [t for t, _ in train_sents], progress=progress)
    dev_sents = _drop_empty(dev_sents)

    def diverged(what: str) -> TrainingDivergedError:
        kept = f"the last good checkpoint stays in {ckpt_dir}" if (ckpt_dir / "trainer.json").is_file() \
            else "no checkpoint had been written yet"
        return TrainingDivergedError(f"{what}; training stopped and {kept}; lower training.lr or training.grad_clip")

    def check_finite() -> None:
        bad = next((n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())), None)
        if bad is not None:  # never let a diverged model overwrite the best model or the last good checkpoint
            raise diverged(f"the parameter {bad} became NaN or infinite by step {prog['global_step']}")

    def checkpoint() -> None:
        """Save the resumable state (model, optimizer, RNGs, progress and vocabularies) as one atomic directory."""
        check_finite()
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt_dir, model, optimizer, scheduler, prog, rng, assets=model.get_assets())

    def stop_here() -> None:
        """Ctrl-C was pressed or SIGTERM came: save the state at this step boundary and stop."""
        signum = stop_requested()
        prog["elapsed"] = time.time() - start_time
        checkpoint()
        prog["stopped"] = True
        log(f"interrupted{' (SIGTERM)' if signum == signal.SIGTERM else ''}: state saved in {ckpt_dir}; "
            f"continue with `seqtag train --resume {out}`")
        raise Interrupted(signum)

    start_time = time.time() - prog["elapsed"]
    interrupt = deferred_interrupt()  # the first Ctrl-C or SIGTERM stops at the next step boundary, after a checkpoint
    stop_requested = interrupt.__enter__()
    finished = prog["bad_epochs"] >= tc.patience or prog["epoch"] >= tc.max_epochs or \
        bool(tc.max_steps and prog["global_step"] >= tc.max_steps)
    if resume and finished:
        log(f"this run had already finished at epoch {prog['epoch']} (best dev {prog['best_score']:.2f} "
            f"at epoch {prog['best_epoch']}); nothing to resume")
    try:
        while prog["epoch"] < tc.max_epochs and not finished:
            epoch = prog["epoch"]
            epoch_rng = random.Random(tc.seed * 1000 + epoch)
            batches = make_batches(lengths, tc.batch_size, epoch_rng)
            model.train()
            t0, tokens_done, loss_sum = time.time(), 0, float(prog.get("epoch_loss", 0.0))
            bar = _progress(len(batches), f"epoch {epoch + 1}", progress, initial=prog["step_in_epoch"])
            for b in range(prog["step_in_epoch"], len(batches)):
                idx = batches[b]
                batch = make_batch(model, [train_sents[i][0] for i in idx], [train_ids[i] for i in idx],
                                   columns=None if indexed is None else indexed[idx])
                loss = model.loss(batch)
                if not torch.isfinite(loss):
                    raise diverged(f"the training loss became {loss.item()} at epoch {epoch + 1}, step {b + 1}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                loss_sum += loss.item()
                tokens_done += int(batch.mask.sum())
                prog["step_in_epoch"], prog["global_step"] = b + 1, prog["global_step"] + 1
                prog["epoch_loss"] = loss_sum
                bar.update(1)
                if tc.checkpoint_every and prog["global_step"] % tc.checkpoint_every == 0:
                    prog["elapsed"] = time.time() - start_time
                    checkpoint()
                if stop_requested():
                    stop_here()
                if tc.max_steps and prog["global_step"] >= tc.max_steps:
                    break
            bar.close()
            check_finite()
            train_time = time.time() - t0
            model.eval()
            scores = evaluate(tagger, dev_sents, task, batch_size=tc.eval_batch_size, breakdown=False)
            score = main_score(task, scores)
            improved = score > prog["best_score"]
            prog["history"].append({"epoch": epoch + 1, "loss": loss_sum / max(1, len(batches)), "dev": score})
            if improved:
                prog.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0,
                            best_time=time.time() - start_time)
                tagger.save(out, scores={"dev": _compact(scores, task), "epoch": epoch + 1,
                                         "train_seconds_to_best": round(prog["best_time"], 1)})
            else:
                prog["bad_epochs"] += 1
            if scheduler is not None:
                scheduler.step(score)
            lr = optimizer.param_groups[0]["lr"]
            log(f"epoch {epoch + 1:3d}  loss {loss_sum / max(1, len(batches)):8.3f}  dev {'F1' if task == 'ner' else 'acc'} "
                f"{score:6.2f}{' *' if improved else '  '}  {tokens_done / max(train_time, 1e-9):7.0f} tok/s  "
                f"lr {lr:.2g}  {time.time() - start_time:6.0f}s")
            prog.update(epoch=epoch + 1, step_in_epoch=0, epoch_loss=0.0, elapsed=time.time() - start_time)
            checkpoint()
            if stop_requested():
                stop_here()
            if tc.max_steps and prog["global_step"] >= tc.max_steps:
                break
            if prog["bad_epochs"] >= tc.patience:
                log(f"early stop: no dev improvement in {tc.patience} epochs")
                break
    except KeyboardInterrupt:
        if not prog.pop("stopped", False):  # a second signal, mid-step: the state may be half updated
            log(f"interrupted at once: the last checkpoint in {ckpt_dir} stays; "
                f"continue with `seqtag train --resume {out}`")
        raise
    finally:
        interrupt.__exit__(None, None, None)
    best = Tagger.load(out)
    summary = {"best_dev": prog["best_score"], "best_epoch": prog["best_epoch"], "epochs": prog["epoch"],
               "seconds": round(time.time() - start_time, 1), "seconds_to_best": round(prog.get("best_time", 0.0), 1),
               "history": prog["history"]}
    return best, summary


def _compact(scores: dict[str, Any], task: str) -> dict[str, Any]:
    keys = ("f1", "precision", "recall") if task == "ner" else ("accuracy",)
    return {k: round(float(scores[k]), 4) for k in keys}


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool, initial: int = 0) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, initial=initial, desc=desc, leave=False, unit="batch", disable=None, mininterval=1.0)

