"""Streamed training corpora (seqtag.streaming): the first pass (scheme, labels, sample, its cap), batches that
cover each sentence once per epoch and per rank, shuffled by (seed, epoch), NER tags repaired and converted as
they stream, one-line errors that point at the line or row, and memory bounded by the shuffle buffer."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pytest

from seqtag.errors import DataError, HubUnavailableError
from seqtag.labels import convert, is_valid, spans_from_tags, tags_from_spans
from seqtag.readers import iter_conll, read_conll
from seqtag.streaming import CAP_HINT, STREAM_SAMPLE, WINDOW_BATCHES, scheme_labels, stream_corpus

TYPES = ("PER", "LOC", "ORG")


def make_sentences(n: int, seed: int = 0, types: tuple[str, ...] = TYPES, scheme: str = "IOB1",
                   max_len: int = 12) -> list[tuple[list[str], list[str]]]:
    """``n`` sentences with a unique first token (``s{i}``) and entities of ``types`` tagged in ``scheme``
    (IOB1 by default, with adjacent entities of one type, so that ``B-`` occurs too)."""
    rng = random.Random(seed)
    sents = []
    for i in range(n):
        length = 1 + rng.randrange(max_len)
        tokens = [f"s{i}"] + [f"w{rng.randrange(50)}" for _ in range(length - 1)]
        spans, j = [], 0
        while j < length:
            if rng.random() < 0.3:
                end = min(length, j + 1 + rng.randrange(3))
                spans.append((j, end, rng.choice(types)))
                j = end if rng.random() < 0.5 else end + 1  # sometimes two entities touch
            else:
                j += 1
        sents.append((tokens, tags_from_spans(spans, length, scheme)))
    return sents


def write_conll(path: Path, sents: list[tuple[list[str], list[str]]]) -> list[int]:
    """A CoNLL file (``token POS tag``, a -DOCSTART- line first); returns the line each sentence starts on."""
    lines, starts = ["-DOCSTART- -X- O", ""], []
    for tokens, tags in sents:
        starts.append(len(lines) + 1)
        lines.extend(f"{tok} NN {tag}" for tok, tag in zip(tokens, tags))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return starts


def write_jsonl(path: Path, sents: list[tuple[list[str], list[str]]]) -> None:
    path.write_text("".join(json.dumps({"tokens": t, "ner_tags": g}) + "\n" for t, g in sents), encoding="utf-8")


@pytest.fixture
def conll_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_conll(folder / "train.conll", make_sentences(300))
    write_conll(folder / "dev.conll", make_sentences(20, seed=1))
    write_conll(folder / "test.conll", make_sentences(20, seed=2))
    return folder


def epoch(corpus, epoch_no: int = 0, batch_size: int = 8, seed: int = 0, **kw) -> list[list[tuple]]:
    return list(corpus.train.batches(epoch_no, batch_size, seed, **kw))


def ids(batches) -> list[str]:
    return [tokens[0] for batch in batches for tokens, _ in batch]


def order(batches) -> list[list[str]]:
    return [[tokens[0] for tokens, _ in batch] for batch in batches]


# -- the first pass --------------------------------------------------------------------------------------------

def test_first_pass_gives_scheme_labels_and_sample_in_the_training_scheme(conll_folder: Path) -> None:
    train = make_sentences(300)
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES")
    split = corpus.train
    assert split.scheme == "IOB1" and split.train_scheme == "BIOES"
    assert split.labels == scheme_labels(TYPES, "BIOES") and "S-PER" in split.labels and "O" in split.labels
    assert split.sample == [(t, convert(g, "IOB1", "BIOES")) for t, g in train]
    assert split.source == str(conll_folder / "train.conll")
    assert corpus.sources == {"train": str(conll_folder / "train.conll"), "dev": str(conll_folder / "dev.conll"),
                              "test": str(conll_folder / "test.conll")}
    assert corpus.dev == [(t, convert(g, "IOB1", "IOB2")) for t, g in make_sentences(20, seed=1)]
    assert corpus.test is not None and len(corpus.test) == 20
    assert STREAM_SAMPLE == 20_000 and split.sample_size == STREAM_SAMPLE


def test_the_cap_bounds_the_first_pass(conll_folder: Path) -> None:
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="IOB2", sample_size=7)
    assert [t for t, _ in corpus.train.sample] == [t for t, _ in make_sentences(300)[:7]]
    assert len(ids(epoch(corpus))) == 300  # the cap bounds the first pass only


def test_iob1_arrives_in_bioes(conll_folder: Path) -> None:
    source = {t[0]: g for t, g in make_sentences(300)}
    batches = epoch(stream_corpus(str(conll_folder), "ner", train_scheme="BIOES"))
    tagged = [(tokens, tags) for batch in batches for tokens, tags in batch]
    assert any(t.startswith(("E-", "S-")) for _, tags in tagged for t in tags)
    for tokens, tags in tagged:
        assert is_valid(tags, "BIOES")
        assert spans_from_tags(tags) == spans_from_tags(source[tokens[0]])


def test_pos_tags_stream_as_they_are(tmp_path: Path) -> None:
    rows = []
    for i in range(30):
        rows.append(f"# sent_id = {i}")
        rows += [f"{k + 1}\tw{i}_{k}\t_\t{'NOUN' if k % 2 else 'VERB'}\tNN\t_\t0\t_\t_\t_" for k in range(1 + i % 4)]
        rows.append("")
    text = "\n".join(rows) + "\n"
    for name in ("train.conllu", "dev.conllu"):
        (tmp_path / name).write_text(text, encoding="utf-8")
    corpus = stream_corpus(str(tmp_path), "pos", train_scheme=None)
    assert corpus.train.scheme is None and corpus.train.labels == ["NOUN", "VERB"]
    batches = epoch(corpus, batch_size=4)
    assert sum(len(b) for b in batches) == 30
    assert {t for b in batches for _, tags in b for t in tags} == {"NOUN", "VERB"}
    assert corpus.test is None


# -- batches: coverage, shards, order ------------------------------------------------------------------------

def test_an_epoch_covers_every_sentence_once(conll_folder: Path) -> None:
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES")
    batches = epoch(corpus, batch_size=8, buffer_size=50)
    assert sorted(ids(batches)) == sorted(t[0] for t, _ in make_sentences(300))
    assert sum(len(t) for b in batches for t, _ in b) == sum(len(t) for t, _ in make_sentences(300))
    assert all(1 <= len(b) <= 8 for b in batches)


def test_two_ranks_share_the_corpus_without_overlap(conll_folder: Path) -> None:
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES")
    rank0 = ids(epoch(corpus, 3, buffer_size=40, rank=0, world_size=2))
    rank1 = ids(epoch(corpus, 3, buffer_size=40, rank=1, world_size=2))
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == sorted(t[0] for t, _ in make_sentences(300))
    assert abs(len(rank0) - len(rank1)) <= 1


def test_order_follows_seed_and_epoch(conll_folder: Path) -> None:
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES")
    first = order(epoch(corpus, 0, buffer_size=64))
    assert order(epoch(corpus, 0, buffer_size=64)) == first
    assert order(epoch(corpus, 1, buffer_size=64)) != first
    assert order(epoch(corpus, 0, seed=1, buffer_size=64)) != first
    assert sorted(ids(epoch(corpus, 1, buffer_size=64))) == sorted(sum(first, []))

    def first_window(batches: list[list[str]]) -> set[str]:  # a window is 64 sentences here: 8 batches of 8
        return set(sum(batches[:8], []))

    # the shuffle buffer itself draws by (seed, epoch), not only the batches cut from it
    assert first_window(order(epoch(corpus, 1, buffer_size=64))) != first_window(first)
    assert first_window(order(epoch(corpus, 0, seed=1, buffer_size=64))) != first_window(first)
    assert first_window(first) != {f"s{i}" for i in range(64)}


def test_batches_are_bucketed_by_length_within_a_window(tmp_path: Path) -> None:
    write_conll(tmp_path / "train.conll", make_sentences(2000, max_len=40))
    write_conll(tmp_path / "dev.conll", make_sentences(5, seed=1))
    corpus = stream_corpus(str(tmp_path), "ner", train_scheme="BIOES")
    batches = epoch(corpus, batch_size=8, buffer_size=1000)
    spreads = [max(len(t) for t, _ in b) - min(len(t) for t, _ in b) for b in batches if len(b) == 8]
    assert sum(spreads) / len(spreads) < 5  # unsorted batches of lengths 1..40 spread ~30
    assert WINDOW_BATCHES * 8 <= 1000


# -- JSON lines, Parquet, hub-like folders ---------------------------------------------------------------------

def test_jsonl_streams_through_load_dataset(tmp_path: Path) -> None:
    train = make_sentences(120, scheme="IOB2")
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", make_sentences(10, seed=1, scheme="IOB2"))
    corpus = stream_corpus(str(tmp_path), "ner", train_scheme="BIOES", sample_size=50)
    assert corpus.train.scheme == "IOB2" and len(corpus.train.sample) == 50
    assert corpus.train.labels == scheme_labels(TYPES, "BIOES")
    got = {tokens[0]: tags for b in epoch(corpus, buffer_size=16) for tokens, tags in b}
    assert got == {t[0]: convert(g, "IOB2", "BIOES") for t, g in train}


def _parquet(path: Path, sents, names: list[str]) -> None:
    import datasets

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    index = {n: i for i, n in enumerate(names)}
    datasets.Dataset.from_dict({"tokens": [t for t, _ in sents], "ner_tags": [[index[x] for x in g] for _, g in sents]},
                               features=features).to_parquet(str(path))


NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def test_parquet_labels_come_from_classlabel_features(tmp_path: Path) -> None:
    train = make_sentences(80, scheme="IOB2")  # no MISC in the data, but among the label names
    _parquet(tmp_path / "train.parquet", train, NAMES)
    _parquet(tmp_path / "validation.parquet", make_sentences(10, seed=1, scheme="IOB2"), NAMES)
    corpus = stream_corpus(str(tmp_path), "ner", train_scheme="BIOES")
    assert corpus.train.labels == scheme_labels((*TYPES, "MISC"), "BIOES")
    got = {tokens[0]: tags for b in epoch(corpus) for tokens, tags in b}
    assert got == {t[0]: convert(g, "IOB2", "BIOES") for t, g in train}


def test_a_hub_like_folder_streams_its_splits_and_shards(tmp_path: Path) -> None:
    """A folder laid out like a hub dataset goes through load_dataset(folder, streaming=True), as a hub id does;
    two training files are two shards, which two ranks split between them."""
    data = tmp_path / "repo" / "data"
    data.mkdir(parents=True)
    train = make_sentences(100, scheme="IOB2")
    _parquet(data / "train-00000-of-00002.parquet", train[:50], NAMES)
    _parquet(data / "train-00001-of-00002.parquet", train[50:], NAMES)
    _parquet(data / "validation-00000-of-00001.parquet", make_sentences(10, seed=1, scheme="IOB2"), NAMES)
    corpus = stream_corpus(str(tmp_path / "repo"), "ner", train_scheme="IOB2")
    assert corpus.sources["train"] == f"{tmp_path / 'repo'}[train]" and corpus.dev is not None
    assert sorted(ids(epoch(corpus))) == sorted(t[0] for t, _ in train)
    rank0, rank1 = (ids(epoch(corpus, 2, rank=r, world_size=2)) for r in (0, 1))
    assert not set(rank0) & set(rank1) and sorted(rank0 + rank1) == sorted(t[0] for t, _ in train)


def test_saved_splits_and_datasets_in_memory(tmp_path: Path) -> None:
    import datasets

    train = make_sentences(40, scheme="IOB2")
    _parquet(tmp_path / "t.parquet", train, NAMES)
    _parquet(tmp_path / "d.parquet", make_sentences(5, seed=1, scheme="IOB2"), NAMES)
    splits = {"train": datasets.Dataset.from_parquet(str(tmp_path / "t.parquet")),
              "validation": datasets.Dataset.from_parquet(str(tmp_path / "d.parquet"))}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "saved"))
    saved = stream_corpus(str(tmp_path / "saved"), "ner", train_scheme="BIOES")
    assert saved.sources["train"] == f"{tmp_path / 'saved'}[train]" and len(saved.dev or []) == 5
    in_memory = stream_corpus({"train": splits["train"].to_iterable_dataset(), "validation": splits["validation"]},
                              "ner", train_scheme="BIOES")
    assert in_memory.name == "<train: IterableDataset, validation: Dataset>"
    for corpus in (saved, in_memory):
        assert corpus.train.labels == scheme_labels((*TYPES, "MISC"), "BIOES")
        assert sorted(ids(epoch(corpus))) == sorted(t[0] for t, _ in train)


def test_a_catalogue_corpus_streams_its_hub_copy_in_the_hub_copys_scheme(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conll2003 without its files streams its hub copy, whose tags are IOB2 (the files' are IOB1): read as
    IOB1, every entity's B- would be a sequence to repair."""
    import datasets

    from seqtag import streaming

    opened: list[tuple] = []

    def fake_hub(name: str, config: str | None, revision: str | None = None, *, streaming: bool = False) -> dict:
        opened.append((name, config, revision, streaming))
        rows = [{"tokens": t, "ner_tags": g} for t, g in make_sentences(40, scheme="IOB2")]
        return {"train": datasets.Dataset.from_list(rows).to_iterable_dataset(),
                "validation": datasets.Dataset.from_list(rows[:5]), "test": datasets.Dataset.from_list(rows[5:10])}

    monkeypatch.setenv("SEQTAG_CORPORA", str(tmp_path))  # no files there
    monkeypatch.setattr(streaming, "_open_hub", fake_hub)
    warnings: list[str] = []
    corpus = stream_corpus("conll2003", "ner", train_scheme=None, warn=warnings.append)
    assert opened == [("eriktks/conll2003", None, "refs/convert/parquet", True)]
    assert corpus.train.scheme == "IOB2" and warnings == []
    assert sorted(ids(epoch(corpus))) == sorted(f"s{i}" for i in range(40))


def test_a_hub_id_offline_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="cannot be streamed offline") as info:
        stream_corpus("someone/some-corpus", "ner", train_scheme="BIOES")
    assert "\n" not in str(info.value)


# -- errors that point at the data ----------------------------------------------------------------------------

def test_a_type_unseen_in_the_first_pass_names_its_line(conll_folder: Path) -> None:
    train = make_sentences(300)
    tokens, _ = train[150]
    train[150] = (tokens, ["O"] * (len(tokens) - 1) + ["I-MISC"])
    starts = write_conll(conll_folder / "train.conll", train)
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES", sample_size=100)
    assert "S-MISC" not in corpus.train.labels
    with pytest.raises(DataError) as info:
        epoch(corpus)
    message = str(info.value)
    assert message.startswith(f"{conll_folder / 'train.conll'}:{starts[150] + len(tokens) - 1}: ")
    assert "'MISC'" in message and "first pass" in message and "\n" not in message
    # the whole file in the first pass: MISC is a label then
    assert "S-MISC" in stream_corpus(str(conll_folder), "ner", train_scheme="BIOES").train.labels


def test_a_tag_unseen_in_a_jsonl_names_its_row(tmp_path: Path) -> None:
    train = make_sentences(60, scheme="IOB2")
    train[40] = (train[40][0], ["B-MISC"] + ["O"] * (len(train[40][0]) - 1))
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "dev.jsonl", make_sentences(5, seed=1, scheme="IOB2"))
    corpus = stream_corpus(str(tmp_path), "ner", train_scheme="BIOES", sample_size=30)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'train.jsonl'}:41: the entity type 'MISC'"):
        epoch(corpus, buffer_size=8)


def test_pos_tag_unseen_in_the_first_pass(tmp_path: Path) -> None:
    rows = [({"tokens": ["a", "b"], "upos": ["DET", "NOUN"]}) for _ in range(20)] + \
        [{"tokens": ["c"], "upos": ["INTJ"]}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    corpus = stream_corpus(str(tmp_path), "pos", train_scheme=None, sample_size=10)
    with pytest.raises(DataError, match=r"train\.jsonl:21: the tag 'INTJ' is not among"):
        epoch(corpus)


def test_broken_sequences_after_the_first_pass(conll_folder: Path) -> None:
    train = make_sentences(200, scheme="IOB2")
    tokens, _ = train[120]
    train[120] = (tokens, ["O"] * (len(tokens) - 1) + ["I-PER"])  # breaks IOB2
    starts = write_conll(conll_folder / "train.conll", train)
    for name in ("dev.conll", "test.conll"):
        write_conll(conll_folder / name, make_sentences(10, seed=3, scheme="IOB2"))
    strict = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES", scheme="IOB2", strict=True,
                           sample_size=50)
    with pytest.raises(DataError, match=rf":{starts[120] + len(tokens) - 1}: 'I-PER' after 'O' breaks IOB2"):
        epoch(strict)
    warnings: list[str] = []
    lenient = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES", scheme="IOB2", sample_size=50,
                            warn=warnings.append)
    got = {t[0]: tags for _ in range(2) for b in epoch(lenient) for t, tags in b}
    assert got[tokens[0]][-1] == "S-PER"
    assert len(warnings) == 1 and "repaired" in warnings[0]  # once, not per sentence or per epoch


def test_broken_sequences_in_the_first_pass_are_checked_there(conll_folder: Path) -> None:
    train = make_sentences(50, scheme="IOB2")
    train[3] = (train[3][0], ["I-LOC"] + ["O"] * (len(train[3][0]) - 1))
    write_conll(conll_folder / "train.conll", train)
    with pytest.raises(DataError, match="breaks IOB2"):
        stream_corpus(str(conll_folder), "ner", train_scheme="BIOES", scheme="IOB2", strict=True)
    warnings: list[str] = []
    corpus = stream_corpus(str(conll_folder), "ner", train_scheme="BIOES", scheme="IOB2", warn=warnings.append)
    epoch(corpus)
    assert sum("train.conll" in w for w in warnings) == 1


def test_no_dev_split_is_refused(conll_folder: Path) -> None:
    with pytest.raises(DataError, match="one file") as info:
        stream_corpus(str(conll_folder / "train.conll"), "ner", train_scheme="BIOES")
    assert "\n" not in str(info.value)
    (conll_folder / "dev.conll").unlink()
    (conll_folder / "test.conll").unlink()
    with pytest.raises(DataError, match="needs a dev split"):
        stream_corpus(str(conll_folder), "ner", train_scheme="BIOES")
    with pytest.raises(DataError, match="no such file"):
        stream_corpus(str(conll_folder / "missing.conll"), "ner", train_scheme="BIOES")


def test_split_list_and_catalogue_forms(conll_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = f"train={conll_folder / 'train.conll'},dev={conll_folder / 'dev.conll'}"
    corpus = stream_corpus(spec, "ner", train_scheme="BIOES")
    assert corpus.name == spec and corpus.test is None and len(ids(epoch(corpus))) == 300
    # a catalogue name: its files under SEQTAG_CORPORA, read with the entry's columns and scheme
    root = conll_folder.parent / "root"
    (root / "conll2003").mkdir(parents=True)
    for src, dst in (("train.conll", "eng.train"), ("dev.conll", "eng.testa"), ("test.conll", "eng.testb")):
        (root / "conll2003" / dst).write_text((conll_folder / src).read_text(encoding="utf-8").replace(" NN ", " NN B-NP "),
                                              encoding="utf-8")
    monkeypatch.setenv("SEQTAG_CORPORA", str(root))
    corpus = stream_corpus("conll2003", "ner", train_scheme="BIOES")
    assert corpus.name == "conll2003" and corpus.train.scheme == "IOB1" and len(ids(epoch(corpus))) == 300


def test_the_cap_hint_names_a_setting_that_sets_the_cap() -> None:
    import re

    from seqtag.config import build_config

    setting = re.search(r"--set (\S+=)N\b", CAP_HINT)
    assert setting is not None, CAP_HINT
    assert build_config("ner", overrides=[setting.group(1) + "123"])["data"]["stream_sample"] == 123


def test_the_column_reader_gives_sentences_before_reading_on(conll_folder: Path) -> None:
    """Streamed column files go through iter_conll: a sentence comes out before a bad line further on is
    read, and read_conll is the same reader read to the end."""
    path = conll_folder / "train.conll"
    assert [(s.tokens, s.tags, s.line) for s in iter_conll(path)] == \
        [(s.tokens, s.tags, s.line) for s in read_conll(path)]
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = len(lines) - 1
    lines[bad - 1] += " extra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sents = iter_conll(path)
    assert next(sents).line == 3
    with pytest.raises(DataError, match=rf":{bad}: expected 3 columns \(as on line 3\), found 4"):
        list(sents)
    (conll_folder / "empty.conll").write_text("-DOCSTART- -X- O\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"the file is empty \(no sentences, only comments"):
        next(iter_conll(conll_folder / "empty.conll"))


# -- memory: the buffer, not the file ------------------------------------------------------------------------

def test_batches_hold_the_buffer_not_the_file(tmp_path: Path) -> None:
    sents = [([f"t{i}", "a", "b", "c", "d"], ["B-PER", "I-PER", "O", "B-LOC", "O"]) for i in range(50_000)]
    path = tmp_path / "train.conll"
    write_conll(path, sents)
    write_conll(tmp_path / "dev.conll", sents[:5])
    corpus = stream_corpus(str(tmp_path), "ner", train_scheme="BIOES", scheme="IOB2", sample_size=100)
    next(iter(corpus.train.batches(0, 16, 0, buffer_size=64)))  # warm-up: lazy imports and caches
    tracemalloc.start()
    try:
        count = 0
        for batch in corpus.train.batches(1, 16, 0, buffer_size=64):
            count += len(batch)
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        tracemalloc.clear_traces()
        loaded = read_conll(path)
        whole = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 50_000 and len(loaded) == 50_000
    assert streamed < whole / 10, (streamed, whole)
