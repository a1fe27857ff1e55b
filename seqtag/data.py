"""Corpora as Hugging Face ``DatasetDict`` objects: catalogue names, local files and hub ids.

Every corpus becomes a ``DatasetDict`` whose splits have a ``tokens`` column and a ``tags`` column of
``ClassLabel`` ids (the label names are the corpus's tags), plus ``line``, where each sentence starts
in its file. NER tag schemes are detected (or declared), invalid sequences reported and repaired.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import DataError, HubUnavailableError
from .hub import OFFLINE_HINT, is_connection_error, probe_hub
from .labels import SCHEMES, convert, detect_scheme, invalid_positions, split_tag
from .readers import TAG_KEYS, Sentence, read_conll, read_conllu, read_jsonl, row_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Corpus", "load_corpus", "catalogue", "corpora_root", "index_sentences", "DEFAULT_CORPUS", "SPLIT_ALIASES"]

DEFAULT_CORPUS = {"ner": "conll2003", "pos": "ud_english_ewt"}
CORPORA_ENV = "SEQTAG_CORPORA"
SPLIT_ALIASES = {"dev": ("dev", "validation", "valid", "testa"), "test": ("test", "testb"), "train": ("train",)}


def catalogue() -> dict[str, dict[str, Any]]:
    """The standard corpora seqtag knows by name (``seqtag/catalogue.toml``)."""
    with open(Path(__file__).with_name("catalogue.toml"), "rb") as f:
        return tomllib.load(f)


def corpora_root() -> Path | None:
    root = os.environ.get(CORPORA_ENV)
    return Path(root) if root else None


@dataclass
class Corpus:
    """A loaded corpus: its splits, its original tag scheme (NER) and where each split came from."""

    name: str
    task: str
    splits: Any  # datasets.DatasetDict
    scheme: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        first = next(iter(self.splits.values()))
        return list(first.features["tags"].feature.names)

    def split(self, name: str) -> Any:
        """A split by name; ``dev`` also finds ``validation``/``testa`` and ``test`` finds ``testb``."""
        for alias in SPLIT_ALIASES.get(name, (name,)):
            if alias in self.splits:
                return self.splits[alias]
        if list(self.splits) == ["data"]:
            return self.splits["data"]
        raise DataError(f"the corpus {self.name!r} has no split {name!r}; its splits: {', '.join(self.splits)}")

    def has_split(self, name: str) -> bool:
        return any(a in self.splits for a in SPLIT_ALIASES.get(name, (name,))) or list(self.splits) == ["data"]

    def sentences(self, name: str, scheme: str | None = None) -> list[tuple[list[str], list[str]]]:
        """``(tokens, tags)`` pairs of a split, NER tags converted to ``scheme`` (repairing invalid ones)."""
        ds = self.split(name)
        names = ds.features["tags"].feature.names
        out = []
        for tokens, ids in zip(ds["tokens"], ds["tags"]):
            tags = [names[i] for i in ids]
            if scheme is not None and self.task == "ner":
                tags = convert(tags, self.scheme or "IOB2", scheme)
            out.append((tokens, tags))
        return out


def _to_dataset(sents: list[Sentence], labels: list[str]) -> Any:
    import datasets

    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.ClassLabel(names=labels)),
        "line": datasets.Value("int64"),
    })
    index = {t: i for i, t in enumerate(labels)}
    return datasets.Dataset.from_dict(
        {"tokens": [s.tokens for s in sents], "tags": [[index[t] for t in s.tags] for s in sents],
         "line": [s.line for s in sents]},
        features=features,
    )


def _read_file(path: Path, fmt: str | None, opts: Mapping[str, Any]) -> list[Sentence]:
    fmt = fmt or _format_of(path)
    if fmt == "conllu":
        return read_conllu(path, str(opts.get("tag_column", "upos")))
    if fmt == "jsonl":
        return read_jsonl(path, opts.get("tag_key"))
    if fmt in ("parquet", "disk"):
        return _read_datasets_file(path, fmt, opts)
    tag_column = opts.get("tag_column", -1)
    if not isinstance(tag_column, int):
        raise DataError(f"tag column {tag_column!r} must be a column number for a CoNLL file", str(path))
    return read_conll(path, tag_column=tag_column, token_column=int(opts.get("token_column", 0)),
                      separator=opts.get("separator"), comment_prefix=opts.get("comment_prefix"))


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "disk"
    suffix = path.suffix.lower()
    return {".conllu": "conllu", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(suffix, "conll")


def _unreadable(exc: BaseException, what: str, where: str) -> DataError:
    """A reader's exception as one line naming the file (``MemoryError`` is re-raised, it is no data error)."""
    if isinstance(exc, MemoryError):
        raise exc
    text = " ".join(str(exc).split())
    first = text.split(f"{where}': ", 1)[-1][:200] or "no details"  # pyarrow repeats the path: once is enough
    return DataError(f"{what} ({type(exc).__name__}: {first})", where)


def _open_parquet(path: Path) -> Any:
    """A Parquet file as a ``datasets.Dataset`` (its Hugging Face features kept, e.g. ``ClassLabel`` names).

    Read with pyarrow rather than ``Dataset.from_parquet``, which logs its own error lines and draws a
    progress bar on stderr around a failure, where the CLI promises one line.
    """
    import datasets
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
        return datasets.Dataset(datasets.table.InMemoryTable(table))
    except Exception as exc:  # pyarrow's ArrowInvalid/OSError, or datasets refusing the schema's metadata
        raise _unreadable(exc, "not a readable Parquet file", str(path)) from None


def _load_saved(path: Path) -> Any:
    """A folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # a damaged dataset_info.json/state.json/arrow file: many exception types
        raise _unreadable(exc, "not a dataset folder written by save_to_disk", str(path)) from None


def _read_datasets_file(path: Path, fmt: str, opts: Mapping[str, Any]) -> list[Sentence]:
    import datasets

    ds = _open_parquet(path) if fmt == "parquet" else _load_saved(path)
    if isinstance(ds, datasets.DatasetDict):
        raise DataError("holds several splits; pass the folder as the dataset, not as one split", str(path))
    return _sentences_from_dataset(ds, str(path), opts.get("tag_key"))


def _tag_column_of(ds: Any, wanted: str | None, where: str) -> str:
    candidates = [wanted] if wanted else list(TAG_KEYS)
    for col in candidates:
        if col in ds.column_names:
            return col
    raise DataError(f"no tag column {' or '.join(repr(c) for c in candidates)}; columns: {', '.join(ds.column_names)}",
                    where)


def _sentences_from_dataset(ds: Any, where: str, tag_key: str | None) -> list[Sentence]:
    """The sentences of a dataset's rows; a row whose tokens or tags are not lists of strings is one line naming it.

    Each sentence's ``line`` is its row number, counted from 1.
    """
    if "tokens" not in ds.column_names:
        raise DataError(f"no 'tokens' column; columns: {', '.join(ds.column_names)}", where)
    col = _tag_column_of(ds, tag_key, where)
    feature = ds.features[col]
    names = getattr(getattr(feature, "feature", None), "names", None)
    try:  # Arrow decodes the columns here: strings that are not UTF-8 fail now
        rows = list(zip(ds["tokens"], ds[col]))
    except Exception as exc:
        raise _unreadable(exc, f"the 'tokens' and {col!r} columns cannot be read", where) from None
    sents = []
    for i, (tokens, tags) in enumerate(rows, 1):
        problem = row_problem(tokens, tags, col)
        if problem is None and names and any(not isinstance(t, int) or not 0 <= t < len(names) for t in tags):
            problem = f"{col!r} holds a label id outside its {len(names)} label names"
        if problem is not None:
            raise DataError(f"row {i}: {problem}", where)
        if tokens:
            sents.append(Sentence(list(tokens), [names[t] if names else str(t) for t in tags], i))
    if not sents:
        raise DataError("the dataset has no sentences", where)
    return sents


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


def _check_tags(task: str, split_sents: Mapping[str, list[Sentence]], sources: Mapping[str, str],
                scheme: str | None, strict: bool, warn: Any) -> str | None:
    if task != "ner":
        return None
    for split, sents in split_sents.items():
        for s in sents:
            for i, tag in enumerate(s.tags):
                if split_tag(tag)[0] == "?":
                    raise DataError(f"tag {tag!r} is outside the IOB/BIOES scheme; expected O, B-TYPE, I-TYPE "
                                    f"(or E-/S- in BIOES)", sources.get(split, split), s.line + i)
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
            where = f"{src}:{s.line if src.endswith(('.jsonl', '.json')) else s.line + pos[0]}"
            tag, prev = s.tags[pos[0]], (s.tags[pos[0] - 1] if pos[0] else "O")
            after = repr(prev) if pos[0] else "the sentence start"
            msg = (f"{where}: {tag!r} after {after} breaks {scheme} ({_scheme_hint(tag, prev, scheme)}); "
                   f"{len(bad)} sentence(s) in {split} break it")
            if strict:
                raise DataError(msg + "; fix the data or train without --strict to repair it")
            warn(msg + "; repaired")
            for s, _ in bad:
                s.tags = convert(convert(s.tags, scheme, "IOB2"), "IOB2", scheme)
    return scheme


def _hub_unavailable(message: str, reason: str) -> HubUnavailableError:
    err = HubUnavailableError(message)
    err.reason = reason
    return err


def _load_hub(name: str, config: str | None, tag_key: str | None) -> tuple[dict[str, list[Sentence]], dict[str, str]]:
    """A dataset through ``datasets.load_dataset``: a hub id, or a local folder laid out like a hub repo.

    Online, the hub is probed first (:func:`seqtag.hub.probe_hub`), so an unreachable hub is one line
    within seconds instead of a minute of retries.
    """
    import datasets

    local = Path(name).is_dir()
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or \
        os.environ.get("HF_DATASETS_OFFLINE", "") not in ("", "0")
    label = f"dataset {name!r}{f' ({config})' if config else ''}"
    if not local and not offline:
        reason = probe_hub()
        if reason is not None:
            raise _hub_unavailable(f"the Hugging Face hub is out of reach ({reason}), so {label} cannot be "
                                   f"downloaded; {OFFLINE_HINT}", reason)
    try:
        dd = datasets.load_dataset(name, config) if config else datasets.load_dataset(name)
    except Exception as exc:
        if isinstance(exc, MemoryError):
            raise
        first = " ".join(str(exc).split())[:200]
        if local:
            raise DataError(f"cannot load the dataset folder: {type(exc).__name__}: {first}", name) from None
        if offline:
            raise _hub_unavailable(f"{label} is not available offline (not in the local cache): {first}",
                                   "offline and not in the local cache") from None
        if is_connection_error(exc):
            raise _hub_unavailable(f"the Hugging Face hub is out of reach while loading {label} ({first}); "
                                   f"{OFFLINE_HINT}", "the connection failed") from None
        raise _hub_unavailable(f"{label} is not available from the hub: {first}", "not on the hub") from None
    out: dict[str, list[Sentence]] = {}
    sources: dict[str, str] = {}
    for split, ds in dd.items():
        out[split] = _sentences_from_dataset(ds, f"{name}[{split}]", tag_key)
        sources[split] = f"{name}[{split}]"
    return out, sources


_FILE_SUFFIXES = (".conll", ".conllu", ".jsonl", ".json", ".parquet", ".txt", ".tsv", ".iob", ".iob2", ".bio")


def _find_split_files(folder: Path) -> dict[str, Path]:
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in ("", ".conll", ".conllu", ".txt", ".jsonl", ".json", ".parquet", ".iob2",
                                      ".bio", ".tsv", ".train", ".testa", ".testb", ".dev", ".test")]
    found: dict[str, Path] = {}
    for split, aliases in (("train", ("train",)), ("dev", ("dev", "valid", "testa")), ("test", ("testb", "test"))):
        for p in files:
            if p not in found.values() and any(a in p.name.lower() for a in aliases):
                found[split] = p
                break
    return found


def load_corpus(spec: str | None = None, task: str = "ner", *, tag_column: Any = None, scheme: str | None = None,
                strict: bool = False, warn: Any = None) -> Corpus:
    """Load a corpus by catalogue name, local path (file, folder, ``split=path,...``) or hub id (``name[:config]``).

    Args:
        spec: What to load; ``None`` takes the task's default corpus.
        task: ``ner`` or ``pos``.
        tag_column: The tag column (a number for CoNLL files, ``upos``/``xpos`` for CoNLL-U, a name for datasets).
        scheme: The NER tag scheme of the data (detected when ``None``).
        strict: Invalid tag sequences are an error instead of being repaired.
        warn: Called with a one-line message about repairs (default: print to stderr).
    """
    import datasets

    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    spec = spec or DEFAULT_CORPUS.get(task)
    if spec is None:
        raise DataError(f"no default corpus for task {task!r}; pass --dataset")
    opts: dict[str, Any] = {}
    if tag_column is not None:
        opts["tag_column" if not isinstance(tag_column, str) or task == "pos" else "tag_key"] = tag_column
        if isinstance(tag_column, str) and tag_column.lstrip("-").isdigit():
            opts = {"tag_column": int(tag_column)}
    cat = catalogue()
    name = spec
    split_sents: dict[str, list[Sentence]] = {}
    sources: dict[str, str] = {}
    if spec in cat:
        entry = cat[spec]
        scheme = scheme or entry.get("scheme")
        root = corpora_root()
        files = {k: (root / v) for k, v in entry.get("files", {}).items()} if root else {}
        if files and all(p.is_file() for p in files.values()):
            eopts = {k: entry[k] for k in ("tag_column", "token_column", "separator", "comment_prefix") if k in entry}
            eopts.update(opts)
            for split, p in files.items():
                split_sents[split] = _read_file(p, entry.get("format"), eopts)
                sources[split] = str(p)
        elif "hub" in entry:
            first = next(iter(entry.get("files", {}).values()), "")
            where = f"not under {root}" if root else "not found locally"
            try:
                split_sents, sources = _load_hub(entry["hub"], entry.get("hub_config"),
                                                 opts.get("tag_key") or entry.get("hub_tag_column"))
            except HubUnavailableError as exc:
                raise HubUnavailableError(
                    f"corpus {spec!r}: {first or 'its files'} {where} and the hub copy {entry['hub']!r} is unavailable "
                    f"({getattr(exc, 'reason', 'unavailable')}); set SEQTAG_CORPORA to the folder that holds "
                    f"{first} (e.g. export SEQTAG_CORPORA=../shared/corpora) or pass --dataset PATH") from None
        else:
            raise DataError(f"corpus {spec!r}: its files are not under {root or '$' + CORPORA_ENV}")
    elif "=" in spec:
        for item in spec.split(","):
            split, _, p = item.partition("=")
            path = Path(p.strip())
            split_sents[split.strip()] = _read_file(path, None, opts)
            sources[split.strip()] = str(path)
    elif Path(spec).exists():
        path = Path(spec)
        if path.is_dir() and (path / "dataset_dict.json").is_file():
            dd = _load_saved(path)
            if not isinstance(dd, datasets.DatasetDict):
                raise DataError("a dataset_dict.json beside a single dataset; expected the splits of save_to_disk",
                                str(path))
            for split, ds in dd.items():
                split_sents[split] = _sentences_from_dataset(ds, f"{path}[{split}]", opts.get("tag_key"))
                sources[split] = f"{path}[{split}]"
        elif path.is_dir() and (path / "dataset_info.json").is_file():
            split_sents["data"] = _read_file(path, "disk", opts)
            sources["data"] = str(path)
        elif path.is_dir():
            found = _find_split_files(path)
            if not found:
                split_sents, sources = _load_hub(str(path), None, opts.get("tag_key"))
            for split, p in found.items():
                split_sents[split] = _read_file(p, None, opts)
                sources[split] = str(p)
        else:
            split_sents["data"] = _read_file(path, None, opts)
            sources["data"] = str(path)
    elif spec.startswith(("/", "./", "../", "~")) or Path(spec).suffix.lower() in _FILE_SUFFIXES:
        raise DataError("no such file or folder; expected a corpus file (CoNLL, CoNLL-U, JSON lines, Parquet), "
                        "a folder of split files, a catalogue name or a hub id owner/name", spec)
    elif "/" in spec or spec.startswith("hf:"):
        hub_name, _, config = spec.removeprefix("hf:").partition(":")
        split_sents, sources = _load_hub(hub_name, config or None, opts.get("tag_key"))
    else:
        raise DataError(f"no corpus, file or folder named {spec!r}; known corpora: {', '.join(sorted(cat))}; "
                        f"a hub dataset is given as owner/name[:config] or hf:name[:config]")
    detected = _check_tags(task, split_sents, sources, scheme, strict, warn)
    labels = sorted({t for sents in split_sents.values() for s in sents for t in s.tags})
    dd = datasets.DatasetDict({split: _to_dataset(sents, labels) for split, sents in split_sents.items()})
    return Corpus(name, task, dd, detected, sources)


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
