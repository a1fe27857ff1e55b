"""Export a saved tagger to ONNX, CRF decoding included, and run the exported model with onnxruntime.

The graph takes the featurized index tensors (what the embedding's ``featurize`` returns, flattened
into named inputs such as ``ids``, ``casing`` or ``1.chars``) plus the bool ``mask`` ``(batch, seq)``
and returns ``tags`` (long ``(batch, seq)``) and ``scores`` (float ``(batch, seq)``, the confidence of
each chosen tag). Featurization (strings to ids) stays in Python: :class:`OnnxTagger` does it with the
saved vocabularies and runs the graph. The graph is traced from each part's export form, which the
part gives through its ``export_module()`` hook (:mod:`seqtag.export_hook`); this module knows no
part by name.

The export may trace the network on any device (``export_onnx(..., device="cuda")``): the inputs go
where the weights are, and the file written is the same ONNX graph whatever the device, run by
onnxruntime on the CPU or, with ``OnnxTagger(..., device="cuda")``, on its CUDA provider.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .devices import resolve_device, to_device
from .embeddings.base import Embedding
from .errors import ConfigError, ExportError, SeqtagError
from .export_hook import export_part
from .masks import mask_from_lengths
from .model import TaggerModel
from .modeldir import file_sha256, owning_model
from .onnx_runtime import OnnxTagger
from .tagger import Tagger

__all__ = ["ExportError", "export_onnx", "check_export", "OnnxTagger", "flatten_features", "graph_inputs",
           "check_exportable", "ExportableTagger"]

EXPORT_FORMAT = 1
# inputs of the tracing example: 3 sentences of different lengths, so no axis is 1 or equal to another
EXAMPLE = [["Export", "example", "sentence", "in", "EU", "."], ["Second", "one", "1996"], ["x", "y", "z", "Z"]]
# the check after an export: other lengths than the example's, one of a single token
CHECK = [["A", "longer", "check", "sentence", "with", "more", "words", "than", "the", "example", "."],
         ["Short"], ["German", "EU", "talks", "in", "Brussels"]]


# -- checking -------------------------------------------------------------------------------------
def _export_forms(model: TaggerModel, confidence: bool = True) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The traceable forms of the model's embedding, encoder and head, from their hooks."""
    return (export_part("embedding", model.embedding), export_part("encoder", model.encoder),
            export_part("head", model.head, with_confidence=confidence))


def check_exportable(model: TaggerModel) -> None:
    """Raise a one-line :class:`ExportError` naming the first part (nested ones too) that has no export form."""
    _export_forms(model)


# -- features -------------------------------------------------------------------------------------
def flatten_features(features: Mapping[str, Any], prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """``featurize``'s nested dict as ``(name, tensor)`` pairs, names joined by dots (``1.chars``).

    Keys starting with ``_`` hold host-side extras (e.g. the word strings of a cache) and are left out."""
    out: list[tuple[str, torch.Tensor]] = []
    for key, value in features.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten_features(value, name + "."))
        elif isinstance(value, torch.Tensor):
            out.append((name, value))
        else:
            raise ExportError(f"feature {name!r} is a {type(value).__name__}, not a tensor; it cannot be a graph input")
    return out


def _unflatten(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for name, tensor in zip(names, tensors):
        *path, last = name.split(".")
        node = root
        for key in path:
            node = node.setdefault(key, {})
        node[last] = tensor
    return root


class ExportableTagger(nn.Module):
    """The whole network as one traceable module: ``forward(*features, mask) -> (tags, scores)``, composed of
    the export forms of the model's parts (the model's dropout is left out: it is off in eval mode).

    Args:
        model: The trained network (put in eval mode).
        names: The flattened feature names, in the order of the inputs.
        confidence: Compute each tag's confidence (CRF: marginals) or return the mask as scores.

    Raises:
        ExportError: A part has no export form (its one-line message names the part).
    """

    def __init__(self, model: TaggerModel, names: Sequence[str], confidence: bool = True) -> None:
        super().__init__()
        self.names = list(names)
        self.embedding, self.encoder, self.head = _export_forms(model, confidence)
        self.eval()  # a new module trains by default, and the exporter restores that mode to every child

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *flat, mask = inputs  # mask shape: (batch, seq)
        x = self.embedding(_unflatten(self.names, flat))  # shape: (batch, seq, emb_dim)
        h = self.encoder(x, mask)  # shape: (batch, seq, enc_dim)
        return self.head(h, mask)  # shape: (batch, seq), (batch, seq)


# -- export ---------------------------------------------------------------------------------------
def graph_inputs(embedding: Embedding, tokens: list[list[str]]) -> tuple[list[str], list[torch.Tensor], torch.Tensor]:
    """The exported graph's inputs for a batch of non-empty token lists: the names and tensors of the
    embedding's flattened features, and the bool ``mask`` ``(batch, seq)``."""
    mask = mask_from_lengths(torch.tensor([len(t) for t in tokens], dtype=torch.long))  # shape: (batch, seq)
    flat = flatten_features(embedding.featurize(tokens))
    return [n for n, _ in flat], [t for _, t in flat], mask


def _need_onnx() -> Any:
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("the ONNX export needs the packages onnx and onnxruntime; "
                          "install them with `pip install 'pyseqtag[onnx]'`") from None
    return onnx


def export_onnx(model_dir: str | Path, output: str | Path | None = None, opset: int = 17,
                confidence: bool = True, verify: bool = True, device: str | torch.device | None = None) -> Path:
    """Export the saved tagger in ``model_dir`` to an ONNX file (default ``model_dir/model.onnx``).

    With ``verify``, the model's files are checked against their SHA-256 manifest first, and the
    exported graph is run by onnxruntime on sentences of other lengths than the tracing example and
    must give the same tags as PyTorch, or :class:`ExportError` is raised. ``output`` is never one of
    the model folder's own files.

    ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``; ``None``: the CPU) is where the network
    is traced and where PyTorch runs the check; the file written does not depend on it (onnxruntime
    runs the check on the CPU). An unknown or absent device is a one-line :class:`DeviceError`, before
    anything is read or written.
    """
    onnx = _need_onnx()
    target = resolve_device(device)
    out = Path(output) if output is not None else Path(model_dir) / "model.onnx"
    owner = owning_model(out)
    if owner is not None:
        raise ConfigError(f"{out}: a file of the model in {owner}; the export would overwrite it, "
                          f"choose another --output (the default is {Path(model_dir) / 'model.onnx'})")
    if out.is_dir():
        raise ConfigError(f"{out}: a folder; --output names the ONNX file to write")
    tagger = Tagger.load(model_dir, verify=verify, device=target)
    names, flat, mask = graph_inputs(tagger.model.embedding, EXAMPLE)
    if target.type != "cpu":  # tracing runs the network: its inputs go where its weights are
        flat, mask = to_device(flat, target), mask.to(target)
    module = ExportableTagger(tagger.model, names, confidence)  # a part without an export form is refused here
    axes: dict[str, dict[int, str]] = {n: {d: f"{n}_dim{d}" for d in range(t.dim())} for n, t in zip(names, flat)}
    for n, t in zip(names, flat):  # (batch, seq) features share the sentence axes
        if t.dim() == 2 and t.shape == mask.shape:
            axes[n] = {0: "batch", 1: "seq"}
    axes.update({"mask": {0: "batch", 1: "seq"}, "tags": {0: "batch", 1: "seq"}, "scores": {0: "batch", 1: "seq"}})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the LSTM/GRU warning is about a fixed initial state; ours is built from the input's batch size
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            # the TorchScript-based exporter is deprecated, but it exports scripted loops without onnxscript
            warnings.filterwarnings("ignore", ".*(legacy TorchScript|will be removed)", DeprecationWarning)
            # slices of a length known only at run time (the character CNN's windows) are not folded: nothing lost
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1 can be constant folded")
            try:
                torch.onnx.export(module, (*flat, mask), str(tmp), dynamo=False, input_names=[*names, "mask"],
                                  output_names=["tags", "scores"], dynamic_axes=axes, opset_version=opset)
            except SeqtagError:
                raise
            except Exception as exc:  # a plugin part's forward that does not trace, an operator ONNX lacks
                reason = " ".join(str(exc).split())[:300]
                raise ExportError(f"{model_dir}: the model could not be traced to ONNX ({type(exc).__name__}: "
                                  f"{reason}); a part whose forward does not trace needs its own export_module() "
                                  "(see docs/export.md)") from exc
        proto = onnx.load(str(tmp))
        meta = {"format": EXPORT_FORMAT, "inputs": [*names, "mask"], "outputs": ["tags", "scores"],
                "labels": tagger.labels, "task": tagger.task, "scheme": tagger.scheme, "confidence": confidence,
                "weights_sha256": file_sha256(Path(model_dir) / "model.safetensors")}
        entry = proto.metadata_props.add()
        entry.key, entry.value = "seqtag", json.dumps(meta)
        onnx.save(proto, str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    if verify:
        check_export(model_dir, out, tagger=tagger)
    return out


def check_export(model_dir: str | Path, onnx_path: str | Path, sentences: Sequence[Sequence[str]] = CHECK,
                 batch_size: int = 128, atol: float | None = None, tagger: Tagger | None = None,
                 device: str | torch.device | None = None, onnx_device: str | None = None) -> None:
    """Tag ``sentences`` with the exported graph (onnxruntime) and with PyTorch; they must agree.

    Args:
        model_dir: The saved tagger.
        onnx_path: Its export.
        sentences: Token lists (by default a check batch of other lengths than the tracing example).
        batch_size: Sentences per batch, so batches mix lengths.
        atol: Also compare the confidences, within this absolute tolerance (``None``: tags only).
        tagger: The tagger loaded from ``model_dir``, if at hand (it runs where it is).
        device: Where PyTorch runs a tagger loaded here (``None``: the CPU).
        onnx_device: Where onnxruntime runs the graph (see :class:`OnnxTagger`; ``None``: the CPU).

    Raises:
        ExportError: A tag (or a confidence) differs; the message gives the first sentence that does.
    """
    tagger = tagger if tagger is not None else Tagger.load(model_dir, device=device)
    tagger.model.eval()
    got = OnnxTagger(model_dir, onnx_path, device=onnx_device).predict(list(sentences), batch_size=batch_size)
    want = tagger.predict(list(sentences), batch_size=batch_size, with_confidence=atol is not None)
    for i, (g, w) in enumerate(zip(got, want)):
        scores_differ = atol is not None and any(abs(a - b) > atol for a, b in zip(g.scores, w.scores))
        if g.tags != w.tags or scores_differ:
            what = "tags" if g.tags != w.tags else f"confidences (beyond {atol})"
            raise ExportError(f"{onnx_path}: the exported model's {what} differ from PyTorch's on sentence {i} "
                              f"{list(sentences[i])[:12]} ({g.tags} vs {w.tags}); please report this with the "
                              "model's config.json")
