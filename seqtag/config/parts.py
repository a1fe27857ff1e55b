"""A part's table (``[model.encoder]``...) checked against the part's signature, completed and built.

``type`` names the registered part; every other key is one of its keyword arguments, checked by name
and by type (from the real annotation objects, resolved with :func:`typing.get_type_hints`) before
anything is built. The arguments the model wires in (:data:`seqtag.registry.WIRED`) are refused.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any, Callable, Mapping

from .. import registry
from ..errors import ConfigError
from ..jsonio import shown

__all__ = ["check_kwargs", "resolve", "build_part", "value_fits", "type_hints"]

_SEQUENCES = (list, tuple, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)


def value_fits(value: Any, annotation: Any) -> bool:
    """Whether a plain config value (from TOML or JSON) fits a parameter's annotation object.

    ``int`` and ``float`` refuse booleans, ``float`` takes integers, sequences take lists and tuples;
    what plain data cannot be held to (a class of the part's own, ``Literal``...) fits.
    """
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    container = origin or annotation  # list[int] and a bare list alike
    if container in _SEQUENCES:
        return isinstance(value, (list, tuple))
    if container in _MAPPINGS:
        return isinstance(value, Mapping)
    return True


def type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The annotation objects of ``factory``'s parameters (its ``__init__``'s for a class).

    Annotations kept as text (``from __future__ import annotations``) are resolved in the factory's
    module. One naming what only a type checker imports cannot be resolved: that parameter goes
    unchecked, the others are still resolved one by one.
    """
    target = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except Exception:  # any error of resolving: a NameError, or a TypeError from `X | Y` of unsupported types
        module_globals = getattr(inspect.unwrap(target), "__globals__", {})
        hints: dict[str, Any] = {}
        for name, text in getattr(target, "__annotations__", {}).items():
            try:
                one = types.SimpleNamespace(__annotations__={name: text})
                hints.update(typing.get_type_hints(one, globalns=module_globals))
            except Exception:
                pass
        return hints


def _signature(kind: str, name: str) -> tuple[Callable[..., Any], inspect.Signature]:
    obj = registry.get_registry(kind).get(name)
    try:
        return obj, inspect.signature(obj)
    except (TypeError, ValueError):
        raise ConfigError(f"{kind} {name!r}: cannot read the signature of {obj!r}") from None


def check_kwargs(kind: str, cfg: Mapping[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Check a part config against the part's signature; return the factory and its kwargs."""
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"the {kind} config must be a table with a 'type' key, got {shown(cfg)}")
    name = cfg["type"]
    if not isinstance(name, str):
        raise ConfigError(f"the {kind} 'type' must be a registered part name (a string), got {shown(name)}")
    obj, sig = _signature(kind, name)
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    params = sig.parameters
    wired = registry.WIRED.get(kind, ())
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    hints: dict[str, Any] | None = None  # resolved at the first key to check
    for key, value in kwargs.items():
        if key in wired:
            raise ConfigError(f"{kind} {name!r}: '{key}' is wired by the model from the parts around it; remove it")
        if key not in params and not takes_any:
            allowed = [p for p in params if p not in wired and p != "self"
                       and params[p].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
            raise ConfigError(f"{kind} {name!r} takes no argument '{key}'; it takes: {', '.join(allowed) or 'nothing'}")
        if key not in params:
            continue
        hints = type_hints(obj) if hints is None else hints
        if not value_fits(value, hints.get(key, inspect.Parameter.empty)):
            ann = params[key].annotation  # as written in the source, the way the user reads it
            ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
            raise ConfigError(f"{kind} {name!r}: '{key}' must be {ann}, got {shown(value)}")
    return obj, kwargs


def resolve(kind: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part config with every default filled in (recursing into nested part configs)."""
    obj, kwargs = check_kwargs(kind, cfg)
    sig = inspect.signature(obj)
    wired = registry.WIRED.get(kind, ())
    out: dict[str, Any] = {"type": cfg["type"]}
    for pname, param in sig.parameters.items():
        if pname in wired or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname in kwargs:
            out[pname] = kwargs[pname]
        elif param.default is not inspect.Parameter.empty:
            default = param.default
            out[pname] = list(default) if isinstance(default, tuple) else default
    for key, value in kwargs.items():  # **kwargs parts keep extra keys
        out.setdefault(key, value)
    for key, sub_kind in registry.nested_slots(obj).items():
        if isinstance(out.get(key), (list, tuple)):
            out[key] = [resolve(sub_kind, sub) for sub in out[key]]
    return out


def build_part(kind: str, cfg: Mapping[str, Any], **wired: Any) -> Any:
    """Build the part named by ``cfg['type']`` with its kwargs and the wired arguments."""
    obj, kwargs = check_kwargs(kind, cfg)
    try:
        return obj(**kwargs, **wired)
    except TypeError as exc:
        raise ConfigError(f"{kind} {cfg['type']!r}: {exc}") from None
