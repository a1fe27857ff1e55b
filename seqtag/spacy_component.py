"""The spaCy pipeline component ``seqtag``: a trained seqtag tagger inside a spaCy pipeline.

``nlp.add_pipe("seqtag", config={"model": "models/ner"})`` adds a saved tagger. NER sets ``doc.ents``
(or the span group ``doc.spans[spans_key]``) with the tagger's confidence in ``span._.seqtag_score``;
POS sets ``token.tag_`` and, for a UPOS tagger, ``token.pos_``. The tagger is loaded on first use.
Without ``model``, ``spacy train`` trains a new tagger (see :mod:`seqtag.spacy_training`).

The tagger runs (and ``spacy train`` trains it) on the component's ``device``: by default (null) the one
spaCy uses, the GPU after ``spacy.require_gpu()``/``prefer_gpu()`` or ``spacy train --gpu-id N`` and
the CPU otherwise; or ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto`` (see :mod:`seqtag.devices`). The
name is checked when the component is made; whether the device is there, when the tagger is loaded
(first use, ``initialize``, ``from_disk``), as a one-line :class:`~seqtag.errors.DeviceError`.

``precision`` (``fp32`` by default) runs the tagger's recurrences in ``int8`` or ``bf16`` on the CPU, as
``seqtag predict --int8``/``--bf16`` do (:mod:`seqtag.quantize`). The component keeps the float32 tagger:
that is what ``nlp.to_disk`` writes and ``spacy train`` trains, and the reduced copy that annotates is made
from it on first use (again after each training step).

spaCy imports this module for every ``Language()`` (it is a ``spacy_factories`` entry point), so it
imports no torch: :mod:`seqtag.tagger` is imported inside functions only.
"""

# No ``from __future__ import annotations``: spaCy validates the factory's arguments from its
# annotations, which must be real types.
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples
from spacy.util import minibatch

from .context import context_size, with_context
from .errors import ConfigError, DeviceError, ModelLoadError, SeqtagError
from .labels import entity_types
from .precisions import check_precision
from .spacy_training import TrainableTagger

if TYPE_CHECKING:
    import torch

    from .spacy_training import SpacyTrainer
    from .tagger import Tagger

__all__ = ["SeqtagComponent", "make_seqtag", "SCORE_EXTENSION", "UPOS_TAGS"]

SCORE_EXTENSION = "seqtag_score"
UPOS_TAGS = frozenset("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split())
BYTES_FORMAT = "seqtag-tagger-files"
BYTES_VERSION = 1
_SENT_END = frozenset({".", "!", "?", "...", "…"})
# the names seqtag.devices resolves, checked here without importing torch (a blank pipeline never does)
_DEVICE = re.compile(r"^(cpu|cuda|mps)(:\d+)?$|^auto$")

DEFAULT_CONFIG: Dict[str, Any] = {
    "model": None,
    "batch_size": 128,
    "spans_key": None,
    "overwrite_ents": False,
    "set_pos": None,
    "max_tokens": 512,
    "task": "ner",
    "seqtag_config": None,
    "pos_attr": "tag",
    "device": None,
    "precision": "fp32",
}
TASKS = ("ner", "pos")


def register_extension() -> None:
    """Register ``Span._.seqtag_score`` (default ``None``) unless it already exists as a plain attribute."""
    if not Span.has_extension(SCORE_EXTENSION):
        Span.set_extension(SCORE_EXTENSION, default=None)
        return
    default, method, getter, setter = Span.get_extension(SCORE_EXTENSION)
    if method is not None or (getter is not None and setter is None):
        raise ConfigError(f"Span extension {SCORE_EXTENSION!r} is already registered by other code as a "
                          f"{'method' if method is not None else 'read-only getter'}; seqtag needs to write it")


if not Span.has_extension(SCORE_EXTENSION):  # at import too, so Docs read back in any process have it
    Span.set_extension(SCORE_EXTENSION, default=None)


class SeqtagComponent(TrainableTagger, Pipe):
    """A saved seqtag tagger as a spaCy component (see :func:`make_seqtag` for the settings).

    Args:
        name: The component's name in the pipeline.
        model: Directory of a saved tagger, loaded on first use; ``None`` when the tagger comes from
            ``from_disk``/``from_bytes`` (``spacy.load``) or ``initialize(model=...)``.
        batch_size: Sentences per forward pass of the tagger.
        spans_key: ``None`` writes NER entities to ``doc.ents``; a key writes the span group ``doc.spans[key]``.
        overwrite_ents: Replace existing ``doc.ents``; when false, entities that overlap existing ones are dropped.
        set_pos: Write ``token.pos_`` (POS); ``None`` decides: when at least half the labels are UPOS tags.
        max_tokens: A doc longer than this is tagged per sentence (when it has sentence boundaries) or in
            windows of at most this many tokens, cut after sentence-final punctuation where possible; 0: no limit.
        task: ``"ner"`` or ``"pos"``: the task of a new tagger that ``initialize`` builds (without ``model``).
        seqtag_config: A new tagger's seqtag config (a table, or the path of a TOML/JSON file) over the
            task's defaults; its ``[training]`` table gives the optimizer, ``lr`` and ``grad_clip``.
        pos_attr: ``"tag"`` or ``"pos"``: the reference attribute a POS tagger learns in ``spacy train``.
        device: Where the tagger runs and trains: ``None``, spaCy's device (the GPU after
            ``spacy.require_gpu()``, else the CPU); or ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``.
        precision: ``fp32``; or ``int8`` or ``bf16``: annotate with a reduced copy of the tagger, on the CPU
            (``bf16`` needs a CPU with native bfloat16; see :mod:`seqtag.quantize`).

    Raises:
        DeviceError: ``device`` is not a device name (when the component is made), or the device is
            not there (when the tagger is loaded), or it is not the CPU with ``int8``/``bf16`` (first doc).
        QuantizeError: ``precision`` is unknown (when the component is made), or the tagger or the CPU
            cannot run it (first doc).
    """

    def __init__(self, name: str = "seqtag", *, model: Optional[str] = None, batch_size: int = 128,
                 spans_key: Optional[str] = None, overwrite_ents: bool = False, set_pos: Optional[bool] = None,
                 max_tokens: int = 512, task: str = "ner",
                 seqtag_config: Optional[Union[str, Dict[str, Any]]] = None, pos_attr: str = "tag",
                 device: Optional[str] = None, precision: str = "fp32") -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"seqtag component {name!r}: batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise ConfigError(f"seqtag component {name!r}: max_tokens must be 0 (no limit) or positive, "
                              f"got {max_tokens!r}")
        if spans_key is not None and (not isinstance(spans_key, str) or not spans_key):
            raise ConfigError(f"seqtag component {name!r}: spans_key must be a non-empty string or null")
        if task not in TASKS:
            raise ConfigError(f"seqtag component {name!r}: task must be 'ner' or 'pos', got {task!r}")
        if pos_attr not in ("tag", "pos"):
            raise ConfigError(f"seqtag component {name!r}: pos_attr must be 'tag' or 'pos', got {pos_attr!r}")
        if device is not None and (not isinstance(device, str) or not _DEVICE.match(device.strip().lower())):
            raise DeviceError(f"seqtag component {name!r}: unknown device {device!r}; expected null (spaCy's: the "
                              f"GPU after spacy.require_gpu(), else the CPU), cpu, cuda, cuda:N, mps or auto")
        check_precision(precision, f"seqtag component {name!r}: ")
        self.name = name
        self.model_path = None if model is None else str(model)
        self.cfg: Dict[str, Any] = {"batch_size": batch_size, "spans_key": spans_key,
                                    "overwrite_ents": bool(overwrite_ents), "set_pos": set_pos,
                                    "max_tokens": max_tokens, "task": task, "seqtag_config": seqtag_config,
                                    "pos_attr": pos_attr, "device": device, "precision": precision}
        self._tagger: Optional["Tagger"] = None
        self._runner: Optional["Tagger"] = None
        self._trainer: Optional["SpacyTrainer"] = None
        self._pos = False
        self._warned: set = set()
        register_extension()

    # -- the tagger ---------------------------------------------------------------------------------
    @property
    def tagger(self) -> "Tagger":
        """The seqtag tagger, loaded from ``model`` on first use."""
        if self._tagger is None:
            if self.model_path is None:
                raise ConfigError(f"seqtag component {self.name!r} has no tagger: pass config={{'model': PATH}} to "
                                  f"nlp.add_pipe, or load a pipeline saved with nlp.to_disk")
            from .tagger import Tagger

            self._set_tagger(Tagger.load(self.model_path, device=self.device))
        return self._tagger  # type: ignore[return-value]

    @property
    def runner(self) -> "Tagger":
        """What annotates docs: :attr:`tagger` itself (``precision`` fp32), or its reduced copy, made on first use.

        Raises:
            DeviceError: ``int8``/``bf16`` on a device other than the CPU (one line naming the component).
            QuantizeError: The tagger or the CPU cannot run the precision (one line naming the component).
        """
        precision = self.cfg["precision"]
        if precision == "fp32":
            return self.tagger
        if self._runner is None:
            from .quantize import reduced

            tagger, device = self.tagger, self.device
            if device.type != "cpu":
                raise DeviceError(f"seqtag component {self.name!r}: precision {precision} runs on the CPU only, and "
                                  f"the component's device is {device}; set its device to cpu, or precision to fp32")
            try:
                self._runner = reduced(tagger, precision)
            except SeqtagError as exc:
                raise type(exc)(f"seqtag component {self.name!r}: {exc.one_line()}") from None
        return self._runner

    @property
    def device(self) -> "torch.device":
        """The device the tagger runs on: the ``device`` setting resolved (null: spaCy's current device).

        Raises:
            DeviceError: The device is not there (one line naming the component).
        """
        from .devices import resolve_device

        setting = self.cfg["device"]
        try:
            if setting is None:
                from thinc.util import get_torch_default_device

                return resolve_device(get_torch_default_device())
            return resolve_device(setting)
        except DeviceError as exc:
            message = exc.one_line().replace("use --device cpu or auto", "set the component's device to cpu or auto")
            raise DeviceError(f"seqtag component {self.name!r}: {message}") from None

    def _set_tagger(self, tagger: "Tagger", place: bool = True) -> None:
        """Use ``tagger``, moved to :attr:`device` (``place`` false: left where it is, for packaging)."""
        if place:
            tagger.to(self.device)
        self._tagger, self._trainer, self._runner = tagger, None, None
        upos = sum(label in UPOS_TAGS for label in tagger.labels)
        set_pos = self.cfg["set_pos"]
        self._pos = tagger.task == "pos" and (bool(set_pos) if set_pos is not None
                                              else upos * 2 >= max(1, len(tagger.labels)))

    @property
    def task(self) -> str:
        return self.tagger.task

    @property
    def labels(self) -> Tuple[str, ...]:
        """Entity types (NER) or tags (POS) of the tagger; empty until it is loaded.

        This never loads the tagger: spaCy reads ``labels`` (for ``nlp.meta``) before ``from_disk``.
        """
        if self._tagger is None:
            return ()
        if self._tagger.task == "ner":
            return tuple(entity_types(self._tagger.labels))
        return tuple(self._tagger.labels)

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    def initialize(self, get_examples: Optional[Callable[[], Iterable[Example]]] = None, *,
                   nlp: Optional[Language] = None, model: Optional[str] = None) -> None:
        """Load the tagger now, from ``model`` (``[initialize.components.NAME]``) or the ``model`` setting;
        with neither, build a new tagger to train (``spacy train``) from the examples.

        A new tagger takes its labels (NER: the entity types of ``doc.ents``; POS: ``token.tag_`` or
        ``pos_``, see ``pos_attr``) and its vocabularies from the examples' reference docs, and its
        network from ``seqtag_config``. A tagger already loaded by ``from_disk``/``from_bytes`` is kept
        when no ``model`` is named. The tagger is put on the component's device, checked first.
        """
        self.device  # noqa: B018 - an absent device is the first error, before any tagger is read or built
        if model is not None:
            self.model_path, self._tagger = str(model), None
        if self.model_path is None and self._tagger is None and get_examples is not None:
            self._build_tagger(get_examples())
        self.tagger  # noqa: B018 - loads it, or says why it cannot

    # -- annotation ---------------------------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        self._annotate([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 1000) -> Iterator[Doc]:
        """Annotate docs ``batch_size`` at a time, with one :meth:`Tagger.predict` call per batch."""
        error_handler = self.get_error_handler()
        for batch in minibatch(stream, size=batch_size):
            docs = list(batch)
            try:
                self._annotate(docs)
            except Exception as exc:  # spaCy's contract: the pipeline's error handler decides
                error_handler(self.name, self, docs, exc)
                continue
            yield from docs

    def _annotate(self, docs: List[Doc]) -> None:
        tagger = self.runner
        pieces: List[Tuple[int, List[int]]] = []
        words: List[List[str]] = []
        spaces: List[List[int]] = []
        for d, doc in enumerate(docs):
            texts = [t.text for t in doc]
            spaces.append([i for i, text in enumerate(texts) if text.isspace()])
            for idx in self._segments(doc, texts):
                pieces.append((d, idx))
                words.append([texts[i] for i in idx])
        context = context_size(tagger.config["model"])
        if context:  # a doc cut into pieces: each piece with the doc's tokens around it (seqtag.context)
            words = list(with_context(words, [d for d, _ in pieces], context))
        preds = tagger.predict(words, batch_size=self.cfg["batch_size"], with_confidence=tagger.task == "ner")
        if tagger.task == "ner":
            spans: List[List[Span]] = [[] for _ in docs]
            for (d, idx), pred in zip(pieces, preds):
                for ent in pred.entities:
                    span = Span(docs[d], idx[ent.start], idx[ent.end - 1] + 1, label=ent.label)
                    span._.set(SCORE_EXTENSION, ent.score)
                    spans[d].append(span)
            for doc, doc_spans in zip(docs, spans):
                self._set_entities(doc, doc_spans)
        else:
            for doc, space_idx in zip(docs, spaces):
                for i in space_idx:  # spaCy's own convention for whitespace tokens
                    doc[i].tag_ = "_SP"
                    if self._pos:
                        doc[i].pos_ = "SPACE"
            for (d, idx), pred in zip(pieces, preds):
                self._set_tags(docs[d], idx, pred.tags)

    def _set_tags(self, doc: Doc, idx: List[int], tags: List[str]) -> None:
        """``token.tag_`` for every tagged token; ``token.pos_`` too when the tag is UPOS (in POS mode)."""
        if not self._pos:
            for i, tag in zip(idx, tags):
                doc[i].tag_ = tag
            return
        for i, tag in zip(idx, tags):
            tok = doc[i]
            tok.tag_ = tag
            if tag in UPOS_TAGS:
                tok.pos_ = tag
            elif tag not in self._warned:
                self._warned.add(tag)
                warnings.warn(f"seqtag component {self.name!r}: the tag {tag!r} is not a Universal POS tag, "
                              f"which is all that token.pos_ takes; tokens tagged {tag!r} get token.tag_ = "
                              f"{tag!r} and no token.pos_", UserWarning, stacklevel=2)

    def _set_entities(self, doc: Doc, spans: List[Span]) -> None:
        key = self.cfg["spans_key"]
        if key is not None:
            doc.spans[key] = spans
            return
        if self.cfg["overwrite_ents"] or not doc.has_annotation("ENT_IOB"):
            doc.set_ents(spans, default="outside")
            return
        taken = {i for ent in doc.ents for i in range(ent.start, ent.end)}
        kept = [s for s in spans if not taken.intersection(range(s.start, s.end))]
        covered = taken.union(i for s in kept for i in range(s.start, s.end))
        outside = [doc[i: i + 1] for i in range(len(doc)) if i not in covered and doc[i].ent_iob == 0]
        doc.set_ents(kept, outside=outside, default="unmodified")

    def _segments(self, doc: Doc, texts: Optional[List[str]] = None) -> List[List[int]]:
        """Token indices to tag together: the doc without whitespace tokens, cut when longer than max_tokens."""
        limit = self.cfg["max_tokens"]
        texts = [t.text for t in doc] if texts is None else texts
        idx = [i for i, text in enumerate(texts) if not text.isspace()]  # token.is_space is text.isspace()
        if not idx or limit == 0 or len(idx) <= limit:
            return [idx] if idx else []
        if doc.has_annotation("SENT_START"):
            sents = [[t.i for t in sent if not t.is_space] for sent in doc.sents]
            return [w for s in sents if s for w in self._windows(doc, s, limit)]
        return self._windows(doc, idx, limit)

    @staticmethod
    def _windows(doc: Doc, idx: List[int], limit: int) -> List[List[int]]:
        out: List[List[int]] = []
        start = 0
        while len(idx) - start > limit:
            cut = start + limit
            for j in range(start + limit, start + limit // 2, -1):  # cut after a sentence end if one is near
                prev, nxt = idx[j - 1], idx[j]
                if doc[prev].text in _SENT_END or "\n" in doc[prev: nxt].text_with_ws[len(doc[prev].text):]:
                    cut = j
                    break
            out.append(idx[start:cut])
            start = cut
        out.append(idx[start:])
        return out

    # -- scoring ------------------------------------------------------------------------------------
    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Entity P/R/F (``ents_*`` or ``spans_KEY_*``) for NER; ``tag_acc`` (and ``pos_acc``) for POS."""
        validate_examples(examples, "SeqtagComponent.score")
        kwargs.pop("getter", None)
        kwargs.pop("has_annotation", None)
        if self.task == "ner":
            key = self.cfg["spans_key"]
            if key is None:
                return Scorer.score_spans(examples, "ents", has_annotation=lambda d: d.has_annotation("ENT_IOB"),
                                          **kwargs)
            return Scorer.score_spans(examples, f"spans_{key}", getter=lambda doc, _attr: doc.spans.get(key, []),
                                      has_annotation=lambda d: key in d.spans, **kwargs)
        scores = Scorer.score_token_attr(examples, "tag", **kwargs)
        if self._pos:
            scores.update(Scorer.score_token_attr(examples, "pos", **kwargs))
        return scores

    # -- serialization ------------------------------------------------------------------------------
    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> None:
        """Write the tagger to the directory ``path`` in seqtag's own format (``seqtag.load`` opens it)."""
        self.tagger.save(Path(path))

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = ()) -> "SeqtagComponent":
        """Load the tagger from the directory ``path`` (written by :meth:`to_disk`)."""
        from .tagger import Tagger

        self._set_tagger(Tagger.load(Path(path), device=self.device))
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        """The tagger's saved files as msgpack: ``{"format", "version", "files": {relative path: bytes}}``."""
        with tempfile.TemporaryDirectory(prefix="seqtag-") as tmp:
            root = Path(tmp) / "tagger"
            self.tagger.save(root)
            files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return srsly.msgpack_dumps({"format": BYTES_FORMAT, "version": BYTES_VERSION, "files": files})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "SeqtagComponent":
        """Load the tagger from :meth:`to_bytes` output."""
        from .tagger import Tagger

        self._set_tagger(_unpack(bytes_data, self.name, Tagger))
        return self

    def __reduce__(self) -> Tuple[Any, ...]:
        """Pickle support for ``nlp.pipe(n_process=...)`` with spawned workers: settings plus tagger bytes."""
        data = self.to_bytes() if self._tagger is not None else None
        return _rebuild, (self.name, self.model_path, dict(self.cfg), data)


def _unpack(bytes_data: bytes, name: str, tagger_cls: Any) -> Any:
    """Rebuild a tagger from :meth:`SeqtagComponent.to_bytes` output (files written to a temporary folder)."""
    try:
        msg = srsly.msgpack_loads(bytes_data)
    except Exception as exc:  # msgpack raises several types on garbage
        raise ModelLoadError(f"seqtag component {name!r}: the bytes are not msgpack ({type(exc).__name__})") from None
    if not isinstance(msg, dict) or msg.get("format") != BYTES_FORMAT or not isinstance(msg.get("files"), dict):
        raise ModelLoadError(f"seqtag component {name!r}: the bytes are not a seqtag tagger (no {BYTES_FORMAT!r})")
    if not isinstance(msg.get("version"), int) or msg["version"] > BYTES_VERSION:
        raise ModelLoadError(f"seqtag component {name!r}: tagger bytes version {msg.get('version')!r} is newer "
                             f"than this seqtag reads ({BYTES_VERSION}); upgrade seqtag")
    with tempfile.TemporaryDirectory(prefix="seqtag-") as tmp:
        root = Path(tmp) / "tagger"
        for rel, data in msg["files"].items():
            parts = Path(rel).parts
            if not parts or Path(rel).is_absolute() or ".." in parts or not isinstance(data, bytes):
                raise ModelLoadError(f"seqtag component {name!r}: bad file entry {rel!r} in the tagger bytes")
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return tagger_cls.load(root)


def _rebuild(name: str, model: Optional[str], cfg: Dict[str, Any], data: Optional[bytes]) -> SeqtagComponent:
    comp = SeqtagComponent(name, model=model, **cfg)
    if data is not None:
        comp.from_bytes(data)
    return comp


@Language.factory(
    "seqtag",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans", "token.tag", "token.pos",
             "span._.seqtag_score"],
    default_config=DEFAULT_CONFIG,
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_seqtag(nlp: Language, name: str, model: Optional[str], batch_size: int, spans_key: Optional[str],
                overwrite_ents: bool, set_pos: Optional[bool], max_tokens: int, task: str,
                seqtag_config: Optional[Union[str, Dict[str, Any]]], pos_attr: str,
                device: Optional[str], precision: str) -> SeqtagComponent:
    """The ``seqtag`` factory: ``nlp.add_pipe("seqtag", config={"model": "models/ner"})``.

    Args:
        nlp: The pipeline.
        name: The component's name.
        model: Directory of a saved tagger (a string), loaded lazily; null in a packaged pipeline.
        batch_size: Sentences per forward pass.
        spans_key: Null: NER writes ``doc.ents``; a key: the span group ``doc.spans[key]``.
        overwrite_ents: Replace existing ``doc.ents`` (else overlapping new entities are dropped).
        set_pos: Write ``token.pos_`` for a POS tagger; null: when its labels are UPOS tags.
        max_tokens: Longer docs are tagged per sentence or in windows of this many tokens; 0: no limit.
        task: ``ner`` or ``pos``: the task of a new tagger trained by ``spacy train`` (without ``model``).
        seqtag_config: A new tagger's seqtag config, a table or a TOML/JSON path; null: the task's defaults.
        pos_attr: ``tag`` or ``pos``: the reference attribute a new POS tagger learns.
        device: Where the tagger runs and trains: null, spaCy's device (the GPU after
            ``spacy.require_gpu()`` or ``spacy train --gpu-id N``, else the CPU); or ``cpu``, ``cuda``,
            ``cuda:N``, ``mps``, ``auto``. A pipeline saved before this setting existed gets null.
        precision: ``fp32``, ``int8`` or ``bf16``: how the tagger runs when it annotates (int8 and bf16 on
            the CPU, see :mod:`seqtag.quantize`); the pipeline keeps and saves the float32 tagger.
    """
    return SeqtagComponent(name, model=model, batch_size=batch_size, spans_key=spans_key,
                           overwrite_ents=overwrite_ents, set_pos=set_pos, max_tokens=max_tokens, task=task,
                           seqtag_config=seqtag_config, pos_attr=pos_attr, device=device, precision=precision)

