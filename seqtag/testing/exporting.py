"""The export check: a tagger with the part in its slot, fitted to the tiny corpus, exports to ONNX
through the parts' ``export_module()`` hooks and tags in onnxruntime as in PyTorch."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

from .common import TINY_CORPUS
from .fitting import check_fits, tiny_config


def check_exports(kind: str, name: str, config: Mapping[str, Any] | None = None, atol: float = 1e-5) -> None:
    """Fit a tiny tagger with the part ``name`` (its ``config`` keys) in the ``kind`` slot, export it and
    compare onnxruntime's tags and confidences (within ``atol``) with PyTorch's on the tiny corpus.

    Needs the ``onnx`` and ``onnxruntime`` packages (``pip install 'pyseqtag[onnx]'``).

    Raises:
        AssertionError: ``[seqtag.testing fits] ...`` when the tagger does not fit the corpus.
        seqtag.errors.ExportError: the part cannot be exported, or the export disagrees with PyTorch.
    """
    from ..export import check_export, export_onnx

    tagger, _ = check_fits(kind, name, tiny_config(kind, {"type": name, **(config or {})}))
    with tempfile.TemporaryDirectory(prefix="seqtag-export-check-") as tmp:
        folder = Path(tmp) / "model"
        tagger.save(folder)
        check_export(folder, export_onnx(folder), [tokens for tokens, _ in TINY_CORPUS], batch_size=5, atol=atol)
