"""Running an exported tagger: :class:`OnnxTagger` featurizes with the saved vocabularies and runs the ONNX graph.

The graph itself is written by :mod:`seqtag.export` (its inputs are the flattened featurized index tensors
plus the bool ``mask`` ``(batch, seq)``; its outputs ``tags`` and ``scores`` ``(batch, seq)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import build_part
from .errors import ModelLoadError
from .inference import PredictingTagger, Predictor, RunBatch
from .modeldir import WEIGHTS, file_sha256, read_model_dir
from .resources import check_model

__all__ = ["OnnxTagger"]


class OnnxTagger(PredictingTagger):
    """Runs an exported tagger with onnxruntime; featurization uses the saved tagger's vocabularies.

    Args:
        model_dir: The saved tagger directory (``config.json``, ``labels.json``, ``assets/``).
        onnx_path: The exported file (default ``model_dir/model.onnx``).
        threads: onnxruntime intra-op threads (``None``: its default).
        verify: Check the model's files against the SHA-256 manifest in its ``meta.json``.
    """

    def __init__(self, model_dir: str | Path, onnx_path: str | Path | None = None, threads: int | None = None,
                 verify: bool = True) -> None:
        # seqtag.export imports this module (its export check runs the graph), so it is imported here
        from .export import EXPORT_FORMAT, _need_onnx

        _need_onnx()
        import onnxruntime as ort

        p = Path(model_dir)
        path = Path(onnx_path) if onnx_path is not None else p / "model.onnx"
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such ONNX file (write one with `seqtag export {p} --format onnx`)")
        saved = read_model_dir(p, verify=verify, weights=False)  # the graph holds the weights
        self.labels: list[str] = saved.labels
        self.predictor = Predictor.from_config(saved.config, saved.labels)
        check_model(saved.config["model"], self.labels, assets=saved.assets)  # an absurd size is refused first
        self.embedding = build_part("embedding", saved.config["model"]["embedding"])
        self.embedding.set_assets(saved.assets.get("embedding"))
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{path}: onnxruntime cannot load it: {' '.join(str(exc).split())[:200]}") from None
        meta = json.loads(self.session.get_modelmeta().custom_metadata_map.get("seqtag", "{}"))
        if meta.get("format") != EXPORT_FORMAT or meta.get("labels") != self.labels:
            raise ModelLoadError(f"{path}: not an export of the tagger in {p} (labels or format differ); re-export it")
        weights = p / WEIGHTS
        if weights.is_file() and meta.get("weights_sha256") not in (None, file_sha256(weights)):
            raise ModelLoadError(f"{path}: exported from other weights than {weights}; re-export with "
                                 f"`seqtag export {p} --format onnx`")
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, tokens: list[list[str]]) -> tuple[Any, Any]:
        """Tag one batch of non-empty token lists: numpy ``tags`` (int64) and ``scores`` (float32) ``(batch, seq)``."""
        from .export import graph_inputs

        names, flat, mask = graph_inputs(self.embedding, tokens)  # mask shape: (batch, seq)
        feeds = {n: t.numpy() for n, t in zip(names, flat)}
        feeds["mask"] = mask.numpy()
        if sorted(feeds) != sorted(self.input_names):
            raise ModelLoadError(f"the ONNX graph takes {self.input_names} but the embedding gives {sorted(feeds)}")
        tags, scores = self.session.run(["tags", "scores"], feeds)
        return tags, scores

    def run_batch(self, with_confidence: bool) -> RunBatch:
        """:meth:`run` as the predictor's ``run_batch`` (the graph gives confidences either way)."""
        def run(words: list[list[str]]) -> tuple[list[list[int]], list[list[float]] | None]:
            tags, scores = self.run(words)
            return tags.tolist(), (scores.tolist() if with_confidence else None)  # shapes: (batch, seq)

        return run
