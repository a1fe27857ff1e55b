"""Corpora through datasets: each local format, the hub code path offline, tag schemes, catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqtag.data import catalogue, load_corpus
from seqtag.errors import DataError
from seqtag.labels import convert

from .conftest import SAMPLES, corpora_dir

CONLL = "EU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n"
IOB1 = "-DOCSTART- -X- O O\n\nEU NNP I-ORG\nrejects VBZ O\nGerman JJ I-MISC\n   \nPeter NNP I-PER\nBlackburn NNP I-PER\n"


def check(corpus, split: str = "data") -> None:
    ds = corpus.split(split)
    assert ds.column_names[:2] == ["tokens", "tags"]
    assert ds.features["tags"].feature.names == corpus.labels
    tags = [[corpus.labels[i] for i in row] for row in ds["tags"]]
    assert ds["tokens"][0] == ["EU", "rejects", "German"]
    assert tags[0] == ["B-ORG", "O", "B-MISC"] or tags[0] == ["I-ORG", "O", "I-MISC"]
    assert ds["tokens"][1] == ["Peter", "Blackburn"]


def test_conll_file(tmp_path: Path) -> None:
    f = tmp_path / "x.conll"
    f.write_text(CONLL)
    c = load_corpus(str(f), "ner")
    check(c)
    assert c.scheme == "IOB2" and c.split("data")["line"] == [1, 5]


def test_conll_iob1_docstart_and_whitespace_lines(tmp_path: Path) -> None:
    f = tmp_path / "x.conll"
    f.write_text(IOB1)
    c = load_corpus(str(f), "ner")
    check(c)
    assert c.scheme == "IOB1"
    assert c.sentences("data", "IOB2")[0][1] == ["B-ORG", "O", "B-MISC"]
    assert c.sentences("data", "BIOES")[1][1] == ["B-PER", "E-PER"]


def test_conll_documents_are_the_docstart_lines(tmp_path: Path) -> None:
    from seqtag.readers import read_conll

    f = tmp_path / "x.conll"
    f.write_text(IOB1 + "\n-DOCSTART- -X- O O\n\nAnna NNP I-PER\n\nBob NNP I-PER\n")
    starts: list[int] = []
    sents = read_conll(f, documents=starts)
    assert starts == [1, 10]  # the -DOCSTART- lines, none of them a sentence
    assert [s.tokens[0] for s in sents] == ["EU", "Peter", "Anna", "Bob"]
    assert [sum(s.line > d for d in starts) for s in sents] == [1, 1, 2, 2]  # each sentence's document
    assert read_conll(f) == sents  # without the list, the same sentences


def test_conll_tag_column_choice(tmp_path: Path) -> None:
    f = tmp_path / "x.conll"
    f.write_text(CONLL)
    c = load_corpus(str(f), "pos", tag_column="1")
    assert c.sentences("data")[0][1] == ["NNP", "VBZ", "JJ"]


def test_conllu_upos_xpos_multiword_and_empty_nodes(tmp_path: Path) -> None:
    f = tmp_path / "x.conllu"
    f.write_text("# text = I don't\n1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
                 "2\tdo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_\n3\tn't\tnot\tPART\tRB\t_\t2\tadvmod\t_\t_\n"
                 "3.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t2:conj\t_\n\n")
    up = load_corpus(str(f), "pos")
    assert up.sentences("data") == [(["I", "do", "n't"], ["PRON", "AUX", "PART"])]
    xp = load_corpus(str(f), "pos", tag_column="xpos")
    assert xp.sentences("data")[0][1] == ["PRP", "VBP", "RB"]


def test_jsonl_parquet_and_save_to_disk(tmp_path: Path) -> None:
    import datasets

    rows = [{"tokens": ["EU", "rejects", "German"], "ner_tags": ["B-ORG", "O", "B-MISC"]},
            {"tokens": ["Peter", "Blackburn"], "ner_tags": ["B-PER", "I-PER"]}]
    f = tmp_path / "x.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    check(load_corpus(str(f), "ner"))
    names = ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    ds = datasets.Dataset.from_dict({"tokens": [r["tokens"] for r in rows],
                                     "ner_tags": [[names.index(t) for t in r["ner_tags"]] for r in rows]}, features=feats)
    ds.to_parquet(str(tmp_path / "x.parquet"))
    check(load_corpus(str(tmp_path / "x.parquet"), "ner"))
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "disk"))
    c = load_corpus(str(tmp_path / "disk"), "ner")
    check(c, "train")
    check(c, "dev")  # 'dev' finds 'validation'


def test_hub_code_path_offline_from_a_local_repo_folder(tmp_path: Path) -> None:
    """A folder laid out like a hub dataset repo goes through datasets.load_dataset (offline)."""
    import datasets

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    names = ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]
    feats = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    ds = datasets.Dataset.from_dict({"tokens": [["EU", "rejects", "German"], ["Peter", "Blackburn"]],
                                     "ner_tags": [[1, 4, 0], [2, 3]]}, features=feats)
    ds.to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    ds.to_parquet(str(repo / "data" / "test-00000-of-00001.parquet"))
    c = load_corpus(str(repo), "ner")
    assert set(c.splits) == {"train", "test"}
    check(c, "train")


def test_hub_id_offline_fails_in_one_line_at_once() -> None:
    import time

    from seqtag.errors import HubUnavailableError

    t = time.time()
    with pytest.raises(HubUnavailableError) as err:
        load_corpus("nobody-here/no-such-dataset", "ner")
    assert time.time() - t < 20
    assert "\n" not in str(err.value) and "no-such-dataset" in str(err.value)


def test_samples_and_catalogue() -> None:
    c = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    assert set(c.splits) == {"train", "dev", "test"} and len(c.split("train")) == 120
    cat = catalogue()
    assert cat["conll2003"]["files"]["dev"] == "conll2003/eng.testa" and cat["conll2003"]["scheme"] == "IOB1"
    assert cat["ud_english_ewt"]["hub"] == "universal_dependencies"


def test_invalid_sequences_are_reported_and_repaired(tmp_path: Path) -> None:
    f = tmp_path / "x.conll"
    f.write_text("a O\nb I-PER\nc O\n\nd B-LOC\n")
    warnings: list[str] = []
    c = load_corpus(str(f), "ner", scheme="IOB2", warn=warnings.append)
    assert len(warnings) == 1 and "1 sentence(s)" in warnings[0] and f"{f}:2" in warnings[0]
    assert c.sentences("data")[0][1] == ["O", "B-PER", "O"]
    with pytest.raises(DataError, match=f"{f}:2"):
        load_corpus(str(f), "ner", scheme="IOB2", strict=True)


@pytest.mark.skipif(corpora_dir() is None, reason="SEQTAG_CORPORA is not set")
def test_real_corpora_counts() -> None:
    c = load_corpus("conll2003", "ner")
    assert c.scheme == "IOB1"
    assert [len(c.split(s)) for s in ("train", "dev", "test")] == [14041, 3250, 3453]
    n_ents = sum(1 for _, tags in c.sentences("test", "IOB2") for t in tags if t.startswith("B-"))
    assert n_ents == 5648
    u = load_corpus("ud_english_ewt", "pos")
    assert len(u.split("train")) == 12544 and "PROPN" in u.labels


def test_has_split_is_honest_and_one_file_serves_every_split(tmp_path: Path) -> None:
    f = tmp_path / "x.conll"
    f.write_text(CONLL)
    one = load_corpus(str(f), "ner")
    assert one.single and one.has_split("data") and not one.has_split("train") and not one.has_split("test")
    assert one.split("test")["tokens"] == one.split("data")["tokens"] and one.source("dev") == str(f)
    folder = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    assert not folder.single and all(folder.has_split(s) for s in ("train", "dev", "test"))
    assert not folder.has_split("data") and not folder.has_split("validation")
    with pytest.raises(DataError, match="has no split 'data'; its splits: train, dev, test"):
        folder.split("data")


def test_hold_out_keeps_the_sentences_training_has_always_held_out() -> None:
    """Seed 0, a tenth (at least one), kept in corpus order: the dev split of a corpus without one."""
    import random

    corpus = load_corpus(f"train={SAMPLES / 'sample_ner' / 'train.conll'},test={SAMPLES / 'sample_ner' / 'test.conll'}",
                         "ner")
    train = corpus.sentences("train", "IOB2")
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    held = set(order[: max(1, len(train) // 10)])
    split = corpus.hold_out(fraction=0.1, seed=0)
    assert split.sentences("dev", "IOB2") == [p for i, p in enumerate(train) if i in held]
    assert split.sentences("train", "BIOES") == [(t, convert(g, "IOB2", "BIOES")) for i, (t, g) in enumerate(train)
                                                 if i not in held]
    assert split.lines("dev") == [line for i, line in enumerate(corpus.lines("train")) if i in held]
    assert split.sentences("test") == corpus.sentences("test") and split.labels == corpus.labels
    assert split.source("dev") == split.source("train") == corpus.source("train")
    assert not corpus.has_split("dev") and split.has_split("dev")
    one = load_corpus(str(SAMPLES / "sample_ner" / "dev.conll"), "ner").hold_out()
    assert set(one.split_names) == {"train", "dev"} and len(one.sentences("dev")) == 3


def test_each_split_is_converted_once_per_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtag import corpus as corpus_module

    corpus = load_corpus(str(SAMPLES / "sample_ner"), "ner")
    calls: list[int] = []
    real = corpus_module.convert
    monkeypatch.setattr(corpus_module, "convert", lambda *a: calls.append(1) or real(*a))
    first = corpus.sentences("train", "BIOES")
    first.clear()  # the caller's list: the corpus keeps its own
    again = corpus.sentences("train", "BIOES")
    assert len(calls) == len(again) == 120
    assert corpus.sentences("dev", "IOB2") == corpus.sentences("dev", "IOB2") and len(calls) == 150


def test_one_block_reader_for_corpus_files_and_predict_input(tmp_path: Path) -> None:
    from seqtag.predict_io import read_conll_blocks
    from seqtag.readers import read_conll

    f = tmp_path / "x.conll"
    f.write_text(IOB1 + "\n\n-DOCSTART- -X- O O\nAnna NNP I-PER\n")
    assert list(read_conll_blocks(f.read_text().splitlines())) == [s.tokens for s in read_conll(f)]
    assert [s.line for s in read_conll(f)] == [3, 7, 12]


def test_a_bad_line_is_reported_before_later_lines_are_read(tmp_path: Path) -> None:
    """The block reader hands each line over as it reads it: a wrong column count is named even when
    bytes that are not UTF-8 follow in the same sentence."""
    from seqtag.readers import read_conll

    f = tmp_path / "x.conll"
    f.write_bytes(b"EU NNP B-ORG\nrejects O\nGerman JJ \xff\n")
    with pytest.raises(DataError, match=r"x.conll:2: expected 3 columns \(as on line 1\), found 2"):
        read_conll(f)
