"""Configs: which part fills each slot, with its keyword arguments, checked against the part's signature.

A config is a nested dict (read from TOML or given directly)::

    [model.encoder]
    type = "lstm.v1"
    hidden_size = 200

Sizes between parts (``input_dim``, ``labels``, ``scheme``) are wired by the model: a user who sets
them gets an error. :func:`resolve` fills every default so a saved config is complete.
"""

from __future__ import annotations

import copy
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import registry
from .errors import ConfigError
from .jsonio import read_json_object, read_text, short_repr, shown, value_error_reason

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["load_config", "apply_overrides", "resolve", "build_part", "check_kwargs", "merge", "WIRED",
           "check_model_table", "check_top_level", "check_keys", "check_depth", "MAX_DEPTH"]

# keyword arguments that the model passes; users never set them
WIRED = {"embedding": set(), "encoder": {"input_dim"}, "head": {"input_dim", "labels", "scheme"}, "tokenizer": set()}


CONFIG_KEYS = ("task", "scheme", "data", "model", "training")
DATA_KEYS = ("dataset", "tag_column", "scheme", "strict")
MODEL_KEYS = ("tokenizer", "embedding", "encoder", "head", "dropout")


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
    """``[model]`` holds the part tables and ``dropout`` (a number in [0, 1)), nothing else."""
    check_table(model, MODEL_KEYS, "model")
    dropout = model.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"[model] dropout must be a number in [0, 1), got {shown(dropout)}")


MAX_DEPTH = 32  # tables and arrays inside one another; seqtag's own configs use 5


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """``value`` nests tables and arrays at most ``limit`` deep.

    Deeper configs would make the recursive merge and copies exhaust Python's recursion limit; no
    real config comes near the limit. The walk is iterative, so it cannot overflow itself.
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, (list, tuple)) else ()
        for child in children:
            if isinstance(child, (Mapping, list, tuple)):
                if depth + 1 > limit:
                    raise ConfigError(f"{where}: tables and arrays nested more than {limit} deep; "
                                      "a seqtag config needs a few levels")
                stack.append((child, depth + 1))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or JSON, by the ``.json`` suffix) config file.

    Whatever the file holds, a problem is one :class:`ConfigError` line naming the file: a missing
    file, bytes that are not UTF-8, a syntax error, an integer over Python's digit limit, nesting
    deep enough to exhaust the recursion limit, or a JSON value that is not an object.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    if p.suffix == ".json":
        cfg = read_json_object(p, ConfigError)
    else:
        text = read_text(p, ConfigError, "config")
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not a valid TOML config: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{p}: not a readable TOML config: nested too deeply") from None
        except ValueError as exc:  # an integer over Python's digit limit
            raise ConfigError(f"{p}: not a readable TOML config: {value_error_reason(exc)}") from None
    check_depth(cfg, str(p))
    return cfg


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; a changed ``type`` drops the old part's keys."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            if "type" in value and value["type"] != out[key].get("type"):
                out[key] = copy.deepcopy(dict(value))
            else:
                out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_value(text: str) -> Any:
    """A ``--set`` value: JSON, else a TOML value, else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, a huge integer or deep nesting: not JSON to use
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
            return text


def apply_overrides(config: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``slot.key=value`` overrides (values parsed as JSON/TOML, else kept as strings).

    Setting ``model.encoder.type`` to another part replaces the slot, dropping the old part's keys.
    """
    out = copy.deepcopy(dict(config))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {short_repr(item)}: expected slot.key=value, e.g. model.encoder.hidden_size=256")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = out
        for key in keys[:-1]:
            nxt = node.get(key)
            if not isinstance(nxt, dict):
                nxt = node[key] = {}
            node = nxt
        value = _parse_value(raw.strip())
        if keys[-1] == "type" and node.get("type") not in (None, value):
            node.clear()
        node[keys[-1]] = value
        check_depth(out, f"--set {dotted.strip()[:80]}")
    return out


def _signature(kind: str, name: str) -> tuple[Any, inspect.Signature]:
    obj = registry.get_registry(kind).get(name)
    try:
        return obj, inspect.signature(obj)
    except (TypeError, ValueError):
        raise ConfigError(f"{kind} {name!r}: cannot read the signature of {obj!r}") from None


def _type_ok(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, {"typing": typing, "Any": Any, "Sequence": typing.Sequence,
                                           "Mapping": typing.Mapping})  # noqa: S307 - annotations of registered code
        except Exception:
            return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence):
        return isinstance(value, (list, tuple))
    if origin in (dict, typing.Mapping, __import__("collections.abc").abc.Mapping):
        return isinstance(value, Mapping)
    return True


def check_kwargs(kind: str, cfg: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Check a part config against the part's signature; return the factory and its kwargs."""
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"the {kind} config must be a table with a 'type' key, got {shown(cfg)}")
    name = cfg["type"]
    if not isinstance(name, str):
        raise ConfigError(f"the {kind} 'type' must be a registered part name (a string), got {shown(name)}")
    obj, sig = _signature(kind, name)
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    params = sig.parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key, value in kwargs.items():
        if key in WIRED.get(kind, set()):
            raise ConfigError(f"{kind} {name!r}: '{key}' is wired by the model from the parts around it; remove it")
        if key not in params and not takes_any:
            allowed = [p for p in params if p not in WIRED.get(kind, set()) and p != "self"
                       and params[p].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
            raise ConfigError(f"{kind} {name!r} takes no argument '{key}'; it takes: {', '.join(allowed) or 'nothing'}")
        if key in params and not _type_ok(value, params[key].annotation):
            ann = params[key].annotation
            ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
            raise ConfigError(f"{kind} {name!r}: '{key}' must be {ann}, got {shown(value)}")
    return obj, kwargs


def resolve(kind: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part config with every default filled in (recursing into nested part configs)."""
    obj, kwargs = check_kwargs(kind, cfg)
    sig = inspect.signature(obj)
    out: dict[str, Any] = {"type": cfg["type"]}
    for pname, param in sig.parameters.items():
        if pname in WIRED.get(kind, set()) or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname in kwargs:
            out[pname] = kwargs[pname]
        elif param.default is not inspect.Parameter.empty:
            default = param.default
            out[pname] = list(default) if isinstance(default, tuple) else default
    for key, value in kwargs.items():  # **kwargs parts keep extra keys
        out.setdefault(key, value)
    for key, sub_kind in getattr(obj, "nested", {}).items():
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
