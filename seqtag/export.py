"""Export a saved tagger to ONNX, CRF decoding included, and run the exported model with onnxruntime.

The graph takes the featurized index tensors (what the embedding's ``featurize`` returns, flattened
into named inputs such as ``ids``, ``casing`` or ``1.chars``) plus the bool ``mask`` ``(batch, seq)``
and returns ``tags`` (long ``(batch, seq)``) and ``scores`` (float ``(batch, seq)``, the confidence of
each chosen tag). Featurization (strings to ids) stays in Python: :class:`OnnxTagger` does it with the
saved vocabularies and runs the graph. The recurrent layers run without packing (each direction on
end-padded input, the backward one reading each sequence reversed within its own length) and the
Viterbi and forward-backward loops are scripted, so they become ONNX ``Loop``s over a dynamic length.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, List, Mapping, Sequence

import torch
from torch import nn

from .embeddings import CharCNNEmbedding, CharLSTMEmbedding, ConcatEmbedding, PretrainedEmbedding, WordEmbedding
from .encoders import GRUEncoder, IdentityEncoder, LSTMEncoder, RNNEncoder, StackEncoder
from .errors import ConfigError, SeqtagError
from .heads import CRFHead, SoftmaxHead
from .model import TaggerModel
from .modeldir import file_sha256, owning_model
from .onnx_runtime import OnnxTagger
from .tagger import Tagger

__all__ = ["ExportError", "export_onnx", "OnnxTagger", "flatten_features", "SUPPORTED"]

EXPORT_FORMAT = 1
SUPPORTED: dict[str, dict[str, type]] = {
    "embedding": {"word.v1": WordEmbedding, "char_cnn.v1": CharCNNEmbedding, "char_lstm.v1": CharLSTMEmbedding,
                  "pretrained.v1": PretrainedEmbedding, "concat.v1": ConcatEmbedding},
    "encoder": {"rnn.v1": RNNEncoder, "lstm.v1": LSTMEncoder, "gru.v1": GRUEncoder, "stack.v1": StackEncoder,
                "identity.v1": IdentityEncoder},
    "head": {"softmax.v1": SoftmaxHead, "crf.v1": CRFHead},
}
# inputs of the tracing example: 3 sentences of different lengths, so no axis is 1 or equal to another
EXAMPLE = [["Export", "example", "sentence", "in", "EU", "."], ["Second", "one", "1996"], ["x", "y", "z", "Z"]]


class ExportError(SeqtagError):
    """A model cannot be exported (an unsupported part, a missing package) or the export is wrong."""


# -- checking -------------------------------------------------------------------------------------
def _check_part(kind: str, module: nn.Module, cfg: Mapping[str, Any] | None, where: str) -> None:
    """Raise :class:`ExportError` unless ``module`` is exactly a supported built-in part (nested ones too)."""
    name = (cfg or {}).get("type") or type(module).__name__
    ok = SUPPORTED[kind]
    if type(module) not in ok.values():
        raise ExportError(f"{where}: the {kind} {name!r} ({type(module).__module__}.{type(module).__name__}) "
                          f"cannot be exported to ONNX; supported {kind}s: {', '.join(ok)}")
    subs = (cfg or {}).get("parts" if kind == "embedding" else "layers") or []
    if isinstance(module, ConcatEmbedding):
        for i, part in enumerate(module.parts):
            _check_part(kind, part, subs[i] if i < len(subs) else None, f"{where}.parts[{i}]")
    if isinstance(module, StackEncoder):
        for i, layer in enumerate(module.layers):
            _check_part(kind, layer, subs[i] if i < len(subs) else None, f"{where}.layers[{i}]")


def check_exportable(model: TaggerModel, model_cfg: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`ExportError` naming the first part the ONNX export does not support."""
    for kind in ("embedding", "encoder", "head"):
        _check_part(kind, getattr(model, kind), model_cfg.get(kind), f"model.{kind}")


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


# -- export-friendly forward passes -----------------------------------------------------------------
def _padded_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``rnn`` (batch-first) over end-padded ``x`` ``(batch, seq, in)`` without packing; padding is zeroed.

    The backward direction reads each sequence reversed within its own ``lengths`` ``(batch,)``, so
    padding never reaches a real position and real positions equal the packed result.
    Returns ``(batch, seq, directions * hidden)``.
    """
    seq = x.size(1)
    pos = torch.arange(seq).unsqueeze(0)  # shape: (1, seq)
    ends = lengths.unsqueeze(1)  # shape: (batch, 1)
    rev = torch.where(pos < ends, ends - 1 - pos, pos)  # shape: (batch, seq)
    out = x
    for layer in range(rnn.num_layers):
        parts = [_one_direction(rnn, out, layer, "")]  # shape: (batch, seq, hidden)
        if rnn.bidirectional:
            flipped = out.gather(1, rev.unsqueeze(2).expand(-1, -1, out.size(2)))  # shape: (batch, seq, in)
            y = _one_direction(rnn, flipped, layer, "_reverse")  # shape: (batch, seq, hidden)
            parts.append(y.gather(1, rev.unsqueeze(2).expand(-1, -1, y.size(2))))
        out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]  # shape: (batch, seq, dirs * hidden)
    return out.masked_fill(~(pos < ends).unsqueeze(2), 0.0)


def _one_direction(rnn: nn.RNNBase, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
    """One layer and direction of ``rnn`` over ``x`` ``(batch, seq, in)``: ``(batch, seq, hidden)``."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if rnn.bias else ("weight_ih", "weight_hh")
    params = [getattr(rnn, f"{n}_l{layer}{suffix}") for n in names]
    h0 = x.new_zeros(1, x.size(0), rnn.hidden_size)  # shape: (1, batch, hidden)
    if isinstance(rnn, nn.LSTM):
        return torch.lstm(x, (h0, h0), params, rnn.bias, 1, 0.0, False, False, True)[0]
    if isinstance(rnn, nn.GRU):
        return torch.gru(x, h0, params, rnn.bias, 1, 0.0, False, False, True)[0]
    fn = torch.rnn_tanh if rnn.nonlinearity == "tanh" else torch.rnn_relu
    return fn(x, h0, params, rnn.bias, 1, 0.0, False, False, True)[0]


def _embed(emb: nn.Module, feats: Mapping[str, Any]) -> torch.Tensor:
    """The embedding's forward in eval mode, with the packed char BiLSTM replaced: ``(batch, seq, dim)``."""
    if isinstance(emb, ConcatEmbedding):
        return torch.cat([_embed(p, feats[str(i)]) for i, p in enumerate(emb.parts)], dim=-1)
    if isinstance(emb, CharLSTMEmbedding):
        chars, lengths = feats["chars"], feats["lengths"]  # shape: (n_words, n_chars), (n_words,)
        out = _padded_rnn(emb.lstm, emb.char_embed(chars), lengths)  # shape: (n_words, n_chars, 2 * hidden)
        h = emb.hidden_size
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, h)  # shape: (n_words, 1, hidden)
        fwd = out[:, :, :h].gather(1, last).squeeze(1)  # forward state after the last char
        bwd = out[:, 0, h:]  # backward state after reading back to the first char
        words = torch.cat([fwd, bwd], dim=-1)  # shape: (n_words, 2 * hidden)
        words = torch.cat([words.new_zeros(1, words.size(1)), words], dim=0)  # row 0 = padding
        return words[feats["word_index"]]  # shape: (batch, seq, 2 * hidden)
    return emb(feats)


def _encode(enc: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The encoder over ``x`` ``(batch, seq, in)`` with sentence ``lengths`` ``(batch,)``."""
    if isinstance(enc, StackEncoder):
        for layer, proj in zip(enc.layers, enc.projections):
            out = _encode(layer, x, lengths)  # shape: (batch, seq, layer.output_dim)
            x = out + proj(x) if enc.residual else out
        return x
    if isinstance(enc, IdentityEncoder):
        return x
    return _padded_rnn(enc.rnn, x, lengths)


def crf_viterbi(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                end: torch.Tensor) -> torch.Tensor:
    """Best tag ids ``(batch, seq)`` for emissions ``em`` ``(batch, seq, k)`` as :meth:`CRFHead.viterbi`."""
    batch, seq, k = em.size(0), em.size(1), em.size(2)
    score = start.unsqueeze(0) + em[:, 0]  # shape: (batch, k)
    keep = torch.arange(k).unsqueeze(0).expand(batch, k)  # shape: (batch, k)
    history: List[torch.Tensor] = [keep]
    for t in range(1, seq):
        best, idx = (score.unsqueeze(2) + trans.unsqueeze(0)).max(dim=1)  # shape: (batch, k)
        m = mask[:, t].unsqueeze(1)  # shape: (batch, 1)
        score = torch.where(m, best + em[:, t], score)
        history.append(torch.where(m, idx, keep))  # padded steps point to themselves
    hist = torch.stack(history, dim=0)  # shape: (seq, batch, k)
    last = (score + end.unsqueeze(0)).argmax(dim=1)  # shape: (batch,)
    path: List[torch.Tensor] = [last]
    for i in range(seq - 1):
        last = hist[seq - 1 - i].gather(1, last.unsqueeze(1)).squeeze(1)
        path.append(last)
    rev = seq - 1 - torch.arange(seq)  # shape: (seq,), seq-1 down to 0
    return torch.stack(path, dim=1).index_select(1, rev)  # shape: (batch, seq)


def crf_marginals(em: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                  end: torch.Tensor) -> torch.Tensor:
    """Posterior tag probabilities ``(batch, seq, k)`` by forward-backward in float64, as :meth:`CRFHead.marginals`."""
    em, start, trans, end = em.double(), start.double(), trans.double(), end.double()
    seq = em.size(1)
    alpha = start.unsqueeze(0) + em[:, 0]  # shape: (batch, k)
    alphas: List[torch.Tensor] = [alpha]
    for t in range(1, seq):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + em[:, t]  # shape: (batch, k)
        alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        alphas.append(alpha)
    lengths = mask.long().sum(1)  # shape: (batch,)
    beta = end.unsqueeze(0) + torch.zeros_like(em[:, 0])  # shape: (batch, k)
    betas: List[torch.Tensor] = [beta]  # positions seq-1, seq-2, ..., 0
    for i in range(seq - 1):
        t = seq - 2 - i
        prev = torch.logsumexp(trans.unsqueeze(0) + (em[:, t + 1] + beta).unsqueeze(1), dim=2)
        is_last = (lengths - 1 == t).unsqueeze(1)
        beta = torch.where(mask[:, t + 1].unsqueeze(1), prev, torch.where(is_last, end.unsqueeze(0), beta))
        betas.append(beta)
    rev = seq - 1 - torch.arange(seq)  # shape: (seq,), seq-1 down to 0
    total = torch.stack(alphas, dim=1) + torch.stack(betas, dim=1).index_select(1, rev)  # shape: (batch, seq, k)
    return torch.softmax(total, dim=2)


_SCRIPTED: dict[str, Any] = {}


def _scripted(fn: Any) -> Any:
    """``fn`` compiled by ``torch.jit.script`` (once), so its loops over time export as ONNX ``Loop``s."""
    if fn.__name__ not in _SCRIPTED:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.script")
            _SCRIPTED[fn.__name__] = torch.jit.script(fn)
    return _SCRIPTED[fn.__name__]


class ExportableTagger(nn.Module):
    """The whole network as one traceable module: ``forward(*features, mask) -> (tags, scores)``.

    Args:
        model: The trained network (put in eval mode).
        names: The flattened feature names, in the order of the inputs.
        confidence: Compute each tag's confidence (CRF: marginals) or return the mask as scores.
    """

    def __init__(self, model: TaggerModel, names: Sequence[str], confidence: bool = True) -> None:
        super().__init__()
        self.model, self.names, self.confidence = model, list(names), confidence
        self.viterbi, self.marginals = _scripted(crf_viterbi), _scripted(crf_marginals)
        self.eval()  # a new module trains by default, and the exporter restores that mode to every child

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *flat, mask = inputs  # mask shape: (batch, seq)
        lengths = mask.long().sum(1)  # shape: (batch,)
        x = _embed(self.model.embedding, _unflatten(self.names, flat))  # shape: (batch, seq, emb_dim)
        h = _encode(self.model.encoder, x, lengths)  # shape: (batch, seq, enc_dim)
        head = self.model.head
        if isinstance(head, CRFHead):
            em = head.emissions(h)  # shape: (batch, seq, num_tags)
            start, trans, end = head._params()
            path = self.viterbi(em, mask, start, trans, end)  # shape: (batch, seq)
            if self.confidence:
                conf = self.marginals(em, mask, start, trans, end).gather(2, path.unsqueeze(2)).squeeze(2).float()
            else:
                conf = mask.float()
        else:
            probs = head.proj(h).softmax(dim=-1)  # shape: (batch, seq, num_tags)
            conf, path = probs.max(dim=-1)  # shape: (batch, seq)
            conf = conf if self.confidence else mask.float()
        return path.masked_fill(~mask, 0), conf.masked_fill(~mask, 0.0)


# -- export ---------------------------------------------------------------------------------------
def _features(model: TaggerModel, tokens: list[list[str]]) -> tuple[list[str], list[torch.Tensor], torch.Tensor]:
    lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
    mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)  # shape: (batch, seq)
    flat = flatten_features(model.embedding.featurize(tokens))
    return [n for n, _ in flat], [t for _, t in flat], mask


def _need_onnx() -> Any:
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("the ONNX export needs the packages onnx and onnxruntime; "
                          "install them with `pip install 'seqtag[onnx]'`") from None
    return onnx


def export_onnx(model_dir: str | Path, output: str | Path | None = None, opset: int = 17,
                confidence: bool = True, verify: bool = True) -> Path:
    """Export the saved tagger in ``model_dir`` to an ONNX file (default ``model_dir/model.onnx``).

    With ``verify``, the model's files are checked against their SHA-256 manifest first, and the
    exported graph is run by onnxruntime on sentences of other lengths than the tracing example and
    must give the same tags as PyTorch, or :class:`ExportError` is raised. ``output`` is never one of
    the model folder's own files.
    """
    onnx = _need_onnx()
    out = Path(output) if output is not None else Path(model_dir) / "model.onnx"
    owner = owning_model(out)
    if owner is not None:
        raise ConfigError(f"{out}: a file of the model in {owner}; the export would overwrite it, "
                          f"choose another --output (the default is {Path(model_dir) / 'model.onnx'})")
    if out.is_dir():
        raise ConfigError(f"{out}: a folder; --output names the ONNX file to write")
    tagger = Tagger.load(model_dir, verify=verify)
    check_exportable(tagger.model, tagger.config["model"])
    names, flat, mask = _features(tagger.model, EXAMPLE)
    module = ExportableTagger(tagger.model, names, confidence)
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
            torch.onnx.export(module, (*flat, mask), str(tmp), dynamo=False, input_names=[*names, "mask"],
                              output_names=["tags", "scores"], dynamic_axes=axes, opset_version=opset)
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
        _verify(tagger, out, model_dir)
    return out


def _verify(tagger: Tagger, path: Path, model_dir: str | Path) -> None:
    sents = [["A", "longer", "check", "sentence", "with", "more", "words", "than", "the", "example", "."],
             ["Short"], ["German", "EU", "talks", "in", "Brussels"]]
    tagger.model.eval()
    runner = OnnxTagger(model_dir, path)
    got = [p.tags for p in runner.predict(sents)]
    want = [p.tags for p in tagger.predict(sents, with_confidence=False)]
    if got != want:
        raise ExportError(f"{path}: the exported model's tags differ from PyTorch's on a check batch "
                          f"({got} vs {want}); please report this with the model's config.json")
