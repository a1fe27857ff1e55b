"""Running an exported tagger: :class:`OnnxTagger` featurizes with the saved vocabularies and runs the ONNX graph.

The graph itself is written by :mod:`seqtag.export` (its inputs are the flattened featurized index tensors
plus the bool ``mask`` ``(batch, seq)``; its outputs ``tags`` and ``scores`` ``(batch, seq)``).

``device`` picks onnxruntime's execution provider: ``cpu`` the CPU one, ``cuda``/``cuda:N`` the CUDA
one (which the ``onnxruntime-gpu`` build has; otherwise a one-line :class:`~seqtag.errors.DeviceError`),
``auto`` the CUDA one when onnxruntime has it, else the CPU one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .config import build_part
from .errors import DeviceError, ModelLoadError
from .inference import PredictingTagger, Predictor, RunBatch, confidence_rows
from .modeldir import WEIGHTS, file_sha256, read_model_dir
from .resources import check_model

__all__ = ["OnnxTagger", "onnx_providers"]

_SPEC = re.compile(r"^(cpu|cuda|mps|auto)(?::(\d+))?$")
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def onnx_providers(device: str | None, available: list[str]) -> tuple[list[Any], str]:
    """onnxruntime's providers for a device setting, and the device they run on (``cpu`` or ``cuda:N``).

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (``None`` or empty: ``cpu``).
        available: ``onnxruntime.get_available_providers()``.

    Raises:
        DeviceError: An unknown name, ``mps`` (onnxruntime has no provider for it here), or ``cuda``
            without onnxruntime's CUDA provider.
    """
    text = str(device or "cpu").strip().lower()
    m = _SPEC.match(text)
    if m is None or (m.group(1) == "auto" and m.group(2) is not None):
        raise DeviceError(f"unknown device {device!r}; expected cpu, cuda, cuda:N or auto")
    kind = m.group(1)
    if kind == "mps":
        raise DeviceError(f"the device {device!r} was asked for, but onnxruntime has no MPS provider; "
                          f"use --device cpu")
    if kind == "cpu" or (kind == "auto" and CUDA not in available):
        return [CPU], "cpu"
    if CUDA not in available:
        raise DeviceError(f"the device {device!r} was asked for, but this onnxruntime has no CUDA provider "
                          f"(it has {', '.join(available) or 'none'}; the onnxruntime-gpu build has it); "
                          f"use --device cpu or auto")
    index = int(m.group(2) or 0)
    # the CPU provider stays second: onnxruntime places there any operator the CUDA one lacks
    return [(CUDA, {"device_id": index}), CPU], f"cuda:{index}"


class OnnxTagger(PredictingTagger):
    """Runs an exported tagger with onnxruntime; featurization uses the saved tagger's vocabularies.

    Args:
        model_dir: The saved tagger directory (``config.json``, ``labels.json``, ``assets/``).
        onnx_path: The exported file (default ``model_dir/model.onnx``).
        threads: onnxruntime intra-op threads (``None``: its default).
        verify: Check the model's files against the SHA-256 manifest in its ``meta.json``.
        device: ``cpu`` (``None``), ``cuda``, ``cuda:N`` or ``auto``: onnxruntime's execution provider
            (see :func:`onnx_providers`); checked before any file is read.

    Raises:
        DeviceError: The device is unknown, onnxruntime has no provider for it, or its CUDA provider
            did not start (one line).
    """

    def __init__(self, model_dir: str | Path, onnx_path: str | Path | None = None, threads: int | None = None,
                 verify: bool = True, device: str | None = None) -> None:
        # seqtag.export imports this module (its export check runs the graph), so it is imported here
        from .export import EXPORT_FORMAT, _need_onnx

        _need_onnx()
        import onnxruntime as ort

        providers, where = onnx_providers(device, list(ort.get_available_providers()))
        self.device: str = where  # "cpu" or "cuda:N": where onnxruntime runs the graph
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
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{path}: onnxruntime cannot load it: {' '.join(str(exc).split())[:200]}") from None
        if self.device != "cpu" and CUDA not in self.session.get_providers():
            # onnxruntime falls back to the CPU, with a logged error, when its CUDA libraries do not load:
            # what auto does anyway, and an error when cuda was asked for
            if str(device).strip().lower() == "auto":
                self.device = "cpu"
            else:
                raise DeviceError(f"the device {device!r} was asked for, but onnxruntime's CUDA provider did "
                                  f"not start (its CUDA or cuDNN libraries, see the log above); use --device cpu")
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
            return tags.tolist(), (confidence_rows(scores) if with_confidence else None)  # shapes: (batch, seq)

        return run
