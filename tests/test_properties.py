"""Property-based tests (hypothesis): tag-scheme conversions and the corpus readers.

Every test has a fixed budget (``max_examples``, no deadline) and ``derandomize=True``, so a CI run
tries the same examples each time and takes bounded time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtag.errors import DataError, SeqtagError
from seqtag.labels import (
    SCHEMES,
    allowed_transitions,
    convert,
    detect_scheme,
    invalid_positions,
    is_valid,
    spans_from_tags,
    split_tag,
    tags_from_spans,
)
from seqtag.readers import Sentence, read_conll, read_conllu, read_jsonl

FAST = settings(max_examples=200, deadline=None, derandomize=True)
FILES = settings(max_examples=150, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TYPES = ["PER", "LOC", "ORG", "MISC", "B", "I-X", "e_mail"]

# -- tag schemes --------------------------------------------------------------------------------------


@st.composite
def span_sets(draw: st.DrawFn, max_len: int = 12) -> tuple[list[tuple[int, int, str]], int]:
    """Non-overlapping spans over a sentence of ``length`` tokens (adjacent spans included)."""
    length = draw(st.integers(0, max_len))
    spans, i = [], 0
    while i < length:
        i += draw(st.integers(0, 2))  # a gap of 0 makes adjacent spans
        if i >= length:
            break
        end = draw(st.integers(i + 1, min(length, i + 4)))
        spans.append((i, end, draw(st.sampled_from(TYPES))))
        i = end
    return spans, length


any_tag = st.one_of(
    st.just("O"),
    st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BIES"), st.sampled_from(TYPES)),
    st.sampled_from(["B_PER", "I_PER", "B-", "X-PER", "-", "", "o", "PER", "S-", "E"]),  # odd or outside the scheme
)
schemes = st.sampled_from(SCHEMES)


@FAST
@given(span_sets(), schemes)
def test_spans_encode_to_a_valid_sequence_that_decodes_to_them(spans_len: tuple, scheme: str) -> None:
    spans, length = spans_len
    tags = tags_from_spans(spans, length, scheme)
    assert len(tags) == length and is_valid(tags, scheme)
    assert spans_from_tags(tags, scheme) == sorted(spans)


@FAST
@given(span_sets(), schemes, schemes)
def test_round_trips_between_schemes_give_back_the_sequence(spans_len: tuple, a: str, b: str) -> None:
    spans, length = spans_len
    tags = tags_from_spans(spans, length, a)
    there = convert(tags, a, b)
    assert is_valid(there, b) and spans_from_tags(there, b) == sorted(spans)
    assert convert(there, b, a) == tags


@FAST
@given(st.lists(any_tag, max_size=14), schemes, schemes)
def test_convert_always_gives_a_valid_sequence_with_the_same_entities(tags: list[str], a: str, b: str) -> None:
    out = convert(tags, a, b)
    assert len(out) == len(tags) and is_valid(out, b)
    assert all(t == "O" or split_tag(t)[0] in "BIES" for t in out)
    if not (a == b and is_valid(tags, a)):  # a valid sequence is kept as it is (odd spellings such as B_PER too)
        assert spans_from_tags(out, b) == spans_from_tags(tags, a)
    assert convert(out, b, b) == out  # idempotent


@FAST
@given(st.lists(any_tag, max_size=14), schemes)
def test_invalid_positions_are_sorted_indices_and_repair_fixes_them(tags: list[str], scheme: str) -> None:
    bad = invalid_positions(tags, scheme)
    assert bad == sorted(set(bad)) and all(0 <= i < len(tags) for i in bad)
    assert (not bad) == is_valid(tags, scheme)
    repaired = convert(convert(tags, scheme, "IOB2"), "IOB2", scheme)  # what load_corpus does without --strict
    assert is_valid(repaired, scheme) and spans_from_tags(repaired, scheme) == spans_from_tags(tags, scheme)


@FAST
@given(st.lists(span_sets(), min_size=1, max_size=4), schemes)
def test_detect_scheme_recognises_each_scheme(corpus: list[tuple], scheme: str) -> None:
    sents = [tags_from_spans(spans, n, scheme) for spans, n in corpus]
    has_entity = any(spans for spans, _ in corpus)
    detected = detect_scheme(sents)
    if not has_entity:
        assert detected == "IOB2"
    elif scheme == "BIOES":
        assert detected == "BIOES"
    else:
        assert detected == scheme


@FAST
@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]),
                min_size=1, max_size=10), st.sampled_from(["IOB2", "BIOES"]))
def test_crf_constraints_allow_exactly_the_valid_sequences(tags: list[str], scheme: str) -> None:
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] + (["E-PER", "S-PER", "E-LOC", "S-LOC"] if scheme == "BIOES"
                                                          else [])
    tags = [t for t in tags if t in labels] or ["O"]
    start_ok, trans_ok, end_ok = allowed_transitions(labels, scheme)
    ix = [labels.index(t) for t in tags]
    allowed = start_ok[ix[0]] and end_ok[ix[-1]] and all(trans_ok[i][j] for i, j in zip(ix, ix[1:]))
    assert allowed == is_valid(tags, scheme)


# -- readers ------------------------------------------------------------------------------------------


def _read_any(reader: str, data: bytes) -> list[Sentence] | None:
    """Write ``data`` to a file and read it; ``None`` when the reader refused it with a one-line DataError."""
    suffix = {"conll": ".conll", "conllu": ".conllu", "jsonl": ".jsonl"}[reader]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        path.write_bytes(data)
        try:
            if reader == "conll":
                return read_conll(path)
            if reader == "conllu":
                return read_conllu(path)
            return read_jsonl(path)
        except DataError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and "\r" not in msg and msg == exc.one_line(), msg
            assert msg.startswith(str(path)), msg  # the file (and the line where it is known)
            return None


def _check_sentences(sents: list[Sentence], reader: str) -> None:
    assert sents
    for s in sents:
        assert s.tokens and len(s.tokens) == len(s.tags) and s.line >= 1
        assert all(isinstance(t, str) for t in s.tokens + s.tags)
        if reader == "conll":
            assert all(t and not any(c.isspace() for c in t) for t in s.tokens + s.tags)


readers = st.sampled_from(["conll", "conllu", "jsonl"])


@FILES
@given(readers, st.binary(max_size=300))
def test_any_bytes_give_sentences_or_a_one_line_data_error(reader: str, data: bytes) -> None:
    sents = _read_any(reader, data)
    if sents is not None:
        _check_sentences(sents, reader)


@FILES
@given(readers, st.text(max_size=300))
def test_any_text_gives_sentences_or_a_one_line_data_error(reader: str, text: str) -> None:
    sents = _read_any(reader, text.encode("utf-8", "surrogatepass"))
    if sents is not None:
        _check_sentences(sents, reader)


word = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
conll_line = st.one_of(
    st.just(""), st.just("  "), st.just("-DOCSTART- -X- O"), st.just("# comment"),
    st.lists(word, min_size=1, max_size=4).map(" ".join),
    st.builds(lambda w, t: f"{w} {t}", word, any_tag),
    st.builds(lambda w, t: f"{w}\tNN\t{t}", word, any_tag),
)
conllu_line = st.one_of(
    st.just(""), st.just("# text = x"),
    st.builds(lambda i, w, t: "\t".join([i, w, w, t, "_", "_", "0", "root", "_", "_"]),
              st.sampled_from(["1", "2", "3", "1-2", "2.1", "x", "٣"]), word, st.sampled_from(["NOUN", "VERB", ""])),
    st.lists(word, min_size=1, max_size=12).map("\t".join),
)
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | word,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(word, inner, max_size=3),
                          max_leaves=8)
jsonl_line = st.one_of(
    st.just(""), word, st.just("{"), st.just("[" * 5000), st.just("9" * 5000),
    st.builds(lambda toks, tags: json.dumps({"tokens": toks, "tags": tags}), st.lists(word, max_size=4),
              st.lists(st.one_of(any_tag, st.integers(0, 3)), max_size=4)),
    st.builds(lambda obj: json.dumps(obj), json_value),
)


@st.composite
def files(draw: st.DrawFn) -> tuple[str, list[str], bool]:
    reader = draw(readers)
    line = {"conll": conll_line, "conllu": conllu_line, "jsonl": jsonl_line}[reader]
    return reader, draw(st.lists(line, max_size=12)), draw(st.booleans())


@FILES
@given(files())
def test_structured_files_read_the_same_with_lf_crlf_and_a_bom(case: tuple[str, list[str], bool]) -> None:
    reader, lines, final_newline = case
    text = "\n".join(lines) + ("\n" if final_newline else "")
    lf = _read_any(reader, text.encode("utf-8"))
    crlf = _read_any(reader, text.replace("\n", "\r\n").encode("utf-8"))
    bom = _read_any(reader, b"\xef\xbb\xbf" + text.encode("utf-8"))
    if lf is None:
        assert crlf is None and bom is None
        return
    _check_sentences(lf, reader)
    assert crlf == lf
    if not text.startswith("\ufeff"):  # a second BOM would be text
        assert bom == lf


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conll_line, max_size=10), st.sampled_from(["ner", "pos"]), st.booleans())
def test_load_corpus_gives_a_dataset_or_a_one_line_seqtag_error(lines: list[str], task: str, strict: bool) -> None:
    from seqtag.data import load_corpus

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.conll"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            corpus = load_corpus(str(path), task, strict=strict, warn=lambda m: None)
        except SeqtagError as exc:
            assert "\n" not in str(exc) and str(exc) == exc.one_line()
            return
    ds = corpus.split("data")
    names = ds.features["tags"].feature.names
    assert names == sorted(names) and len(ds) >= 1
    if task == "ner":
        scheme = corpus.scheme or "IOB2"
        assert all(is_valid([names[i] for i in row], scheme) for row in ds["tags"])
