"""The shape of a config: which keys the config and each of its tables take, what each means, and what
``[model]`` holds.

A key outside the allowed ones is an error naming the keys the table takes, never a setting that is
silently ignored. The part tables inside ``[model]`` are checked by :mod:`seqtag.config.parts`. The
keys' descriptions (:data:`TOP_HELP`, :data:`DATA_HELP`, :data:`MODEL_HELP`) are the ones the
configuration reference and ``seqtag init-config`` show (:mod:`seqtag.config.help`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..context import encoder_reach
from ..errors import ConfigError
from ..jsonio import short_repr, shown
from ..registry import KINDS

__all__ = ["check_keys", "check_table", "check_top_level", "check_model_table",
           "CONFIG_KEYS", "DATA_KEYS", "MODEL_KEYS", "TOP_HELP", "DATA_HELP", "MODEL_HELP"]

# What each key means, in markdown (a link is relative to docs/reference/); the keys are these tables' keys
TOP_HELP: dict[str, str] = {
    "task": "`ner` or `pos`; `--task` sets it and picks the task's defaults.",
    "scheme": "NER: the tag scheme the model trains on, `BIOES` or `IOB2` (scores are always in IOB2); "
              "POS: `none`.",
    "data": "The `[data]` table: what to train on.",
    "model": "The `[model]` table: the parts and the dropout between them.",
    "training": "The `[training]` table: optimizer, schedule, batching, stopping, checkpoints, device.",
}
# [data]: each key's default as it is shown ({default_corpus}: the task's corpus, {stream_sample}: its number)
# and its meaning
DATA_HELP: dict[str, tuple[str, str]] = {
    "dataset": ("{default_corpus}",
                "A catalogue name, a file or folder, `train=PATH,dev=PATH,...`, a `save_to_disk` folder or a hub "
                "id `owner/name[:config]` ([data.md](../data.md)); `--dataset`. A local path is saved absolute."),
    "tag_column": ("the format's", "CoNLL: a column number (default: the last); CoNLL-U: `upos` (default) or "
                                   "`xpos`; datasets: a column name; `--tag-column`."),
    "scheme": ("detected", "NER: the data's tag scheme, `IOB1`, `IOB2` or `BIOES`; `--scheme`."),
    "strict": ("`false`", "Invalid tag sequences are an error instead of being repaired; `--strict`."),
    "streaming": ("`false`", "Stream the training split instead of loading it ([scale.md](../scale.md)); "
                             "`--streaming`."),
    "stream_sample": ("{stream_sample}", "Streamed: the sentences of the first pass, which gives the vocabulary, "
                                         "the labels and the scheme."),
}
MODEL_HELP: dict[str, str] = {
    "tokenizer": "The `[model.tokenizer]` table: splits raw text into tokens at prediction time.",
    "embedding": "The `[model.embedding]` table: token vectors.",
    "encoder": "The `[model.encoder]` table: context vectors from the token vectors.",
    "head": "The `[model.head]` table: tag scores, the loss and decoding.",
    "dropout": "Dropout after the embedding and after the encoder, in [0, 1).",
    "locked_dropout": "`true`: that dropout drops the same vector dimensions at every position of a "
                      "sentence (locked, or variational, dropout) instead of drawing each position's own "
                      "(`false`, the default).",
    "context": "Document context: up to this many tokens of the sentences before and after each sentence in "
               "its document (`-DOCSTART-` lines mark documents) are fed to the embedding and the encoder, "
               "and only the sentence is tagged. `0` (the default): each sentence alone. Training, scoring, "
               "`seqtag predict` on CoNLL input and the spaCy component read the documents; texts and "
               "token lists given alone, and an exported ONNX model, tag each sentence alone.",
    "context_scope": "With `context`: `\"encoder\"` (the default) feeds the window to the embedding and the "
                     "encoder; `\"embedding\"` to the embedding alone (a transformer's vectors read the "
                     "document) and the encoder reads the sentence's own vectors, so it costs what it costs "
                     "without context.",
    "encoder_context": "With `context` and `context_scope = \"encoder\"`: the tokens of context on each side "
                       "that the encoder reads, the nearest of the embedding's, from 0 to `context` (the "
                       "default: all of them). A transformer embedding can read a wide window while the "
                       "encoder reads a narrower one.",
}

CONFIG_KEYS = tuple(TOP_HELP)
DATA_KEYS = tuple(DATA_HELP)
# MODEL_HELP describes each (tests/test_first_hour.py checks it)
MODEL_KEYS = (*KINDS, "dropout", "locked_dropout", "context", "context_scope", "encoder_context")


def check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str, kind: str = "key") -> None:
    """A key outside ``allowed`` is an error naming the keys ``where`` takes, not a setting silently ignored."""
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where} takes no {kind} {short_repr(key)}; it takes: {', '.join(allowed)}")


def check_table(table: Any, allowed: Sequence[str], name: str) -> None:
    """``[name]`` is a table holding only keys from ``allowed``."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table, got {shown(table)}")
    check_keys(table, allowed, f"[{name}]")


def check_top_level(cfg: Mapping[str, Any]) -> None:
    """A config holds ``task``, ``scheme`` and the ``[data]``, ``[model]`` and ``[training]`` tables."""
    check_keys(cfg, CONFIG_KEYS, "the config", "top-level key")
    check_table(cfg.get("data", {}), DATA_KEYS, "data")


def check_model_table(model: Any) -> None:
    """``[model]`` holds the part tables, ``dropout`` (a number in [0, 1)), ``locked_dropout`` (a boolean) and
    ``context`` (a whole number >= 0), ``context_scope`` (``"encoder"`` or ``"embedding"``) and
    ``encoder_context`` (a whole number from 0 to ``context``), nothing else."""
    check_table(model, MODEL_KEYS, "model")
    dropout = model.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"[model] dropout must be a number in [0, 1), got {shown(dropout)}")
    if not isinstance(model.get("locked_dropout", False), bool):
        raise ConfigError(f"[model] locked_dropout must be true or false, got {shown(model['locked_dropout'])}")
    encoder_reach(model)  # context, context_scope and encoder_context
