"""Configs: which part fills each slot, with its keyword arguments, checked against the part's signature.

A config is a nested dict (read from TOML or given directly)::

    [model.encoder]
    type = "lstm.v1"
    hidden_size = 200

Sizes between parts (``input_dim``, ``labels``, ``scheme``) are wired by the model: a user who sets
them gets an error. :func:`resolve` fills every default so a saved config is complete, and
:func:`build_config` builds the config a run trains with from its layers (task defaults, the user's
config, ``--set`` overrides, command-line flags), checking the whole once.

The modules: :mod:`~seqtag.config.files` (reading, merging, ``--set``), :mod:`~seqtag.config.tables`
(the keys each table takes), :mod:`~seqtag.config.parts` (a part's table against its signature),
:mod:`~seqtag.config.training` (``[training]``) and :mod:`~seqtag.config.build` (the layers, checked
once). The task defaults are the package data files ``seqtag/configs/ner.toml`` and ``pos.toml``.
"""

from ..registry import WIRED
from .build import TASKS, absolute_dataset, build_config, default_config
from .files import MAX_DEPTH, apply_overrides, check_depth, load_config, merge
from .parts import build_part, check_kwargs, resolve, type_hints, value_fits
from .tables import check_keys, check_model_table, check_table, check_top_level
from .training import TrainingConfig

__all__ = ["load_config", "apply_overrides", "resolve", "build_part", "check_kwargs", "merge", "WIRED",
           "check_model_table", "check_top_level", "check_keys", "check_table", "check_depth", "MAX_DEPTH",
           "value_fits", "type_hints", "TrainingConfig", "default_config", "build_config", "absolute_dataset",
           "TASKS"]
