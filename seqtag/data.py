"""Corpora by name: catalogue names, local files and folders, saved datasets and hub ids, each read by
a small resolver into a :class:`~seqtag.corpus.Corpus`.

A corpus's splits are checked as they are loaded: NER tag schemes are detected (or declared), invalid
sequences reported and repaired. Every sentence keeps ``line``, where it starts in its file. The
corpus's sentences are indexed for an embedding once, and cached, by :func:`index_sentences`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .corpus import SPLIT_ALIASES, Corpus, token_line
from .dataset_rows import describe_memory, load_saved, memory_splits, read_dataset_file, sentences_from_dataset
from .errors import DataError, HubUnavailableError
from .hub import OFFLINE_HINT, cache_only, is_connection_error, offline_mode, probe_hub
from .hub import unavailable as _hub_unavailable
from .labels import SCHEMES, convert, detect_scheme, invalid_positions, split_tag
from .readers import Sentence, iter_conll, iter_conllu, read_jsonl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Corpus", "load_corpus", "catalogue", "corpora_root", "index_sentences", "DEFAULT_CORPUS", "SPLIT_ALIASES"]

DEFAULT_CORPUS = {"ner": "conll2003", "pos": "ud_english_ewt"}
CORPORA_ENV = "SEQTAG_CORPORA"
PARQUET_EXPORT = "refs/convert/parquet"  # the hub's Parquet copy of every dataset it could convert


def catalogue() -> dict[str, dict[str, Any]]:
    """The standard corpora seqtag knows by name (``seqtag/catalogue.toml``)."""
    with open(Path(__file__).with_name("catalogue.toml"), "rb") as f:
        return tomllib.load(f)


def corpora_root() -> Path | None:
    root = os.environ.get(CORPORA_ENV)
    return Path(root) if root else None


def load_corpus(spec: Any = None, task: str = "ner", *, tag_column: Any = None, scheme: str | None = None,
                strict: bool = False, warn: Callable[[str], None] | None = None) -> Corpus:
    """Load a corpus by catalogue name, local path (file, folder, ``split=path,...``) or hub id (``name[:config]``).

    Args:
        spec: What to load; ``None`` takes the task's default corpus. Data in memory (a ``datasets``
            ``Dataset``, ``DatasetDict``, ``IterableDataset``, a list of ``(tokens, tags)`` pairs, a dict
            of split name to any of these) is read by :func:`seqtag.dataset_rows.memory_splits`.
        task: ``ner`` or ``pos``.
        tag_column: The tag column (a number for CoNLL files, ``upos``/``xpos`` for CoNLL-U, a name for datasets).
        scheme: The NER tag scheme of the data (detected when ``None``).
        strict: Invalid tag sequences are an error instead of being repaired.
        warn: Called with a one-line message about repairs (default: print to stderr).
    """
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    spec = spec or DEFAULT_CORPUS.get(task)
    if spec is None:
        raise DataError(f"no default corpus for task {task!r}; pass --dataset")
    found = _resolve(spec, _reader_options(tag_column, task))
    detected = _check_tags(task, found.splits, found.sources, scheme or found.scheme, strict, warn)
    return Corpus(spec if isinstance(spec, str) else describe_memory(spec), task, found.splits, detected, found.sources)


# -- resolvers: one per form of --dataset ------------------------------------------------------------

@dataclass
class _Found:
    """What a resolver read: the sentences of each split, where each came from, and a declared scheme."""

    splits: dict[str, list[Sentence]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    scheme: str | None = None

    def add(self, split: str, sents: list[Sentence], source: str) -> None:
        self.splits[split], self.sources[split] = sents, source


_FILE_SUFFIXES = (".conll", ".conllu", ".jsonl", ".json", ".parquet", ".txt", ".tsv", ".iob", ".iob2", ".bio")


def _reader_options(tag_column: Any, task: str) -> dict[str, Any]:
    """The readers' options for ``--tag-column``: a column number, a CoNLL-U column, or a dataset's tag key."""
    if tag_column is None:
        return {}
    if isinstance(tag_column, str) and tag_column.lstrip("-").isdigit():
        return {"tag_column": int(tag_column)}
    return {"tag_column" if not isinstance(tag_column, str) or task == "pos" else "tag_key": tag_column}


def _resolve(spec: Any, opts: Mapping[str, Any]) -> _Found:
    """Read what ``spec`` names, with the resolver of the form it has (:func:`_form`)."""
    if not isinstance(spec, str):
        return _from_memory(spec, opts)
    form = _form(spec)
    if form == "catalogue":
        return _from_catalogue(spec, catalogue()[spec], opts)
    if form == "split_list":
        return _from_split_list(spec, opts)
    if form == "saved_splits":
        return _from_saved_splits(Path(spec), opts)
    if form == "folder":
        return _from_folder(Path(spec), opts)
    if form == "file":
        return _from_file(Path(spec), opts)
    return _from_hub_id(spec, opts)


def _form(spec: str) -> str:
    """Which form of ``--dataset`` ``spec`` has, the first that fits: ``catalogue`` (a catalogue name),
    ``split_list`` (``split=path,...``), ``saved_splits`` (a ``save_to_disk`` folder of splits), ``folder``
    (of split files, or laid out like a hub repo), ``file`` (one file, or a ``save_to_disk`` folder of one
    split) or ``hub`` (``owner/name[:config]``, ``hf:name[:config]``). A spec of no form is one line of
    :class:`DataError`."""
    cat = catalogue()
    if spec in cat:
        return "catalogue"
    if "=" in spec:
        return "split_list"
    path = Path(spec)
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        return "saved_splits"
    if path.is_dir() and not (path / "dataset_info.json").is_file():
        return "folder"
    if path.exists():
        return "file"
    if spec.startswith(("/", "./", "../", "~")) or path.suffix.lower() in _FILE_SUFFIXES:
        raise DataError("no such file or folder; expected a corpus file (CoNLL, CoNLL-U, JSON lines, Parquet), "
                        "a folder of split files, a catalogue name or a hub id owner/name", spec)
    if "/" in spec or spec.startswith("hf:"):
        return "hub"
    raise DataError(f"no corpus, file or folder named {spec!r}; known corpora: {', '.join(sorted(cat))}; "
                    f"a hub dataset is given as owner/name[:config] or hf:name[:config]")


def _catalogue_files(name: str, entry: Mapping[str, Any]) -> tuple[dict[str, Path], dict[str, Any]] | None:
    """A catalogue corpus's split files under ``$SEQTAG_CORPORA`` when they are all there, with the entry's
    reader options (``tag_column``, ``token_column``, ``separator``, ``comment_prefix``); ``None`` when its
    hub copy is to be read instead (whose scheme is :func:`hub_scheme`). Neither is one line of
    :class:`DataError`."""
    root = corpora_root()
    files = {k: (root / v) for k, v in entry.get("files", {}).items()} if root else {}
    if files and all(p.is_file() for p in files.values()):
        return files, {k: entry[k] for k in ("tag_column", "token_column", "separator", "comment_prefix") if k in entry}
    if "hub" not in entry:
        raise DataError(f"corpus {name!r}: its files are not under {root or '$' + CORPORA_ENV}")
    return None


def _from_catalogue(spec: str, entry: Mapping[str, Any], opts: Mapping[str, Any]) -> _Found:
    """A catalogue corpus: its files under ``$SEQTAG_CORPORA`` when they are all there, else its hub copy."""
    local = _catalogue_files(spec, entry)
    if local is not None:
        files, eopts = local
        found = _Found(scheme=entry.get("scheme"))
        for split, p in files.items():
            found.add(split, _read_file(p, entry.get("format"), {**eopts, **opts}), str(p))
        return found
    root = corpora_root()
    first = next(iter(entry.get("files", {}).values()), "")
    where = f"not under {root}" if root else "not found locally"
    try:
        found = _load_hub(entry["hub"], entry.get("hub_config"), opts.get("tag_key") or entry.get("hub_tag_column"),
                          entry.get("hub_revision"))
    except HubUnavailableError as exc:
        raise HubUnavailableError(
            f"corpus {spec!r}: {first or 'its files'} {where} and the hub copy {entry['hub']!r} is unavailable "
            f"({getattr(exc, 'reason', 'unavailable')}); set SEQTAG_CORPORA to the folder that holds "
            f"{first} (e.g. export SEQTAG_CORPORA=../shared/corpora) or pass --dataset PATH") from None
    found.scheme = hub_scheme(entry)
    return found


def hub_scheme(entry: Mapping[str, Any]) -> str | None:
    """The tag scheme of a catalogue corpus's hub copy: ``hub_scheme`` where the copy differs from the
    original files (the hub's CoNLL-2003 is IOB2, its files IOB1), else the files' ``scheme``."""
    return entry.get("hub_scheme", entry.get("scheme"))


def _from_file(path: Path, opts: Mapping[str, Any]) -> _Found:
    """One file, or a ``Dataset`` written by ``save_to_disk``: a corpus of one split, ``data``."""
    return _Found({"data": _read_file(path, None, opts)}, {"data": str(path)})


def _from_memory(data: Any, opts: Mapping[str, Any]) -> _Found:
    """Data given in memory (``seqtag.train(train=...)``, ``Tagger.evaluate``): its splits, or one split ``data``."""
    found = _Found()
    for split, (sents, source) in memory_splits(data, opts.get("tag_key") or opts.get("tag_column")).items():
        found.add(split, sents, source)
    return found


def _hub_id(spec: str) -> tuple[str, str | None]:
    """``owner/name[:config]`` or ``hf:name[:config]`` as ``(name, config)``."""
    name, _, config = spec.removeprefix("hf:").partition(":")
    return name, config or None


def _from_hub_id(spec: str, opts: Mapping[str, Any]) -> _Found:
    """``owner/name[:config]`` or ``hf:name[:config]``: a dataset on the hub (or in its local cache)."""
    return _load_hub(*_hub_id(spec), opts.get("tag_key"))


def _split_list(spec: str) -> dict[str, Path]:
    """``train=a.conll,dev=b.conll,...`` as the file of each split."""
    listed: dict[str, Path] = {}
    for item in spec.split(","):
        split, _, p = item.partition("=")
        listed[split.strip()] = Path(p.strip())
    return listed


def _from_split_list(spec: str, opts: Mapping[str, Any]) -> _Found:
    """``train=a.conll,dev=b.conll,...``: a file per split."""
    found = _Found()
    for split, path in _split_list(spec).items():
        found.add(split, _read_file(path, None, opts), str(path))
    return found


def _saved_splits(path: Path) -> Any:
    """The ``DatasetDict`` that ``save_to_disk`` wrote in ``path`` (a single dataset there is a :class:`DataError`)."""
    import datasets

    dd = load_saved(path)
    if not isinstance(dd, datasets.DatasetDict):
        raise DataError("a dataset_dict.json beside a single dataset; expected the splits of save_to_disk", str(path))
    return dd


def _from_saved_splits(path: Path, opts: Mapping[str, Any]) -> _Found:
    """A ``DatasetDict`` written by ``save_to_disk``."""
    found = _Found()
    for split, ds in _saved_splits(path).items():
        found.add(split, sentences_from_dataset(ds, f"{path}[{split}]", opts.get("tag_key")), f"{path}[{split}]")
    return found


def _split_files(path: Path) -> dict[str, Path]:
    """The split files of a folder, chosen by name: ``*train*``; ``*dev*``, ``*valid*`` or ``*testa*``;
    ``*testb*`` or ``*test*`` (each file counted once). Empty: the folder holds none."""
    files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in ("", ".conll", ".conllu", ".txt", ".jsonl", ".json", ".parquet", ".iob2",
                                      ".bio", ".tsv", ".train", ".testa", ".testb", ".dev", ".test")]
    chosen: dict[str, Path] = {}
    for split, aliases in (("train", ("train",)), ("dev", ("dev", "valid", "testa")), ("test", ("testb", "test"))):
        for p in files:
            if p not in chosen.values() and any(a in p.name.lower() for a in aliases):
                chosen[split] = p
                break
    return chosen


def _from_folder(path: Path, opts: Mapping[str, Any]) -> _Found:
    """A folder of split files (:func:`_split_files`), or else a folder laid out like a hub dataset repo."""
    chosen = _split_files(path)
    if not chosen:
        return _load_hub(str(path), None, opts.get("tag_key"))
    found = _Found()
    for split, p in chosen.items():
        found.add(split, _read_file(p, None, opts), str(p))
    return found


def _read_file(path: Path, fmt: str | None, opts: Mapping[str, Any]) -> list[Sentence]:
    """The sentences of one file (or ``save_to_disk`` folder), read as ``fmt`` (default: told by its name)."""
    fmt = fmt or _format_of(path)
    if fmt == "jsonl":
        return read_jsonl(path, opts.get("tag_key"))
    if fmt in ("parquet", "disk"):
        return read_dataset_file(path, fmt, opts.get("tag_key"))
    return list(_column_sentences(path, fmt, opts))


def _column_sentences(path: Path, fmt: str, opts: Mapping[str, Any]) -> Iterator[Sentence]:
    """The sentences of a CoNLL-U (``fmt="conllu"``) or CoNLL file one by one as they are read, with the
    reader options ``opts`` (a CoNLL file's ``tag_column`` must be a number: a :class:`DataError` at once)."""
    if fmt == "conllu":
        return iter_conllu(path, str(opts.get("tag_column", "upos")))
    tag_column = opts.get("tag_column", -1)
    if not isinstance(tag_column, int):
        raise DataError(f"tag column {tag_column!r} must be a column number for a CoNLL file", str(path))
    return iter_conll(path, tag_column=tag_column, token_column=int(opts.get("token_column", 0)),
                      separator=opts.get("separator"), comment_prefix=opts.get("comment_prefix"))


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "disk"
    suffix = path.suffix.lower()
    return {".conllu": "conllu", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(suffix, "conll")


def _load_hub(name: str, config: str | None, tag_key: str | None, revision: str | None = None) -> _Found:
    """A dataset through ``datasets.load_dataset`` (:func:`_open_hub`), each split read whole."""
    found = _Found()
    for split, ds in _open_hub(name, config, revision).items():
        found.add(split, sentences_from_dataset(ds, f"{name}[{split}]", tag_key), f"{name}[{split}]")
    return found


def _open_hub(name: str, config: str | None, revision: str | None = None, *, streaming: bool = False) -> Any:
    """The splits of a dataset through ``datasets.load_dataset``: a hub id, or a local folder laid out like a
    hub repo. Returns a ``DatasetDict`` (``streaming``: an ``IterableDatasetDict``).

    ``datasets`` decides where it comes from (its cache, ``HF_HUB_OFFLINE``). Online, the hub is probed
    first (:func:`seqtag.hub.probe_hub`), so an unreachable hub costs seconds, not a minute of retries;
    when it is out of reach, a copy in the ``datasets`` cache is still used (with a warning), and only
    a dataset that is not there is one line of error. A stream reads the hub's files as training goes,
    so it needs the hub: with ``streaming``, offline or out of reach is one line of
    :class:`~seqtag.errors.HubUnavailableError` at once. ``revision`` (e.g. ``refs/convert/parquet``, the
    hub's Parquet export of a dataset published with a loading script) picks a branch; on that branch
    a config is a folder, so it is read as ``data_dir``.
    """
    import datasets

    local = Path(name).is_dir()
    offline = offline_mode()
    label = f"dataset {name!r}{f' ({config})' if config else ''}"
    kwargs: dict[str, Any] = {}
    if revision:
        kwargs["revision"] = revision
    if config and revision == PARQUET_EXPORT:
        kwargs["data_dir"] = config
    elif config:
        kwargs["name"] = config
    if streaming and offline and not local:
        raise _hub_unavailable(f"{label} cannot be streamed offline (HF_HUB_OFFLINE): a stream reads the hub "
                               f"as training goes; train without --streaming to use a cached copy, or stream "
                               f"local files", "offline")
    reason = None if local or offline else probe_hub()
    if streaming and reason is not None:
        raise _hub_unavailable(f"the Hugging Face hub is out of reach ({reason}), so {label} cannot be "
                               f"streamed; {OFFLINE_HINT}", reason)
    if streaming:
        kwargs["streaming"] = True
    try:
        if reason is None:
            dd = datasets.load_dataset(name, **kwargs)
        else:
            with cache_only():
                dd = datasets.load_dataset(name, **kwargs)
            print(f"warning: the Hugging Face hub is out of reach ({reason}); {label} is read from the local "
                  f"cache (set HF_HUB_OFFLINE=1 to skip the check)", file=sys.stderr)
    except Exception as exc:
        if isinstance(exc, MemoryError):
            raise
        first = " ".join(str(exc).split())[:200]
        if local:
            raise DataError(f"cannot load the dataset folder: {type(exc).__name__}: {first}", name) from None
        if reason is not None:
            raise _hub_unavailable(f"the Hugging Face hub is out of reach ({reason}), so {label} cannot be "
                                   f"downloaded; {OFFLINE_HINT}", reason) from None
        if offline:
            raise _hub_unavailable(f"{label} is not available offline (not in the local cache): {first}",
                                   "offline and not in the local cache") from None
        if is_connection_error(exc):
            raise _hub_unavailable(f"the Hugging Face hub is out of reach while loading {label} ({first}); "
                                   f"{OFFLINE_HINT}", "the connection failed") from None
        raise _hub_unavailable(f"{label} is not available from the hub: {first}", "not on the hub") from None
    if not isinstance(dd, Mapping):
        raise DataError(f"expected the splits of a dataset, got {type(dd).__name__}", name)
    return dd


# -- tag schemes: checked and repaired as a corpus is loaded ----------------------------------------

def _scheme_hint(tag: str, prev: str, scheme: str) -> str:
    """What ``scheme`` expects instead of the invalid ``tag`` (which follows ``prev``)."""
    p, t = split_tag(tag)
    pp, pt = split_tag(prev)
    if p in ("E", "S") and scheme != "BIOES":
        return "E- and S- tags exist only in BIOES; pass --scheme BIOES if the data is BIOES"
    if scheme == "IOB2":
        return f"expected an entity to start with B-{t}"
    if scheme == "IOB1":
        return f"expected I-{t} to start an entity; B-{t} only follows another {t} entity"
    if p in ("I", "E") and not (pp in ("B", "I") and pt == t):
        return f"expected an entity to start with B-{t} (a one-token entity is S-{t})"
    return f"expected the entity to end with E-{t} (a one-token entity is S-{t})"


_STRICT_FIX = "; fix the data or train without --strict to repair it"  # after a broken sequence under --strict


def _outside_scheme(tag: str) -> str:
    """What is wrong with a tag that no NER scheme has (``split_tag`` gives it the prefix ``?``)."""
    return f"tag {tag!r} is outside the IOB/BIOES scheme; expected O, B-TYPE, I-TYPE (or E-/S- in BIOES)"


def _breaks(tags: Sequence[str], i: int, scheme: str) -> str:
    """What is wrong with ``tags[i]``, which breaks ``scheme`` there, and what the scheme expects instead."""
    tag, prev = tags[i], (tags[i - 1] if i else "O")
    after = repr(prev) if i else "the sentence start"
    return f"{tag!r} after {after} breaks {scheme} ({_scheme_hint(tag, prev, scheme)})"


def _repair(tags: list[str], scheme: str) -> list[str]:
    """Tags that break ``scheme`` made valid in it: read as IOB2 (each broken I- starts an entity) and back."""
    return convert(convert(tags, scheme, "IOB2"), "IOB2", scheme)


def _check_tags(task: str, split_sents: Mapping[str, list[Sentence]], sources: Mapping[str, str],
                scheme: str | None, strict: bool, warn: Any) -> str | None:
    if task != "ner":
        return None
    for split, sents in split_sents.items():
        for s in sents:
            for i, tag in enumerate(s.tags):
                if split_tag(tag)[0] == "?":
                    raise DataError(_outside_scheme(tag), sources.get(split, split),
                                    token_line(sources.get(split, split), s.line, i))
    if scheme is None:
        scheme = detect_scheme(s.tags for sents in split_sents.values() for s in sents)
    elif scheme not in SCHEMES:
        raise DataError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    for split, sents in split_sents.items():
        bad = [(s, invalid_positions(s.tags, scheme)) for s in sents]
        bad = [(s, pos) for s, pos in bad if pos]
        if bad:
            s, pos = bad[0]
            src = sources.get(split, split)
            where = f"{src}:{token_line(src, s.line, pos[0])}"
            msg = f"{where}: {_breaks(s.tags, pos[0], scheme)}; {len(bad)} sentence(s) in {split} break it"
            if strict:
                raise DataError(msg + _STRICT_FIX)
            warn(msg + "; repaired")
            for s, _ in bad:
                s.tags = _repair(s.tags, scheme)
    return scheme


# -- indexing for an embedding, once --------------------------------------------------------------------

INDEX_FORMAT = 1  # bump when the meaning of indexed columns changes, so old cache files are not reused


def index_sentences(embedding: Any, sentences: Sequence[Sequence[str]], *, progress: bool = True,
                    cache_dir: str | Path | None = None) -> Any:
    """The embedding's per-sentence ids over a whole corpus, computed once with ``datasets.map`` and
    cached as an Arrow file, so another epoch, a resumed run or another seed reads ids instead of
    looking strings up again. Returns a ``datasets.Dataset`` with one column per
    :meth:`~seqtag.embeddings.base.Embedding.index_columns` key (``None`` when the embedding indexes
    nothing ahead). The cache file is named by a fingerprint of the embedding's config, its
    vocabularies and the tokens, in ``cache_dir`` (default: the ``datasets`` cache, ``seqtag-index/``).
    """
    if not sentences or not embedding.index_columns([sentences[0]]):
        return None
    import datasets

    digest = hashlib.sha256()
    digest.update(json.dumps({"format": INDEX_FORMAT, "embedding": _embedding_signature(embedding)},
                             sort_keys=True, default=str).encode())
    for sent in sentences:
        digest.update("\x1f".join(sent).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    fingerprint = digest.hexdigest()[:32]
    folder = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE) / "seqtag-index"
    folder.mkdir(parents=True, exist_ok=True)
    was_enabled = not datasets.utils.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        ds = datasets.Dataset.from_dict({"tokens": [list(s) for s in sentences]})
        return ds.map(lambda batch: embedding.index_columns(batch["tokens"]), batched=True, batch_size=1000,
                      remove_columns=["tokens"], cache_file_name=str(folder / f"{fingerprint}.arrow"),
                      new_fingerprint=fingerprint, load_from_cache_file=True, desc="indexing tokens")
    finally:
        if was_enabled and not progress:
            datasets.enable_progress_bars()


def _embedding_signature(embedding: Any) -> Any:
    """What an embedding's ids depend on: its class, hyperparameters and vocabularies (nested parts too)."""
    hyper = {k: v for k, v in vars(embedding).items()
             if not k.startswith("_") and isinstance(v, (int, float, str, bool, type(None)))}
    parts = [_embedding_signature(p) for p in getattr(embedding, "parts", [])]
    return {"class": f"{type(embedding).__module__}.{type(embedding).__qualname__}", "hyper": hyper,
            "assets": embedding.get_assets(), "parts": parts}
