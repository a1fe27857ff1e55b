"""Registries of the four kinds of parts: tokenizers, embeddings, encoders and heads.

Built-in parts register themselves with a decorator::

    @registry.encoders.register("lstm.v1")
    class LSTMEncoder(Encoder): ...

Third-party distributions declare entry points in the groups ``seqtag.tokenizers``,
``seqtag.embeddings``, ``seqtag.encoders`` and ``seqtag.heads``; the entry-point name is the
part's registered name. Entry points are loaded lazily, one name at a time, and all of them only
when every part is listed. Setting ``SEQTAG_DISABLE_PLUGIN_AUTOLOAD=1`` turns third-party loading off.

This module is cheap to import: it imports no torch. The built-in parts are imported the first
time a registry is asked for a name.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, TypeVar

from .errors import RegistryError

__all__ = [
    "Registry",
    "PartInfo",
    "tokenizers",
    "embeddings",
    "encoders",
    "heads",
    "REGISTRIES",
    "get_registry",
    "autoload_enabled",
    "AUTOLOAD_ENV",
]

AUTOLOAD_ENV = "SEQTAG_DISABLE_PLUGIN_AUTOLOAD"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9_\-]+)*\.v[0-9]+$")
BUILTIN_DIST = "seqtag"

T = TypeVar("T")


def autoload_enabled() -> bool:
    """Whether third-party entry points are loaded (off when ``SEQTAG_DISABLE_PLUGIN_AUTOLOAD`` is set)."""
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")


@dataclass(frozen=True)
class PartInfo:
    """What the registry knows of one registered part."""

    kind: str
    name: str
    obj: Any
    distribution: str
    version: str | None

    @property
    def description(self) -> str:
        doc = getattr(self.obj, "__doc__", None) or ""
        for line in doc.strip().splitlines():
            if line.strip():
                return line.strip()
        return ""


class Registry:
    """A mapping from versioned names (``lstm.v1``) to part factories of one kind.

    Args:
        kind: The part kind in the singular, e.g. ``"encoder"``.
        builtin_module: The module whose import registers the built-in parts.
    """

    def __init__(self, kind: str, builtin_module: str) -> None:
        self.kind = kind
        self.group = f"seqtag.{kind}s"
        self.builtin_module = builtin_module
        self._parts: dict[str, PartInfo] = {}
        self._builtins_loaded = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, obj: Any = None, *, distribution: str = BUILTIN_DIST,
                 version: str | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            def decorator(inner: T) -> T:
                self.register(name, inner, distribution=distribution, version=version)
                return inner
            return decorator
        if not NAME_PATTERN.match(name):
            raise RegistryError(
                f"invalid {self.kind} name {name!r}: names are lower-case and end in a version, e.g. 'lstm.v1'"
            )
        if name in self._parts:
            other = self._parts[name]
            raise RegistryError(
                f"duplicate {self.kind} name {name!r}: already registered by {other.distribution} "
                f"({_qualname(other.obj)}); register the new part as a new name or version (e.g. '{_bump(name)}')"
            )
        if version is None and distribution == BUILTIN_DIST:
            from .about import __version__

            version = __version__
        self._parts[name] = PartInfo(self.kind, name, obj, distribution, version)
        return obj

    # -- lookup -------------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            importlib.import_module(self.builtin_module)

    def _entry_points(self) -> list[EntryPoint]:
        if not autoload_enabled():
            return []
        return list(entry_points(group=self.group))

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else None
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            raise RegistryError(
                f"the {self.kind} plugin {ep.name!r} from {dist} failed to load ({ep.value}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if ep.name in self._parts:
            if self._parts[ep.name].obj is obj:
                return
            other = self._parts[ep.name]
            raise RegistryError(
                f"duplicate {self.kind} name {ep.name!r}: provided by {dist} and by {other.distribution}; "
                f"uninstall one of them or give one a new version"
            )
        self.register(ep.name, obj, distribution=dist, version=version)

    def info(self, name: str) -> PartInfo:
        """The :class:`PartInfo` for ``name``, loading its entry point if needed."""
        self._load_builtins()
        if name not in self._parts:
            for ep in self._entry_points():
                if ep.name == name:
                    self._load_entry_point(ep)
                    break
        if name not in self._parts:
            raise RegistryError(self._unknown_message(name))
        return self._parts[name]

    def get(self, name: str) -> Any:
        """The factory registered under ``name``."""
        return self.info(name).obj

    def __contains__(self, name: str) -> bool:
        try:
            self.info(name)
        except RegistryError:
            return False
        return True

    def names(self) -> list[str]:
        """Every name known without loading a plugin (built-ins and entry-point names)."""
        self._load_builtins()
        names = set(self._parts)
        names.update(ep.name for ep in self._entry_points())
        return sorted(names)

    def all(self) -> list[PartInfo]:
        """Load every entry point of this kind and return every part, sorted by name."""
        self._load_builtins()
        for ep in self._entry_points():
            self._load_entry_point(ep)
        return [self._parts[n] for n in sorted(self._parts)]

    def _unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        if not autoload_enabled():
            hint += f" (third-party plugins are off: {AUTOLOAD_ENV} is set)"
        return f"unknown {self.kind} {name!r}; available: {', '.join(names) or 'none'}.{hint}"


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _bump(name: str) -> str:
    stem, _, ver = name.rpartition(".v")
    return f"{stem}.v{int(ver) + 1}" if ver.isdigit() else name + ".v2"


tokenizers = Registry("tokenizer", "seqtag.tokenizers")
embeddings = Registry("embedding", "seqtag.embeddings")
encoders = Registry("encoder", "seqtag.encoders")
heads = Registry("head", "seqtag.heads")

REGISTRIES: dict[str, Registry] = {
    "tokenizer": tokenizers,
    "embedding": embeddings,
    "encoder": encoders,
    "head": heads,
}


def get_registry(kind: str) -> Registry:
    """The registry of ``kind`` (``tokenizer``, ``embedding``, ``encoder`` or ``head``)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise RegistryError(f"unknown part kind {kind!r}; kinds: {', '.join(REGISTRIES)}") from None
