"""Running an exported tagger: :class:`OnnxTagger` featurizes with the saved vocabularies and runs the ONNX graph.

The graph itself is written by :mod:`seqtag.export` (its inputs are the flattened featurized index tensors
plus the bool ``mask`` ``(batch, seq)``; its outputs ``tags`` and ``scores`` ``(batch, seq)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from .config import build_part
from .errors import ModelLoadError
from .modeldir import file_sha256, verify_files
from .resources import check_model
from .tagger import Prediction, Tagger, _read_json, predict_chunks
from .tokenizers import Tokenizer

__all__ = ["OnnxTagger"]


class OnnxTagger:
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
        if verify:
            verify_files(p, _read_json(p / "meta.json"))
        config = _read_json(p / "config.json")
        labels = _read_json(p / "labels.json")
        assets = {f.stem: _read_json(f) for f in sorted((p / "assets").glob("*.json"))}
        self.labels: list[str] = list(labels.get("labels", []))
        self.task: str = config.get("task", "ner")
        self.scheme: str = config.get("scheme", "IOB2")
        check_model(config["model"], self.labels, assets=assets)  # an absurd size is refused before building
        self.tokenizer: Tokenizer = build_part("tokenizer", config["model"].get("tokenizer", {"type": "whitespace.v1"}))
        self.embedding = build_part("embedding", config["model"]["embedding"])
        self.embedding.set_assets(assets.get("embedding"))
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
        weights = p / "model.safetensors"
        if weights.is_file() and meta.get("weights_sha256") not in (None, file_sha256(weights)):
            raise ModelLoadError(f"{path}: exported from other weights than {weights}; re-export with "
                                 f"`seqtag export {p} --format onnx`")
        self.input_names = [i.name for i in self.session.get_inputs()]

    # the same tokenization and Prediction building as the PyTorch tagger (they use labels, task, scheme, tokenizer)
    _tokenize = Tagger._tokenize
    _make_prediction = Tagger._make_prediction
    _label_table = Tagger._label_table

    def run(self, tokens: list[list[str]]) -> tuple[Any, Any]:
        """Tag one batch of non-empty token lists: numpy ``tags`` (int64) and ``scores`` (float32) ``(batch, seq)``."""
        from .export import flatten_features

        lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)  # shape: (batch, seq)
        feeds = {n: t.numpy() for n, t in flatten_features(self.embedding.featurize(tokens))}
        feeds["mask"] = mask.numpy()
        if sorted(feeds) != sorted(self.input_names):
            raise ModelLoadError(f"the ONNX graph takes {self.input_names} but the embedding gives {sorted(feeds)}")
        tags, scores = self.session.run(["tags", "scores"], feeds)
        return tags, scores

    def predict(self, inputs: str | Sequence[str] | Sequence[Sequence[str]] | Iterable[Any],
                batch_size: int = 128) -> list[Prediction]:
        """Like :meth:`Tagger.predict`: texts (tokenized by the model's tokenizer) or token lists."""
        if isinstance(inputs, str):
            inputs = [inputs]
        return list(self.predict_stream(inputs, batch_size=batch_size))

    def predict_stream(self, inputs: Iterable[str | Sequence[str]], batch_size: int = 128,
                       chunk_size: int = 4096) -> Iterator[Prediction]:
        """Like :meth:`Tagger.predict_stream`: lazy, ``chunk_size`` inputs at a time, length-sorted batches."""
        def run(words: list[list[str]]) -> tuple[list[list[int]], list[list[float]]]:
            tags, scores = self.run(words)
            return tags.tolist(), scores.tolist()

        return predict_chunks(self, inputs, run, batch_size, chunk_size)
