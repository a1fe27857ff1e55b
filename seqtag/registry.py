"""The four kinds of parts (tokenizers, embeddings, encoders, heads): what each kind is, and a registry per kind.

What every module asks about the kinds is defined here once: :data:`KINDS` (also the part slots of a
``[model]`` table), :data:`WIRED` (the arguments the model passes each kind, never set by users),
:func:`entry_point_group` (``seqtag.encoders``...) and :func:`walk_parts` (every part a ``[model]``
table names, the nested ones included, through the parts' ``nested`` attribute).

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
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator, Mapping, TypeVar, overload

from .about import DISTRIBUTION
from .errors import RegistryError

if TYPE_CHECKING:  # the part base classes import torch; this module must not
    from .embeddings.base import Embedding
    from .encoders.base import Encoder
    from .heads.base import Head
    from .tokenizers import Tokenizer

__all__ = [
    "Registry",
    "PartInfo",
    "KINDS",
    "NETWORK_KINDS",
    "WIRED",
    "entry_point_group",
    "nested_slots",
    "walk_parts",
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
BUILTIN_DIST = DISTRIBUTION  # the distribution the built-in parts come with

KINDS: tuple[str, ...] = ("tokenizer", "embedding", "encoder", "head")
"""The kinds of parts, in the order a tagger runs them; also the part slots of a ``[model]`` table."""

NETWORK_KINDS: tuple[str, ...] = ("embedding", "encoder", "head")
"""The kinds the model's network is built from (the tokenizer runs before it, on raw text)."""

WIRED: dict[str, tuple[str, ...]] = {
    "tokenizer": (),
    "embedding": (),
    "encoder": ("input_dim",),
    "head": ("input_dim", "labels", "scheme"),
}
"""The keyword arguments the model passes each kind from the parts around it; a config never sets them."""


def entry_point_group(kind: str) -> str:
    """The entry-point group through which third parties provide parts of ``kind``, e.g. ``seqtag.encoders``."""
    return f"seqtag.{kind}s"


T = TypeVar("T")  # the kind of part a registry's factories build (Encoder, Head, ...)
F = TypeVar("F", bound=Callable[..., Any])  # a factory, as the register decorator gets and returns it


def autoload_enabled() -> bool:
    """Whether third-party entry points are loaded (off when ``SEQTAG_DISABLE_PLUGIN_AUTOLOAD`` is set)."""
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")


@dataclass(frozen=True)
class PartInfo(Generic[T]):
    """What the registry knows of one registered part: ``obj`` is its factory (usually the part's class)."""

    kind: str
    name: str
    obj: Callable[..., T]
    distribution: str
    version: str | None

    @property
    def description(self) -> str:
        doc = getattr(self.obj, "__doc__", None) or ""
        for line in doc.strip().splitlines():
            if line.strip():
                return line.strip()
        return ""


class Registry(Generic[T]):
    """A mapping from versioned names (``lstm.v1``) to factories of one kind of part, ``T``.

    Args:
        kind: The part kind in the singular, e.g. ``"encoder"``.
        builtin_module: The module whose import registers the built-in parts.
    """

    def __init__(self, kind: str, builtin_module: str) -> None:
        self.kind = kind
        self.group = entry_point_group(kind)
        self.builtin_module = builtin_module
        self._parts: dict[str, PartInfo[T]] = {}
        self._builtins_loaded = False

    # -- registration -------------------------------------------------------------------------
    @overload
    def register(self, name: str, obj: None = None, *, distribution: str = ...,
                 version: str | None = ...) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, obj: F, *, distribution: str = ..., version: str | None = ...) -> F: ...

    def register(self, name: str, obj: Any = None, *, distribution: str = BUILTIN_DIST,
                 version: str | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:
            def decorator(inner: F) -> F:
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

    def info(self, name: str) -> PartInfo[T]:
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

    def get(self, name: str) -> Callable[..., T]:
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

    def all(self) -> list[PartInfo[T]]:
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


tokenizers: Registry[Tokenizer] = Registry("tokenizer", "seqtag.tokenizers")
embeddings: Registry[Embedding] = Registry("embedding", "seqtag.embeddings")
encoders: Registry[Encoder] = Registry("encoder", "seqtag.encoders")
heads: Registry[Head] = Registry("head", "seqtag.heads")

REGISTRIES: dict[str, Registry[Any]] = {reg.kind: reg for reg in (tokenizers, embeddings, encoders, heads)}
"""The registry of each kind, in :data:`KINDS` order."""


def get_registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (``tokenizer``, ``embedding``, ``encoder`` or ``head``)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise RegistryError(f"unknown part kind {kind!r}; kinds: {', '.join(REGISTRIES)}") from None


def nested_slots(factory: Any) -> Mapping[str, str]:
    """The keys of a part's config that hold lists of nested part configs, with their kind.

    A part that composes others declares them on its class, e.g. ``nested = {"parts": "embedding"}``
    (``concat.v1``) or ``nested = {"layers": "encoder"}`` (``stack.v1``); other parts have none.
    """
    nested = getattr(factory, "nested", None)
    return nested if isinstance(nested, Mapping) else {}


def walk_parts(model_cfg: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Every part a ``[model]`` table names, nested parts included, as ``(kind, name, cfg)``, depth first.

    The slots are visited in :data:`KINDS` order. A slot that is not a table, or a ``type`` that is not
    a string, is passed over (checking the config reports those); an unknown name raises
    :class:`~seqtag.errors.RegistryError` listing the known ones.
    """
    # an explicit stack: a config read from a model folder may nest parts deeper than the recursion limit
    stack: list[tuple[str, Any]] = [(kind, model_cfg.get(kind)) for kind in reversed(KINDS)]
    while stack:
        kind, cfg = stack.pop()
        if not isinstance(cfg, Mapping) or not isinstance(cfg.get("type"), str):
            continue
        name = cfg["type"]
        yield kind, name, cfg
        subs = [(sub_kind, sub) for key, sub_kind in nested_slots(get_registry(kind).get(name)).items()
                if isinstance(cfg.get(key), (list, tuple)) for sub in cfg[key]]
        stack.extend(reversed(subs))
