"""``seqtag new-plugin``: write a working plugin package to start from.

The package is a setuptools distribution ``seqtag-NAME`` with one module ``seqtag_NAME`` holding a
small but complete part (an encoder by default), the entry point that registers it as ``NAME.v1``,
a README and a test that runs the contract kit (:mod:`seqtag.testing`) on it::

    seqtag new-plugin window --kind encoder --dir .
    pip install -e seqtag-window
    pytest seqtag-window/tests
    seqtag train --set model.encoder.type=window.v1 ...

This module imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .about import DISTRIBUTION, __version__
from .errors import ConfigError
from .registry import KINDS, entry_point_group, get_registry

__all__ = ["PluginNames", "plugin_names", "new_plugin", "KINDS"]

_NAME = re.compile(r"^[a-z][a-z0-9]*([_-][a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """The names that one plugin uses.

    Attributes:
        stem: The part's name without its version, e.g. ``window``.
        part: The registered (entry-point) name, e.g. ``window.v1``.
        distribution: The package to install, e.g. ``seqtag-window``.
        package: The Python package, e.g. ``seqtag_window``.
        cls: The class name, e.g. ``WindowEncoder``.
        kind: ``encoder``, ``embedding``, ``head`` or ``tokenizer``.
    """

    stem: str
    part: str
    distribution: str
    package: str
    cls: str
    kind: str

    @property
    def group(self) -> str:
        """The entry-point group, e.g. ``seqtag.encoders``."""
        return entry_point_group(self.kind)


def plugin_names(name: str, kind: str = "encoder") -> PluginNames:
    """Derive every name from ``name`` (``window``, ``my-window``, ``seqtag-window`` or ``window.v1``)."""
    if kind not in KINDS:
        raise ConfigError(f"new-plugin: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    raw = name.strip().lower()
    raw = re.sub(r"\.v[0-9]+$", "", raw)
    if raw.startswith("seqtag-") or raw.startswith("seqtag_"):
        raw = raw[len("seqtag-"):]
    if not _NAME.match(raw):
        raise ConfigError(f"new-plugin: {name!r} is not a usable name; use lower-case letters and digits, "
                          "words joined by '-' or '_', starting with a letter (e.g. 'window' or 'my-window')")
    stem = raw.replace("-", "_")
    words = [w for w in stem.split("_") if w]
    title = "".join(w.capitalize() for w in words)
    cls = title if words[-1] == kind else title + kind.capitalize()
    return PluginNames(stem, f"{stem}.v1", "seqtag-" + stem.replace("_", "-"), "seqtag_" + stem, cls, kind)


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "@DIST@"
version = "0.1.0"
description = "A seqtag @KIND@ plugin: @PART@."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["@SEQTAG_DIST@>=@SEQTAG@"]

[project.optional-dependencies]
test = ["pytest>=7"]

# The entry-point name is the registered name (versioned); the value is module:Class.
[project.entry-points."@GROUP@"]
"@PART@" = "@PKG@:@CLASS@"

[tool.setuptools]
packages = ["@PKG@"]
"""

_README = """\
# @DIST@

A seqtag @KIND@ plugin that registers **`@PART@`**
(class `@PKG@.@CLASS@`) through the `@GROUP@` entry point.

## Install and test

```bash
pip install -e .            # or: pip install -e ".[test]"
seqtag plugins              # lists @PART@ with the distribution @DIST@
pytest tests                # the seqtag contract checks (seqtag.testing)
```

## Use

```bash
seqtag train --task ner --dataset conll2003 --set model.@KIND@.type=@PART@ -o models/ner-@STEM@
```

Its settings are the keyword arguments of `@CLASS@.__init__`, e.g.
`--set model.@KIND@.@EXAMPLE_KEY@=@EXAMPLE_VALUE@`; `seqtag` checks them against the signature.
A saved tagger records `@DIST@` in its `meta.json`, and loading it without this package installed
names the package to install.

## Changing it

Keep `@PART@` loading the taggers already saved with it: a change to the arguments or the weights
that old taggers cannot load belongs under a new name, `@STEM@.v2` (a second entry point, a second
class). See seqtag's `docs/plugins.md`.
"""

_TEST = """\
\"\"\"@DIST@ keeps the seqtag part contract: registered, configurable, trainable, saved and reloaded.\"\"\"

from seqtag.testing import check_@KIND@


def test_@STEM@_keeps_the_contract() -> None:
    report = check_@KIND@("@PART@", distribution="@DIST@", @TEST_KWARGS@)
    assert report.train_accuracy == 1.0
"""

_ENCODER = '''\
"""@DIST@: the ``@PART@`` encoder for seqtag, registered through the ``@GROUP@`` entry point."""

from __future__ import annotations

import torch
from torch import nn

from seqtag.encoders import Encoder
from seqtag.errors import ConfigError

__all__ = ["@CLASS@"]


class @CLASS@(Encoder):
    """A convolution over a window of neighbouring tokens, masked so that padding changes nothing.

    Args:
        input_dim: Size of the input vectors (wired by the model; never set it in a config).
        hidden_size: Size of the output vectors.
        window: Tokens seen on either side.
        dropout: Dropout on the input.
    """

    def __init__(self, input_dim: int, hidden_size: int = 64, window: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden_size <= 0 or window < 0:
            raise ConfigError(f"@PART@: hidden_size must be positive and window >= 0, got {hidden_size} and {window}")
        self.input_dim = input_dim
        self.output_dim = hidden_size
        self.conv = nn.Conv1d(input_dim, hidden_size, kernel_size=2 * window + 1, padding=window)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contextualize ``x``.

        Args:
            x: Token vectors, shape ``(batch, seq, input_dim)``.
            mask: Bool ``(batch, seq)``, True at real tokens; ``None`` means every position is real.

        Returns:
            Shape ``(batch, seq, hidden_size)``, zero at padded positions.
        """
        keep = torch.ones_like(x[..., :1]) if mask is None else mask.unsqueeze(-1).to(x.dtype)  # shape: (batch, seq, 1)
        h = self.drop(x) * keep  # shape: (batch, seq, input_dim); padding is zero, like the convolution's own
        h = torch.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)  # shape: (batch, seq, hidden_size)
        return h * keep  # shape: (batch, seq, hidden_size)
'''

_EMBEDDING = '''\
"""@DIST@: the ``@PART@`` embedding for seqtag, registered through the ``@GROUP@`` entry point."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import torch
from torch import nn

from seqtag.embeddings import Embedding
from seqtag.embeddings.base import Features, pad_ids
from seqtag.errors import ConfigError

__all__ = ["@CLASS@"]


class @CLASS@(Embedding):
    """Hashed word vectors: no vocabulary; every word, seen in training or not, has one of ``buckets`` rows.

    Args:
        dim: Size of a word vector.
        buckets: Number of rows that words are hashed to.
        lowercase: Hash words lower-cased.
    """

    def __init__(self, dim: int = 32, buckets: int = 5000, lowercase: bool = True) -> None:
        super().__init__()
        if dim <= 0 or buckets <= 0:
            raise ConfigError(f"@PART@: dim and buckets must be positive, got {dim} and {buckets}")
        self.dim, self.buckets, self.lowercase = dim, buckets, lowercase
        self.output_dim = dim
        self.embed = nn.Embedding(buckets + 1, dim, padding_idx=0)  # row 0 is padding

    def _row(self, word: str) -> int:
        text = word.lower() if self.lowercase else word
        return 1 + zlib.crc32(text.encode("utf-8")) % self.buckets  # stable across processes, unlike hash()

    def get_assets(self) -> dict[str, Any]:
        """Nothing is built from the training data: no vocabulary to save."""
        return {}

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        return {"ids": pad_ids([[self._row(w) for w in sent] for sent in batch])}

    def forward(self, features: Features) -> torch.Tensor:
        return self.embed(features["ids"])  # shape: (batch, seq, dim)
'''

_HEAD = '''\
"""@DIST@: the ``@PART@`` head for seqtag, registered through the ``@GROUP@`` entry point."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seqtag.heads.base import Head

__all__ = ["@CLASS@"]


class @CLASS@(Head):
    """A hidden layer and a softmax per token, trained with cross-entropy.

    Args:
        input_dim: Size of the encoder's vectors (wired by the model).
        labels: The tag labels (wired by the model).
        scheme: The tag scheme (wired by the model).
        hidden_size: Size of the hidden layer.
    """

    def __init__(self, input_dim: int, labels: Sequence[str], scheme: str = "IOB2", hidden_size: int = 64) -> None:
        super().__init__(input_dim, labels, scheme)
        self.mlp = nn.Sequential(nn.Linear(input_dim, hidden_size), nn.ReLU(), nn.Linear(hidden_size, self.num_tags))

    def loss(self, x: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x)  # shape: (batch, seq, num_tags)
        return F.cross_entropy(logits[mask], tags[mask], reduction="sum") / x.size(0)

    def decode(self, x: torch.Tensor, mask: torch.Tensor,
               with_confidence: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        probs = self.mlp(x).softmax(dim=-1)  # shape: (batch, seq, num_tags)
        conf, best = probs.max(dim=-1)  # shape: (batch, seq)
        return best.masked_fill(~mask, 0), conf.masked_fill(~mask, 0.0)
'''

_TOKENIZER = '''\
"""@DIST@: the ``@PART@`` tokenizer for seqtag, registered through the ``@GROUP@`` entry point."""

from __future__ import annotations

import re

from seqtag.errors import ConfigError
from seqtag.tokenizers import Token, Tokenizer

__all__ = ["@CLASS@"]


class @CLASS@(Tokenizer):
    """Splits text into the matches of a regular expression (by default: words and single punctuation marks).

    Args:
        pattern: What one token looks like.
    """

    def __init__(self, pattern: str = r"\\w+|[^\\w\\s]") -> None:
        try:
            self._re = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"@PART@: pattern {pattern!r} is not a regular expression: {exc}") from None
        self.pattern = pattern

    def __call__(self, text: str) -> list[Token]:
        return [Token(m.group(), m.start(), m.end()) for m in self._re.finditer(text) if not m.group().isspace()]
'''

_CODE = {"encoder": _ENCODER, "embedding": _EMBEDDING, "head": _HEAD, "tokenizer": _TOKENIZER}
_EXAMPLE = {"encoder": ("hidden_size", "128", "hidden_size=32"), "embedding": ("dim", "64", "dim=16"),
            "head": ("hidden_size", "128", "hidden_size=32"), "tokenizer": ("pattern", "'\\S+'", "")}


def _fill(template: str, n: PluginNames) -> str:
    key, value, test_kwargs = _EXAMPLE[n.kind]
    major_minor = ".".join(__version__.split(".")[:2])
    subs = {"@DIST@": n.distribution, "@PKG@": n.package, "@PART@": n.part, "@CLASS@": n.cls, "@KIND@": n.kind,
            "@GROUP@": n.group, "@STEM@": n.stem, "@SEQTAG@": major_minor, "@EXAMPLE_KEY@": key,
            "@SEQTAG_DIST@": DISTRIBUTION,
            "@EXAMPLE_VALUE@": value, "@TEST_KWARGS@": test_kwargs}
    for k, v in subs.items():
        template = template.replace(k, v)
    return template.replace(", )", ")")


def new_plugin(name: str, kind: str = "encoder", directory: str | Path = ".") -> Path:
    """Write the plugin package ``seqtag-NAME`` under ``directory``.

    Args:
        name: The part's name without version (``window``); ``seqtag-`` and ``.v1`` are added.
        kind: ``encoder`` (default), ``embedding``, ``head`` or ``tokenizer``.
        directory: The folder to create the package folder in.

    Returns:
        The package folder, ``directory/seqtag-NAME``.

    Raises:
        ConfigError: The name is unusable or taken, or the folder exists and is not empty.
    """
    names = plugin_names(name, kind)
    reg = get_registry(kind)
    if names.part in reg.names():
        owner = reg.info(names.part).distribution
        raise ConfigError(f"new-plugin: the {kind} name {names.part!r} is already registered by {owner}; "
                          "choose another NAME")
    root = Path(directory) / names.distribution
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"new-plugin: {root} already exists and is not empty; choose another NAME or --dir")
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{names.package}/__init__.py": _CODE[kind],
        f"tests/test_{names.stem}.py": _TEST,
    }
    for rel, template in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template, names), encoding="utf-8")
    return root
