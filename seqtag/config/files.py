"""Config files and edits to configs: reading TOML or JSON, the nesting limit, deep merges and ``--set`` overrides.

Nothing here knows what a config means; :mod:`seqtag.config.build` checks the result once it is whole.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..jsonio import read_json_object, read_text, short_repr, value_error_reason

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["load_config", "merge", "apply_overrides", "check_depth", "MAX_DEPTH"]

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


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
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
