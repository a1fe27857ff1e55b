"""A trained tagger: predict on texts or token lists, save to and load from a directory of plain data.

The saved directory holds ``config.json`` (every default filled in), ``meta.json`` (format version,
seqtag version, task, tag scheme, plugin distributions, scores), ``labels.json``,
``model.safetensors`` and ``assets/`` (vocabularies as JSON). No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

# oneDNN caches a compiled kernel per input shape (1,024 by default); streaming predict meets many shapes,
# so a small cache keeps memory flat as input grows. A user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

import torch  # noqa: E402

from . import registry
from .about import FORMAT_VERSION, __version__
from .config import build_part
from .errors import ModelLoadError, PluginMissingError, SeqtagError
from .labels import split_tag, tags_from_spans
from .model import TaggerModel, make_batch
from .jsonio import read_json_object
from .modeldir import META, manifest, owned_files, verify_files, wait_for_commit
from .serialize import commit_files, write_json
from .tokenizers import Tokenizer, word_offsets

__all__ = ["Tagger", "Prediction", "Entity", "load", "plugin_requirements"]



@dataclass
class Entity:
    """An entity span: tokens ``[start, end)``, characters ``[start_char, end_char)``, a confidence in [0, 1]."""

    label: str
    start: int
    end: int
    start_char: int
    end_char: int
    text: str
    score: float


@dataclass
class Prediction:
    """The tags of one sentence (IOB2 for NER), a confidence per tag, and the entity spans (NER)."""

    tokens: list[str]
    tags: list[str]
    scores: list[float]
    entities: list[Entity] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _walk_parts(model_cfg: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every ``(kind, name)`` used by a model config, nested parts included."""
    for slot in ("tokenizer", "embedding", "encoder", "head"):
        if isinstance(model_cfg.get(slot), Mapping):
            yield from _walk_part(slot, model_cfg[slot])


def _walk_part(kind: str, cfg: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    name = cfg.get("type")
    if not isinstance(name, str):
        return
    yield kind, name
    obj = registry.get_registry(kind).get(name)
    for key, sub_kind in getattr(obj, "nested", {}).items():
        for sub in cfg.get(key) or []:
            if isinstance(sub, Mapping):
                yield from _walk_part(sub_kind, sub)


def plugin_requirements(model_cfg: Mapping[str, Any]) -> dict[str, str]:
    """The third-party distributions (and versions) whose parts a model config uses."""
    out: dict[str, str] = {}
    for kind, name in _walk_parts(model_cfg):
        info = registry.get_registry(kind).info(name)
        if info.distribution != registry.BUILTIN_DIST:
            out[info.distribution] = info.version or ""
    return out


class Tagger:
    """A part-of-speech tagger or named-entity recogniser.

    Args:
        config: The full config (``task``, ``scheme``, ``model``, ...), defaults filled in.
        labels: Tag labels in the scheme the model was trained on.
        model: The network.
        meta: Metadata written to ``meta.json``.
    """

    def __init__(self, config: dict[str, Any], labels: list[str], model: TaggerModel,
                 meta: dict[str, Any] | None = None) -> None:
        self.config, self.labels, self.model = config, labels, model
        self.meta = dict(meta or {})
        self.task: str = config.get("task", "ner")
        self.scheme: str = config.get("scheme", "IOB2")
        self.tokenizer: Tokenizer = build_part("tokenizer", config["model"].get("tokenizer", {"type": "whitespace.v1"}))
        self.model.eval()

    # -- prediction -------------------------------------------------------------------------------
    def _tokenize(self, item: str | Sequence[str]) -> Sentence:
        if isinstance(item, str):
            toks = self.tokenizer(item)
            return [t.text for t in toks], [(t.start, t.end) for t in toks]
        words = list(item)
        return words, word_offsets(words)

    def predict(self, inputs: str | Sequence[str] | Sequence[Sequence[str]] | Iterable[Any], batch_size: int = 128,
                with_confidence: bool = True) -> list[Prediction]:
        """Tag texts (tokenized by the tagger's tokenizer) or token lists, in length-sorted batches.

        ``inputs`` is one text, a list of texts, or a list of token lists (``[["EU", "rejects"]]``).
        """
        if isinstance(inputs, str):
            inputs = [inputs]
        return list(self.predict_stream(inputs, batch_size=batch_size, with_confidence=with_confidence))

    def predict_stream(self, inputs: Iterable[str | Sequence[str]], batch_size: int = 128,
                       with_confidence: bool = True, chunk_size: int = 4096) -> Iterator[Prediction]:
        """Like :meth:`predict` but lazy: reads ``chunk_size`` inputs at a time, so memory stays flat."""
        def run(words: list[list[str]]) -> tuple[list[list[int]], list[list[float]] | None]:
            with torch.inference_mode():
                tags, conf = self.model.decode(make_batch(self.model, words), with_confidence=with_confidence)
            return tags.tolist(), (conf.tolist() if with_confidence else None)

        return predict_chunks(self, inputs, run, batch_size, chunk_size)

    def _make_prediction(self, words: list[str], offsets: list[tuple[int, int]], tag_ids: list[int],
                         conf: list[float] | None) -> Prediction:
        """One sentence's :class:`Prediction` from tag ids (``conf`` ``None``: every score 1.0)."""
        table = self._label_table()
        n = len(words)
        scores = [round(c, 6) for c in conf[:n]] if conf is not None else [1.0] * n
        if self.task != "ner":
            return Prediction(words, [table.labels[t] for t in tag_ids], scores, [], offsets)
        if tag_ids.count(table.outside) == n:  # most sentences name nothing
            return Prediction(words, ["O"] * n, scores, [], offsets)
        spans = table.spans(tag_ids)
        tags = [table.labels[t] for t in tag_ids] if self.scheme == "IOB2" else tags_from_spans(spans, n, "IOB2")
        entities = [Entity(label, start, end, offsets[start][0], offsets[end - 1][1], " ".join(words[start:end]),
                           round(sum(scores[start:end]) / (end - start), 6)) for start, end, label in spans]
        return Prediction(words, tags, scores, entities, offsets)

    def _label_table(self) -> "LabelTable":
        table = self.__dict__.get("_labels_table")
        if table is None or table.labels is not self.labels:
            table = self.__dict__["_labels_table"] = LabelTable(self.labels)
        return table

    # -- saving -----------------------------------------------------------------------------------
    def save(self, path: str | Path, scores: Mapping[str, Any] | None = None) -> None:
        """Write the tagger to the directory ``path`` atomically (old contents replaced only when complete)."""
        from safetensors.torch import save_file

        meta = dict(self.meta)
        meta.update({
            "format_version": FORMAT_VERSION,
            "seqtag_version": __version__,
            "task": self.task,
            "scheme": self.scheme,
            "plugins": plugin_requirements(self.config["model"]),
        })
        if scores is not None:
            meta["scores"] = dict(scores)
        state = {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}

        def fill(tmp: Path) -> None:
            write_json(tmp / "config.json", self.config)
            write_json(tmp / "labels.json", {"labels": self.labels, "scheme": self.scheme})
            (tmp / "assets").mkdir()
            for part, assets in self.model.get_assets().items():
                if assets is not None:  # a part with nothing to keep writes no file
                    write_json(tmp / "assets" / f"{part}.json", assets)
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            with open(tmp / "model.safetensors", "rb") as f:
                os.fsync(f.fileno())
            meta["files"] = manifest(tmp, (q.relative_to(tmp).as_posix() for q in tmp.rglob("*") if q.is_file()))
            write_json(tmp / META, meta)

        # the files are replaced inside the folder, never the folder itself: its mode, a symlink to it and
        # the user's other files (a checkpoint, an export) stay; meta.json, which lists the others, goes last
        commit_files(path, fill, obsolete=lambda: owned_files(path), last=META)
        self.meta = meta

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Tagger":
        """Load a saved tagger: checks the format version and the plugins first, reads each file (JSON,
        safetensors), checks them against the SHA-256 manifest in ``meta.json`` (unless ``verify`` is
        false), and only then builds the model and loads its weights strictly."""
        p = Path(path)
        if not p.is_dir():
            raise ModelLoadError(f"{p}: no such model directory (save one with `seqtag train --output {p}`)")
        wait_for_commit(p)
        meta = _read_json(p / META)
        fmt = meta.get("format_version")
        if not isinstance(fmt, int):
            raise ModelLoadError(f"{p / 'meta.json'}: no integer format_version; not a seqtag model")
        if fmt > FORMAT_VERSION:
            raise ModelLoadError(f"{p}: model format version {fmt} is newer than this seqtag reads ({FORMAT_VERSION}); "
                                 f"upgrade seqtag (the model was written by seqtag {meta.get('seqtag_version', '?')})")
        for dist, ver in (meta.get("plugins") or {}).items():
            try:
                dist_version(dist)
            except PackageNotFoundError:
                raise PluginMissingError(f"{p}: this model needs the plugin distribution {dist!r} "
                                         f"(version {ver or 'any'}); install it with `pip install {dist}`") from None
        config = _read_json(p / "config.json")
        label_data = _read_json(p / "labels.json")
        assets: dict[str, Any] = {}
        listed = meta.get("files")
        for f in sorted((p / "assets").glob("*.json")):
            if not isinstance(listed, dict) or f"assets/{f.name}" in listed:  # with a manifest, only its files
                assets[f.stem] = _read_json(f)
        state = _read_safetensors(p / "model.safetensors")  # never unpickles: a pickle is refused unread
        if verify:  # after each file was read as its format, before any of it is used
            verify_files(p, meta)
        if config.get("task", "ner") not in ("ner", "pos"):
            raise ModelLoadError(f"{p / 'config.json'}: unknown task {config.get('task')!r}; expected 'ner' or 'pos'")
        labels = list(label_data.get("labels", []))
        try:
            model = TaggerModel(config["model"], labels, label_data.get("scheme", config.get("scheme", "IOB2")),
                                assets=assets)
        except SeqtagError as exc:
            raise ModelLoadError(f"{p / 'config.json'}: {exc}") from None
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(" ".join(first[:3]).split())[:300]
            raise ModelLoadError(f"{p / 'model.safetensors'}: weights do not match the config: {detail}") from None
        return cls(config, labels, model, meta)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; not a complete seqtag model directory")
    return read_json_object(path, ModelLoadError)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; the model directory holds no weights")
    with open(path, "rb") as f:
        head = f.read(9)
    looks_safetensors = len(head) > 8 and head[8:9] == b"{"  # 8-byte header length, then a JSON header
    if not looks_safetensors and (head[:1] == b"\x80" or head[:4] == b"PK\x03\x04"):  # pickle / torch.save zip
        raise ModelLoadError(f"{path}: a pickle or torch.save file, not safetensors; seqtag never unpickles "
                             f"model files (they can run code); re-save the weights with safetensors")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on bad files
        raise ModelLoadError(f"{path}: not a valid safetensors file (truncated or another format): "
                             f"{' '.join(str(exc).split())[:160]}") from None


def _release_free_memory() -> None:
    """Hand memory that is free inside the C heap back to the system (glibc's ``malloc_trim``), between
    chunks of a long stream: batches of ever new shapes leave freed blocks that the heap keeps resident,
    so without this a stream's resident memory creeps up with its length. A no-op elsewhere."""
    _malloc_trim()()


@functools.cache
def _malloc_trim() -> Callable[[], Any]:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            return functools.partial(ctypes.CDLL("libc.so.6").malloc_trim, 0)
        except (OSError, AttributeError):
            pass
    return lambda: None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector (see :func:`predict_chunks`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def plan_batches(lengths: Sequence[int], batch_size: int, max_cells: int = 6400, slack: float = 1.25,
                 min_padding: int = 512, min_size: int = 16) -> list[tuple[int, int]]:
    """Cut sentences sorted by ascending length into batches ``(start, stop)`` of at most ``batch_size``.

    Once a batch holds more than ``min_size`` sentences it is also closed before its padded size
    (sentences x longest length) passes ``max_cells``, where the CPU's recurrent kernels slow down
    as the batch leaves the cache, and before its padding passes ``slack`` times its real tokens by
    more than ``min_padding`` cells (the long tail of a corpus: padding costs recurrent steps, while
    each extra call costs a fixed overhead, so a little padding is cheaper than a cut)."""
    pieces: list[tuple[int, int]] = []
    start, total = 0, 0
    for j, n in enumerate(lengths):
        count = j - start + 1
        cells = count * n
        total += n
        if count > batch_size or (count > min_size and (cells > max_cells or (cells > slack * total
                                                                               and cells - total > min_padding))):
            pieces.append((start, j))
            start, total = j, n
    if lengths:
        pieces.append((start, len(lengths)))
    return pieces


Sentence = tuple[list[str], list[tuple[int, int]]]  # the words of a sentence and their character offsets


class LabelTable:
    """Tag ids read without string parsing: each label's prefix and entity type, and the id of ``O``."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        parts = [split_tag(lab) for lab in labels]
        self.prefix = [p for p, _ in parts]
        self.type = [t for _, t in parts]
        self.outside = labels.index("O") if "O" in labels else -1

    def spans(self, ids: Sequence[int]) -> list[tuple[int, int, str]]:
        """What :func:`seqtag.labels.spans_from_tags` gives for these tags (the same lenient reading)."""
        spans: list[tuple[int, int, str]] = []
        start, etype = -1, ""
        prefixes, types = self.prefix, self.type
        for i, t in enumerate(ids):
            prefix = prefixes[t]
            if prefix == "O" or prefix == "?":
                if start >= 0:
                    spans.append((start, i, etype))
                    start = -1
                continue
            ty = types[t]
            if start < 0 or ty != etype or prefix == "B" or prefix == "S":
                if start >= 0:
                    spans.append((start, i, etype))
                start, etype = i, ty
            if prefix == "E" or prefix == "S":
                spans.append((start, i + 1, etype))
                start = -1
        if start >= 0:
            spans.append((start, len(ids), etype))
        return spans


RunBatch = Callable[[list[list[str]]], tuple[list[list[int]], Optional[list[list[float]]]]]


def predict_chunks(tagger: Any, inputs: Iterable[str | Sequence[str]], run: RunBatch, batch_size: int,
                   chunk_size: int) -> Iterator[Prediction]:
    """The prediction loop both taggers share: read ``chunk_size`` inputs, tokenize them, tag them in
    length-sorted batches with ``run`` (token lists to tag-id rows and confidence rows), and yield the
    predictions in input order. The cycle collector is paused while a chunk is tagged: predict allocates
    many small acyclic objects (freed by reference counting), and each full collection would walk the
    caller's whole heap."""
    chunk: list[Sentence] = []
    for item in inputs:
        chunk.append(tagger._tokenize(item))
        if len(chunk) >= chunk_size:
            with _gc_paused():
                done = _tag_chunk(tagger, chunk, run, batch_size)
            chunk = []
            yield from done
            del done
            _release_free_memory()
    if chunk:
        with _gc_paused():
            done = _tag_chunk(tagger, chunk, run, batch_size)
        yield from done


def _tag_chunk(tagger: Any, sents: list[Sentence], run: RunBatch, batch_size: int) -> list[Prediction]:
    results: list[Prediction | None] = [None] * len(sents)
    lengths = [len(words) for words, _ in sents]
    order = sorted((i for i, n in enumerate(lengths) if n), key=lengths.__getitem__)
    for i, n in enumerate(lengths):
        if not n:
            results[i] = Prediction([], [], [])
    make = tagger._make_prediction
    for start, stop in plan_batches([lengths[i] for i in order], batch_size):
        idx = order[start:stop]
        words = [sents[i][0] for i in idx]
        tag_rows, conf_rows = run(words)
        for row, i in enumerate(idx):
            n = lengths[i]
            results[i] = make(words[row], sents[i][1], tag_rows[row][:n],
                              None if conf_rows is None else conf_rows[row][:n])
    return results  # type: ignore[return-value]


def load(path: str | Path, verify: bool = True) -> Tagger:
    """Load a saved tagger from a directory (``verify``: check its files against the SHA-256 manifest)."""
    return Tagger.load(path, verify=verify)
