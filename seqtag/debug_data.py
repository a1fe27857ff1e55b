"""``seqtag debug-data``: what a corpus holds and what training would make of it, before a run.

:func:`debug_data` reads a corpus the way ``seqtag train --dataset`` does and reports, per split,
sentences, tokens (and entities), the labels, the NER tag scheme (given, the catalogue's or detected)
with every repair loading makes (each broken tag with its ``file:line``), the rate of dev/test words
unseen in train (as written, and as ``word.v1`` looks them up), the entities dev and test share with
train, the sentence lengths, and warnings: a label of dev or test that train lacks, a missing split.

Nothing is checked twice: the corpus is read by the resolvers of :mod:`seqtag.data`, its tags are
checked and repaired by the one scheme check loading runs (``data._check_tags``), each broken position
is the one :func:`~seqtag.labels.invalid_positions` gives and described as that check describes it,
and what training says of an unseen dev/test label is :func:`~seqtag.workflow.check_gold_labels`'s
own message. :func:`render_report` prints the report as tables with ``rich``.
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from typing import Any, Iterable, Sequence

from .corpus import SPLIT_ALIASES, Corpus, token_line
from .data import DEFAULT_CORPUS, _breaks, _check_tags, _reader_options, _resolve
from .dataset_rows import describe_memory
from .errors import DataError, SeqtagError
from .labels import detect_scheme, invalid_positions, spans_from_tags, split_tag
from .readers import Sentence

__all__ = ["debug_data", "render_report", "LENGTH_BUCKETS"]

LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 40), (41, 80), (81, 160), (161, None))
"""The sentence-length histogram's buckets, in tokens (``None``: no upper bound)."""


def _bucket_name(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def _roles(corpus: Corpus) -> dict[str, str]:
    """The stored split that plays each part: ``train`` (the one split of a single file), ``dev``, ``test``."""
    roles: dict[str, str] = {}
    for role in ("train", "dev", "test"):
        if corpus.has_split(role) or (role == "train" and corpus.single):
            roles[role] = corpus.resolve(role)
    return roles


def _key(tag: str, ner: bool) -> str:
    """What a label is counted by: an NER tag's entity type (``""`` for ``O``), a POS tag itself."""
    return split_tag(tag)[1] if ner else tag


def debug_data(spec: Any = None, task: str = "ner", *, tag_column: Any = None,
               scheme: str | None = None) -> dict[str, Any]:
    """The report on a corpus, as plain data (what ``seqtag debug-data --json`` prints).

    Args:
        spec: What ``seqtag train --dataset`` takes (``None``: the task's default corpus).
        task: ``ner`` or ``pos``.
        tag_column: The tag column (``--tag-column``).
        scheme: The NER tag scheme of the data (``--scheme``; detected when ``None``).

    Returns:
        ``corpus``, ``task``, ``scheme`` (``name``; ``source``: given, catalogue or detected; and the
        scheme the tags are ``detected`` as), ``roles`` (the stored split that is train, dev, test),
        ``splits``, ``repairs`` (one entry per broken tag, with ``file`` and ``line``), ``load_warnings``
        (what loading for training prints), ``labels``, ``unknown_words``, ``entity_overlap`` (NER),
        ``lengths``, ``train_check`` (what training says of dev and test labels) and ``warnings`` (one
        line each).

    Raises:
        DataError: What loading the corpus for training raises (a missing file, a tag outside the
            IOB/BIOES scheme...), as one line.
    """
    ner = task == "ner"
    spec = spec or DEFAULT_CORPUS.get(task)
    if spec is None:
        raise DataError(f"no default corpus for task {task!r}; pass --dataset")
    found = _resolve(spec, _reader_options(tag_column, task))
    as_read = {split: [list(s.tags) for s in sents] for split, sents in found.splits.items()}
    given = scheme or found.scheme
    load_warnings: list[str] = []  # what seqtag train prints as it loads the corpus: the first repair per split
    detected = _check_tags(task, found.splits, found.sources, given, False, load_warnings.append)
    corpus = Corpus(spec if isinstance(spec, str) else describe_memory(spec), task, found.splits, detected,
                    found.sources)
    roles = _roles(corpus)
    report: dict[str, Any] = {
        "corpus": corpus.name, "task": task,
        "scheme": {"name": detected, "source": None if not ner else "given" if scheme else
                   "catalogue" if found.scheme else "detected",
                   "detected": detect_scheme(t for tags in as_read.values() for t in tags) if ner else None},
        "roles": roles,
        "splits": [_split_counts(split, corpus.source(split), sents, ner) for split, sents in found.splits.items()],
        "repairs": _repairs(found.splits, as_read, corpus, detected) if ner and detected else [],
        "load_warnings": load_warnings,
        "labels": _labels(found.splits, ner),
        "unknown_words": _unknown_words(found.splits, roles),
        "entity_overlap": _entity_overlap(found.splits, roles) if ner else [],
        "lengths": _lengths(found.splits),
    }
    report["train_check"] = _train_check(corpus, roles)
    report["warnings"] = _warnings(report, corpus, roles, ner)
    return report


def _split_counts(split: str, source: str, sents: Sequence[Sentence], ner: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"split": split, "source": source, "sentences": len(sents),
                           "tokens": sum(len(s.tokens) for s in sents)}
    if ner:
        out["entities"] = sum(len(spans_from_tags(s.tags)) for s in sents)
    return out


def _repairs(splits: dict[str, list[Sentence]], as_read: dict[str, list[list[str]]], corpus: Corpus,
             scheme: str) -> list[dict[str, Any]]:
    """Every tag that breaks ``scheme`` as read, where it is, what is wrong, and the tag the repair made."""
    out = []
    for split, sents in splits.items():
        src = corpus.source(split)
        for s, tags in zip(sents, as_read[split]):
            for i in invalid_positions(tags, scheme):
                out.append({"split": split, "file": src, "line": token_line(src, s.line, i), "token": s.tokens[i],
                            "tag": tags[i], "repaired": s.tags[i], "problem": _breaks(tags, i, scheme),
                            "sentence_line": s.line})
    return out


def _labels(splits: dict[str, list[Sentence]], ner: bool) -> dict[str, Any]:
    """Entities per type (NER) or tokens per tag (POS), per split."""
    counts: dict[str, dict[str, int]] = {}
    for split, sents in splits.items():
        seen: Counter[str] = Counter()
        for s in sents:
            seen.update([t for _, _, t in spans_from_tags(s.tags)] if ner else s.tags)
        for label, n in seen.items():
            counts.setdefault(label, {})[split] = n
    return {"counted": "entities" if ner else "tokens", "counts": dict(sorted(counts.items()))}


def _unknown_words(splits: dict[str, list[Sentence]], roles: dict[str, str]) -> list[dict[str, Any]]:
    """Per split but train: the tokens and distinct words not in train, as written and as ``word.v1`` looks
    words up (lower-cased, digits as 0, its defaults)."""
    from .embeddings.word import normalize_word

    train = roles.get("train")
    if train is None:
        return []
    words = {w for s in splits[train] for w in s.tokens}
    looked_up = {normalize_word(w, True, True) for w in words}
    out = []
    for split, sents in splits.items():
        if split == train:
            continue
        tokens = [w for s in sents for w in s.tokens]
        unknown = [w for w in tokens if w not in words]
        out.append({"split": split, "tokens": len(tokens), "unknown": len(unknown),
                    "unknown_lookup": sum(normalize_word(w, True, True) not in looked_up for w in unknown),
                    "types": len(set(tokens)), "unknown_types": len(set(unknown))})
    return out


def _entities(sents: Iterable[Sentence]) -> Counter[tuple[str, str]]:
    """The entity mentions of sentences, as ``(text, type)`` counts."""
    return Counter((" ".join(s.tokens[a:b]), t) for s in sents for a, b, t in spans_from_tags(s.tags))


def _entity_overlap(splits: dict[str, list[Sentence]], roles: dict[str, str]) -> list[dict[str, Any]]:
    """For dev and test against train, and test against dev: the mentions and distinct entities (same
    text, same type) the first split shares with the second."""
    ents = {role: _entities(splits[split]) for role, split in roles.items()}
    out = []
    for first, second in (("dev", "train"), ("test", "train"), ("test", "dev")):
        if first in ents and second in ents:
            mine, theirs = ents[first], ents[second]
            out.append({"split": roles[first], "with": roles[second], "mentions": sum(mine.values()),
                        "mentions_shared": sum(n for e, n in mine.items() if e in theirs),
                        "entities": len(mine), "entities_shared": sum(e in theirs for e in mine)})
    return out


def _lengths(splits: dict[str, list[Sentence]]) -> dict[str, Any]:
    """Sentences per length bucket (:data:`LENGTH_BUCKETS`), and the shortest, mean and longest, per split."""
    hist: dict[str, list[int]] = {}
    stats: dict[str, dict[str, float]] = {}
    for split, sents in splits.items():
        lengths = [len(s.tokens) for s in sents]
        hist[split] = [sum(low <= n and (high is None or n <= high) for n in lengths) for low, high in LENGTH_BUCKETS]
        hist[split][0] += sum(n < 1 for n in lengths)
        if lengths:
            stats[split] = {"min": min(lengths), "mean": round(sum(lengths) / len(lengths), 1), "max": max(lengths)}
    return {"buckets": [_bucket_name(*b) for b in LENGTH_BUCKETS], "sentences": hist, "stats": stats}


def _train_check(corpus: Corpus, roles: dict[str, str]) -> list[dict[str, Any]]:
    """What ``seqtag train`` says of dev and test tags its training split lacks: the message of
    :func:`~seqtag.workflow.check_gold_labels` (an error for NER, a warning for POS), per split."""
    from .workflow import check_gold_labels

    if "train" not in roles:
        return []
    labels = sorted({t for _, tags in corpus.sentences("train") for t in tags})
    gold_scheme = "IOB2" if corpus.task == "ner" else None
    out = []
    for role in ("dev", "test"):
        if role not in roles:
            continue
        said: list[str] = []
        try:
            check_gold_labels(corpus.task, labels, corpus, role, corpus.sentences(role, gold_scheme),
                              warn=said.append, owner="training split")
        except SeqtagError as exc:
            out.append({"split": roles[role], "stops": True, "message": exc.one_line()})
            continue
        out += [{"split": roles[role], "stops": False, "message": msg} for msg in said]
    return out


def _warnings(report: dict[str, Any], corpus: Corpus, roles: dict[str, str], ner: bool) -> list[str]:
    """One line per thing to look at before training."""
    out: list[str] = []
    if "train" not in roles:
        out.append(f"no train split (the splits: {', '.join(corpus.split_names)}); seqtag train needs one")
    if "dev" not in roles and "train" in roles:
        out.append("no dev split: seqtag train holds 10% of the training sentences out to choose the model by")
    if "test" not in roles and not corpus.single:
        out.append("no test split: training reports no test score")
    extra = [s for s in corpus.split_names if s not in roles.values()]
    if extra:
        out.append(f"split(s) {', '.join(extra)} are not used by training (it reads "
                   f"{', '.join(sorted({a for aliases in SPLIT_ALIASES.values() for a in aliases}))})")
    scheme = report["scheme"]
    if scheme["source"] in ("given", "catalogue") and scheme["detected"] != scheme["name"]:
        out.append(f"the tags read as {scheme['detected']}, not {scheme['name']} "
                   f"({'--scheme' if scheme['source'] == 'given' else 'the catalogue'} says {scheme['name']}); "
                   f"pass --scheme {scheme['detected']} if the data is {scheme['detected']}")
    broken: Counter[str] = Counter(r["split"] for r in report["repairs"])
    for split, n in broken.items():
        sentences = len({r["sentence_line"] for r in report["repairs"] if r["split"] == split})
        out.append(f"{split}: {n} tag(s) in {sentences} sentence(s) break {report['scheme']['name']}; loading "
                   f"repairs them (see Repairs), --strict refuses them")
    if "train" in roles:
        out += _unseen_labels(corpus, roles, ner)
    out += [f"seqtag train {'stops' if c['stops'] else 'warns'}: {c['message']}" for c in report["train_check"]]
    return out


def _unseen_labels(corpus: Corpus, roles: dict[str, str], ner: bool) -> list[str]:
    """A line for each label (NER: entity type) of a split but train that train never has, with its count
    and its first ``file:line``."""
    train = roles["train"]
    known = {_key(t, ner) for _, tags in corpus.sentences(train) for t in tags}
    out = []
    for split in corpus.split_names:
        if split == train:
            continue
        src = corpus.source(split)
        first: dict[str, int] = {}
        count: Counter[str] = Counter()
        for (_, tags), line in zip(corpus.sentences(split), corpus.lines(split)):
            for i, tag in enumerate(tags):
                key = _key(tag, ner)
                if key and key not in known:
                    count[key] += 1
                    first.setdefault(key, token_line(src, line, i))
        what = "entity type" if ner else "tag"
        for key, n in count.items():
            out.append(f"{split}: the {what} {key!r} never occurs in {train} ({n} token(s), the first at "
                       f"{src}:{first[key]})")
    return out


# -- printing -------------------------------------------------------------------------------------------

def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def render_report(report: dict[str, Any], console: Any = None) -> None:
    """Print a :func:`debug_data` report as aligned tables on ``console`` (a ``rich.console.Console``;
    default: standard output, colour only on a terminal)."""
    from rich.console import Console

    if console is None:
        if sys.stdout.isatty():
            _render(report, Console(highlight=False, emoji=False))
        else:  # a file or a pipe: no colour, lines as wide as they are, no padding at their ends
            buffer = io.StringIO()
            _render(report, Console(file=buffer, highlight=False, emoji=False, no_color=True, width=240))
            sys.stdout.write("".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines()))
        return
    _render(report, console)


def _render(report: dict[str, Any], console: Any) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def section(title: str) -> None:
        console.print()
        console.print(Text(title, style="bold"))

    def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1, fold: int = -1) -> None:
        """Left-aligned text in the first ``left`` columns, numbers after. Only column ``fold`` (a long
        text) is folded on a narrow terminal: a file, a ``file:line`` or a number stays whole."""
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i < left else "right", no_wrap=i != fold,
                         overflow="fold" if i == fold else "ignore" if i < left else "ellipsis")
        for row in rows:
            t.add_row(*(Text(str(c)) for c in row))
        console.print(t)

    ner = report["task"] == "ner"
    scheme = report["scheme"]
    console.print(Text(f"{report['corpus']} ({report['task']})", style="bold"))
    if ner:
        how = {"given": "--scheme", "catalogue": "the catalogue's"}.get(scheme["source"], scheme["source"])
        if scheme["source"] != "detected":
            how += f"; the tags read as {scheme['detected']}"
        console.print(Text(f"tag scheme: {scheme['name']} ({how})"))
    section("Splits")
    table(["split", "file", "sentences", "tokens", *(["entities"] if ner else [])],
          [[s["split"], s["source"], s["sentences"], s["tokens"], *([s["entities"]] if ner else [])]
           for s in report["splits"]], left=2)
    if ner:
        section(f"Repairs ({len(report['repairs'])} tag(s) breaking {scheme['name']})")
        if report["repairs"]:
            table(["where", "token", "tag", "repaired", "problem"],
                  [[f"{r['file']}:{r['line']}", r["token"], r["tag"], r["repaired"], r["problem"]]
                   for r in report["repairs"]], left=5, fold=4)
        else:
            console.print(Text("none: every sequence is valid"))
    splits = [s["split"] for s in report["splits"]]
    labels = report["labels"]
    section(f"Labels ({labels['counted']} per {'entity type' if ner else 'tag'})")
    table(["label", *splits], [[lab, *(c.get(s, 0) for s in splits)] for lab, c in labels["counts"].items()])
    section("Unknown words (not in train)")
    if report["unknown_words"]:
        table(["split", "tokens", "unknown", "rate", "rate lower-cased, digits as 0", "word types", "unknown types"],
              [[u["split"], u["tokens"], u["unknown"], _percent(u["unknown"], u["tokens"]),
                _percent(u["unknown_lookup"], u["tokens"]), u["types"],
                f"{u['unknown_types']} ({_percent(u['unknown_types'], u['types'])})"] for u in report["unknown_words"]])
    else:
        console.print(Text("no train split, or no other split to compare"))
    if ner:
        section("Entity overlap (same text and type)")
        if report["entity_overlap"]:
            table(["split", "with", "mentions", "shared", "entities", "shared"],
                  [[o["split"], o["with"], o["mentions"],
                    f"{o['mentions_shared']} ({_percent(o['mentions_shared'], o['mentions'])})", o["entities"],
                    f"{o['entities_shared']} ({_percent(o['entities_shared'], o['entities'])})"]
                   for o in report["entity_overlap"]], left=2)
        else:
            console.print(Text("one split only"))
    lengths = report["lengths"]
    section("Sentence lengths (tokens)")
    rows = [[b, *(lengths["sentences"][s][i] for s in splits)] for i, b in enumerate(lengths["buckets"])]
    for stat in ("min", "mean", "max"):
        rows.append([stat, *(lengths["stats"].get(s, {}).get(stat, "-") for s in splits)])
    table(["length", *splits], rows)
    section(f"Warnings ({len(report['warnings'])})")
    for w in report["warnings"]:
        console.print(Text(f"- {w}"), overflow="fold")
    if not report["warnings"]:
        console.print(Text("none"))
