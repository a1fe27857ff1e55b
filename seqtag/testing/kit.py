"""Every check in order on one part: :func:`check_part` and its shorthand per kind."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .common import CheckOptions, CheckReport, check_kind, fail
from .embeddings import contract_embedding
from .encoders import contract_encoder
from .fitting import check_fits, tiny_config
from .heads import contract_head
from .registration import check_config, check_registered
from .roundtrip import check_save_load
from .tokenizers import contract_tokenizer

__all__ = ["check_part", "check_tokenizer", "check_embedding", "check_encoder", "check_head", "CONTRACTS"]

CONTRACTS: dict[str, Callable[[str, Mapping[str, Any], float], None]] = {
    "tokenizer": contract_tokenizer,
    "embedding": contract_embedding,
    "encoder": contract_encoder,
    "head": contract_head,
}
"""The contract check of each kind: ``contract(name, resolved_config, atol)``."""


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
        A :class:`~seqtag.testing.CheckReport` with the fitting run's numbers and the time of each check.

    Raises:
        AssertionError: The first check that failed, with what was wrong.
    """
    check_kind(kind)
    opts = options or CheckOptions()
    part_params = {**dict(params or {}), **kwargs}
    seconds: dict[str, float] = {}

    def phase(label: str, fn: Callable[..., Any], *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        except AssertionError:
            raise
        except Exception as exc:  # the part's own code failed: say in which check
            raise fail(label, kind, name, f"raised {type(exc).__name__}: {' '.join(str(exc).split())[:400]}") \
                from exc
        finally:
            seconds[label] = time.perf_counter() - t

    info = phase("registered", check_registered, kind, name, distribution)
    cfg = phase("config", check_config, kind, name, part_params)
    phase("contract", CONTRACTS[kind], name, cfg, opts.atol)
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
