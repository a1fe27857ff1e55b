"""The Python training API: :func:`train`, which ``seqtag`` exports as ``seqtag.train``.

It is ``seqtag train`` as a function, through the same code: the config is built by
:func:`~seqtag.config.build_config`, the data (a ``datasets`` object, a list of ``(tokens, tags)``
pairs, or what ``--dataset`` takes) becomes the same :class:`~seqtag.corpus.Corpus` (its tag scheme
detected, checked and converted to the training scheme), the output folder is claimed with the same
``overwrite``/``force`` rules, and :func:`seqtag.workflow.run_training` trains and scores it.
Heavy modules (torch, datasets) are imported when it is called, so ``import seqtag`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from .errors import ConfigError

if TYPE_CHECKING:
    from .tagger import Tagger

__all__ = ["train"]

_DEV_NAMES = ("dev", "validation", "valid", "testa")
_TEST_NAMES = ("test", "testb")


def train(config: Mapping[str, Any] | str | Path | None = None, *, task: str | None = None, train: Any = None,
          dev: Any = None, test: Any = None, output: str | Path, overwrite: bool = False, force: bool = False,
          callbacks: Sequence[Any] = (), progress: bool = True, overrides: Iterable[str] = (),
          tag_column: str | None = None, scheme: str | None = None, strict: bool = False,
          report_to: str | Sequence[str] | None = None,
          log: Callable[[str], None] | None = print) -> "Tagger":
    """Train a tagger, keep the best one (by dev score) in ``output``, score it on the test split.

    Args:
        config: A config (a dict as the TOML reads, or the path of a ``.toml``/``.json`` file) over the
            task's defaults, as ``--config``.
        task: ``ner`` or ``pos`` (default: the config's, else ``ner``).
        train: The training data: a ``datasets.DatasetDict`` (its ``train``, ``validation``/``dev`` and
            ``test`` splits are used), a ``Dataset`` or ``IterableDataset``, a list of ``(tokens, tags)``
            pairs, or what ``--dataset`` takes (a path, a catalogue name, a hub id); ``None``: the
            config's ``data.dataset``. The tag column (``tags``, ``ner_tags``, ``upos``...; or
            ``tag_column``) and, for ``ClassLabel`` ids, the label names come from the features.
        dev: Dev data for model selection (default: the ``train`` dict's dev split, else a tenth of
            the training sentences held out).
        test: Test data, scored with the best model at the end.
        output: The model folder (a new or empty one; see ``overwrite`` and ``force``).
        overwrite: Replace the model (and its run) already in ``output``.
        force: Write the model into a folder that holds other files.
        callbacks: Objects with ``on_epoch_end(epoch, scores)`` and/or ``on_train_end(summary)``
            (see :mod:`seqtag.callbacks`).
        progress: Show a progress bar per epoch.
        overrides: ``slot.key=value`` strings, as ``--set``.
        tag_column, scheme, strict: As ``--tag-column``, ``--scheme`` and ``--strict``.
        report_to: ``"tensorboard"`` writes the loss, dev score and learning rate under ``output/runs``.
        log: Where the epoch lines go (``None``: nowhere).

    Returns:
        The best :class:`~seqtag.tagger.Tagger`, loaded from ``output``; ``tagger.scores`` holds its
        dev (and test) scores, ``tagger.summary`` the run (``dev``, ``test``, ``best_epoch``, ``history``).

    Raises:
        seqtag.SeqtagError: One line (``exc.one_line()``) naming what was wrong, as the CLI prints it;
            a tag invalid in the data's scheme is a :class:`~seqtag.errors.DataError`.
    """
    from .config import build_config, load_config
    from .tagger import Tagger
    from .workflow import run_training

    user = load_config(config) if isinstance(config, (str, Path)) else dict(config or {})
    spec, memory = _data_spec(train, dev, test)
    cfg = build_config(task, user, overrides=list(overrides),
                       data={"dataset": spec, "tag_column": tag_column, "scheme": scheme, "strict": strict})
    if memory is not None:  # in-memory data is not saved: the config must not name another corpus
        cfg["data"].pop("dataset", None)
    out = Path(output)
    every = [*callbacks, *_reporters(report_to, out)]
    result = run_training(cfg, out, progress=progress, log=log or (lambda _: None), force=force,
                          overwrite=overwrite, dataset=memory, callbacks=every)
    tagger = Tagger.load(out)
    tagger.summary = result
    return tagger


def _reporters(report_to: str | Sequence[str] | None, output: Path) -> list[Any]:
    from .callbacks import reporting_callbacks

    return reporting_callbacks(report_to, output)


def _is_spec(data: Any) -> bool:
    return isinstance(data, (str, Path))


def _data_spec(train: Any, dev: Any, test: Any) -> tuple[str | None, Any]:
    """``(spec, memory)``: what ``--dataset`` would take, or the splits given in memory (one is ``None``)."""
    given = {name: d for name, d in (("train", train), ("dev", dev), ("test", test)) if d is not None}
    if not given:
        return None, None
    if all(_is_spec(d) for d in given.values()):
        if set(given) == {"train"}:
            return str(train), None
        if "train" not in given:
            raise ConfigError("dev or test data without training data; pass train=...")
        return ",".join(f"{name}={d}" for name, d in given.items()), None
    if any(_is_spec(d) for d in given.values()):
        raise ConfigError("train, dev and test must be all paths (or corpus names) or all data in memory, "
                          f"got {', '.join(f'{k}={type(v).__name__}' for k, v in given.items())}")
    if train is None:
        raise ConfigError("dev or test data without training data; pass train=...")
    if isinstance(train, Mapping) and dev is None and test is None:
        return None, train  # a DatasetDict as it is: its splits, and its name in messages
    splits: dict[str, Any] = dict(train) if isinstance(train, Mapping) else {"train": train}
    for names, data in ((_DEV_NAMES, dev), (_TEST_NAMES, test)):
        if data is not None:  # an explicit split replaces the one the dict has
            splits = {k: v for k, v in splits.items() if k not in names}
            splits[names[0]] = data
    return None, splits
