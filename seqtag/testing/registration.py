"""The first two checks of every part: it is registered under its versioned name (from the expected
distribution), and its config passes the signature check and survives being saved as JSON."""

from __future__ import annotations

import inspect
import json
from importlib.metadata import entry_points
from typing import Any, Mapping

from .. import registry
from ..errors import SeqtagError
from .common import check_kind, fail

__all__ = ["check_registered", "check_config"]


def _norm_dist(name: str) -> str:
    """A distribution name as packaging compares them: ``Seqtag_My.Part`` is ``seqtag-my-part``."""
    return name.lower().replace("_", "-").replace(".", "-")


def check_registered(kind: str, name: str, distribution: str | None = None) -> registry.PartInfo:
    """The part is found by its versioned name, from ``distribution`` (through its entry point) if given.

    Returns:
        The registry's :class:`~seqtag.registry.PartInfo` for the part.

    Raises:
        AssertionError: ``[seqtag.testing registered] KIND 'NAME': ...``.
    """
    check_kind(kind)
    if not registry.NAME_PATTERN.match(name):
        raise fail("registered", kind, name, "names are lower-case and end in a version, e.g. 'my_encoder.v1'")
    reg = registry.get_registry(kind)
    try:
        info = reg.info(name)
    except SeqtagError as exc:
        raise fail("registered", kind, name, f"not found by name: {exc.one_line()}") from None
    if name not in reg.names():
        raise fail("registered", kind, name, "found by info() but missing from names() (and `seqtag plugins`)")
    if distribution is not None:
        if _norm_dist(info.distribution) != _norm_dist(distribution):
            raise fail("registered", kind, name, f"registered by {info.distribution!r}, expected {distribution!r}")
        eps = [ep for ep in entry_points(group=reg.group) if ep.name == name]
        if not eps:
            raise fail("registered", kind, name, f"no entry point named {name!r} in the group {reg.group!r}; "
                       f"declare it in pyproject.toml: [project.entry-points.\"{reg.group}\"] "
                       f"\"{name}\" = \"your_module:YourClass\" and reinstall the distribution")
        dists = {_norm_dist(ep.dist.name) for ep in eps if ep.dist is not None}
        if _norm_dist(distribution) not in dists:
            raise fail("registered", kind, name, f"the entry point comes from {sorted(dists)}, not {distribution!r}")
    if not info.description:
        raise fail("registered", kind, name, "has no docstring; its first line is the description "
                   "that `seqtag plugins` shows")
    if not callable(info.obj):
        raise fail("registered", kind, name, f"registered object {info.obj!r} is not callable")
    try:
        params = inspect.signature(info.obj).parameters
    except (TypeError, ValueError):
        raise fail("registered", kind, name, "its signature cannot be read; the config check needs it") from None
    missing = [w for w in registry.WIRED[kind] if w not in params]
    if missing:
        raise fail("registered", kind, name, f"__init__ must take {', '.join(missing)} (wired by the model)")
    return info


def check_config(kind: str, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The kwargs pass the signature check and the resolved config is JSON that resolves to itself.

    Returns:
        The resolved part config (``type`` and every argument, defaults filled in).

    Raises:
        AssertionError: ``[seqtag.testing config] KIND 'NAME': ...``.
    """
    from ..config import resolve

    check_kind(kind)
    cfg = {"type": name, **dict(params or {})}
    try:
        resolved = resolve(kind, cfg)
    except SeqtagError as exc:
        raise fail("config", kind, name, f"the config {cfg!r} is rejected: {exc.one_line()}") from None
    try:
        text = json.dumps(resolved, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise fail("config", kind, name, f"the resolved config is not JSON ({exc}): defaults must be "
                   "numbers, strings, booleans, None, lists or tables") from None
    again = resolve(kind, json.loads(text))
    if json.dumps(again, sort_keys=True) != text:
        raise fail("config", kind, name, f"resolving the saved config changes it: {resolved!r} -> {again!r}")
    return json.loads(text)
