"""Document context (``model.context``): the sentences around a sentence in its document go through the
embedding and the encoder; only the sentence itself is tagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from seqtag.config import merge
from seqtag.context import InContext, read_length, window, with_context
from seqtag.errors import ConfigError
from seqtag.model import TaggerModel, make_batch
from seqtag.trainer import build_config

from .conftest import SAMPLES, SMALL


def test_context_takes_neighbours_of_the_same_document_up_to_the_size() -> None:
    sents = [["a1", "a2"], ["b1", "b2", "b3"], ["c1"], ["d1", "d2"], ["e1"]]
    docs = [1, 1, 1, 2, 2]
    got = with_context(sents, docs, 3)
    assert got == sents  # the token lists are the sentences themselves
    assert (got[0].left, got[0].right) == ([], ["b1", "b2", "b3"])
    assert (got[1].left, got[1].right) == (["a1", "a2"], ["c1"])  # the document ends after c1
    assert (got[2].left, got[2].right) == (["b1", "b2", "b3"], [])  # the last 3 tokens before it
    assert (got[3].left, got[3].right) == ([], ["e1"])  # a new document: nothing of the one before
    assert with_context(sents, docs, 2)[2].left == ["b2", "b3"]
    assert with_context(sents, docs, 1)[1].right == ["c1"]
    assert window(got[1]) == (["a1", "a2", "b1", "b2", "b3", "c1"], 2)
    assert window(["x", "y"]) == (["x", "y"], 0)
    with pytest.raises(ValueError, match="2 document numbers"):
        with_context(sents, docs[:2], 3)


def test_streamed_context_is_the_listed_one_and_gives_sentences_early() -> None:
    import random

    from seqtag.context import iter_with_context

    def reference(sents: list, docs: list, size: int) -> list:  # every neighbour of the document, then cut
        out = []
        for i in range(len(sents)):
            before = [w for j in range(i) if docs[j] == docs[i] for w in sents[j]]
            after = [w for j in range(i + 1, len(sents)) if docs[j] == docs[i] for w in sents[j]]
            out.append((before[max(0, len(before) - size):] if size else [], after[:size]))
        return out

    rng = random.Random(0)
    for _ in range(500):
        sents = [[f"w{i}.{k}" for k in range(rng.randint(1, 5))] for i in range(rng.randint(0, 12))]
        docs = sorted(rng.randint(0, 3) for _ in sents)
        size = rng.randint(0, 12)
        got = with_context(sents, docs, size)
        assert [(c.left, c.right) for c in got] == reference(sents, docs, size), (sents, docs, size)
    read: list[int] = []

    def stream() -> Any:
        for i in range(100):
            read.append(i)
            yield [f"w{i}", "x"], 0

    first = next(iter_with_context(stream(), 3))
    assert first.right == ["w1", "x", "w2"] and len(read) == 3  # given as soon as its context is read


def _corpus_with_documents(folder: Path) -> Path:
    """The NER sample corpus with a ``-DOCSTART-`` line before every third sentence of each split."""
    folder.mkdir()
    for f in (SAMPLES / "sample_ner").glob("*.conll"):
        blocks = [b for b in f.read_text(encoding="utf-8").split("\n\n") if b.strip()]
        out = []
        for i, block in enumerate(blocks):
            if i % 3 == 0:
                out.append("-DOCSTART- -X- O")
            out.append(block.strip())
        (folder / f.name).write_text("\n\n".join(out) + "\n", encoding="utf-8")
    return folder


def test_corpus_sentences_carry_the_context_of_their_documents(tmp_path: Path) -> None:
    from seqtag.data import load_corpus

    corpus = load_corpus(str(_corpus_with_documents(tmp_path / "docs")), "ner")
    plain = corpus.sentences("train", "IOB2")
    ctx = corpus.sentences("train", "IOB2", context=50)
    assert [(list(t), g) for t, g in ctx] == plain  # the same sentences and tags
    assert isinstance(ctx[0][0], InContext)
    # sentences 0-2 are the first document: the first has the next two as its right context, nothing left
    assert ctx[0][0].left == [] and ctx[0][0].right == plain[1][0] + plain[2][0]
    assert ctx[1][0].left == plain[0][0] and ctx[1][0].right == plain[2][0]
    assert ctx[3][0].left == [] and ctx[2][0].right == []  # the second document starts at sentence 3
    assert all(not isinstance(t, InContext) for t, _ in corpus.sentences("train", "IOB2"))  # no context asked


LABELS = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]


def _model(context: int = 0, scope: str = "encoder", **extra: Any) -> TaggerModel:
    cfg = build_config("ner", merge(SMALL, {"model": {"context": context, "context_scope": scope, **extra}}))
    torch.manual_seed(0)
    words = [["Anna", "lives", "in", "Paris", "."], ["Bob", "works", "for", "Acme", "today", "."]]
    model = TaggerModel(cfg["model"], LABELS, "IOB2", sentences=words)
    return model.eval()


def test_the_centre_is_encoded_within_its_window_and_alone_tagged() -> None:
    model = _model(4)
    left, centre, right = ["Anna", "lives", "in"], ["Paris", "."], ["Bob", "works", "for", "Acme"]
    other = ["Bob", "works", "for", "Acme", "today", "."]  # a sentence without context in the same batch
    batch = make_batch(model, [InContext(centre, left, right), other], tags=[[3, 2], [0, 2, 2, 2, 2, 2]])
    assert batch.mask.sum(1).tolist() == [9, 6]  # the encoder reads the windows
    assert batch.tag_mask.sum(1).tolist() == [2, 6]  # the head the sentences
    assert batch.tags is not None and batch.tags.shape == batch.tag_mask.shape
    with torch.inference_mode():
        got = model.encode(batch)
        assert got.shape[:2] == batch.tag_mask.shape
        whole = model.encode(make_batch(model, [left + centre + right]))
        alone = model.encode(make_batch(model, [other]))
        assert torch.allclose(got[0, :2], whole[0, 3:5], atol=1e-6)  # the centre's vectors in its window
        assert torch.allclose(got[1, :6], alone[0], atol=1e-6)
        tags, _ = model.decode(batch)
        assert tags.shape == batch.tag_mask.shape
        assert torch.isfinite(model.loss(batch))
        # a sentence in context reads its window: its vectors are not those of the sentence alone
        assert not torch.allclose(got[0, :2], model.encode(make_batch(model, [centre]))[0], atol=1e-4)


def test_context_scope_embedding_feeds_the_window_to_the_embedding_alone() -> None:
    model = _model(4, scope="embedding")
    left, centre, right = ["Anna", "lives", "in"], ["Paris", "."], ["Bob", "works", "for", "Acme"]
    other = ["Bob", "works", "for", "Acme", "today", "."]
    read: list[tuple[int, ...]] = []
    model.encoder.register_forward_hook(lambda mod, args, out: read.append(tuple(args[0].shape)))
    batch = make_batch(model, [InContext(centre, left, right), other], tags=[[3, 2], [0, 2, 2, 2, 2, 2]])
    assert batch.mask.sum(1).tolist() == [9, 6]  # the embedding reads the windows
    with torch.inference_mode():
        got = model.encode(batch)
        assert read == [(2, 6, model.embedding.output_dim)]  # the encoder the sentences alone
        assert got.shape[:2] == batch.tag_mask.shape
        # word and character vectors do not read context: the sentence's vectors are those of it alone
        assert torch.allclose(got[0, :2], model.encode(make_batch(model, [centre]))[0], atol=1e-6)
        assert torch.allclose(got[1, :6], model.encode(make_batch(model, [other]))[0], atol=1e-6)
        assert torch.isfinite(model.loss(batch))
        # an embedding that reads its input's context (here each position plus the mean of the window):
        # the encoder gets the sentence's vectors as the embedding made them in the window
        embed = model.embedding.forward
        model.embedding.forward = lambda f: (lambda x: x + x.mean(1, keepdim=True))(embed(f))  # type: ignore
        got = model.encode(batch)
        window_vectors = model.embedding(make_batch(model, [left + centre + right]).features)[:, 3:5]
        expected = model.encoder(window_vectors, torch.ones(1, 2, dtype=torch.bool))
        assert torch.allclose(got[0, :2], expected[0], atol=1e-6)
        assert not torch.allclose(got[0, :2], model.encode(make_batch(model, [centre]))[0], atol=1e-4)


def test_encoder_context_gives_the_encoder_the_nearest_tokens_of_the_window() -> None:
    narrow, whole = _model(4, encoder_context=2), _model(4)  # the same weights (seed 0), so the same parts
    assert (narrow.context, narrow.encoder_reach, whole.encoder_reach) == (4, 2, 4)
    left, centre, right = ["Anna", "lives", "in"], ["Paris", "."], ["Bob", "works", "for", "Acme"]
    short = ["Bob", "works"]  # one token of context on its left, none on its right
    other = ["Bob", "works", "for", "Acme", "today", "."]
    read: list[tuple[int, ...]] = []
    narrow.encoder.register_forward_hook(lambda mod, args, out: read.append(tuple(args[1].sum(1).tolist())))
    batch = make_batch(narrow, [InContext(centre, left, right), InContext(short, ["."]), other],
                       tags=[[3, 2], [0, 2], [0, 2, 2, 2, 2, 2]])
    assert batch.mask.sum(1).tolist() == [9, 3, 6]  # the embedding reads the windows
    with torch.inference_mode():
        got = narrow.encode(batch)
        assert read == [(6, 3, 6)]  # the encoder: 2 + 2 + 2, 1 + 2 + 0 and the sentence alone
        assert got.shape[:2] == batch.tag_mask.shape
        # what the whole window's encoder gives for the sentences with their nearest two tokens around them
        cut = whole.encode(make_batch(whole, [InContext(centre, left[-2:], right[:2]), InContext(short, ["."]),
                                              other]))
        assert torch.allclose(got, cut, atol=1e-6)
        assert not torch.allclose(got[0, :2], whole.encode(batch)[0, :2], atol=1e-4)  # it reads less
        tags, _ = narrow.decode(batch)
        assert tags.shape == batch.tag_mask.shape
        assert torch.isfinite(narrow.loss(batch))
    # 0: the sentences alone, as context_scope = "embedding" (same vectors for context-free parts)
    alone, embedding_scope = _model(4, encoder_context=0), _model(4, scope="embedding")
    with torch.inference_mode():
        assert torch.allclose(alone.encode(batch), embedding_scope.encode(batch), atol=1e-6)


@pytest.mark.parametrize("model, message", [
    ({"context": 4, "encoder_context": 5}, r"encoder_context must be a whole number of tokens from 0 to "
                                           r"model.context \(4\), got int 5"),
    ({"context": 4, "encoder_context": -1}, "encoder_context must be a whole number"),
    ({"context": 4, "encoder_context": 1.5}, "encoder_context must be a whole number"),
    ({"context": 4, "encoder_context": True}, "encoder_context must be a whole number"),
    ({"context": 4, "context_scope": "embedding", "encoder_context": 2},
     'encoder_context is for context_scope = "encoder"'),
])
def test_encoder_context_is_checked(model: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config("ner", merge(SMALL, {"model": model}))


@pytest.mark.parametrize("bad", ["head", "", 1, None])
def test_context_scope_is_encoder_or_embedding(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"\[model\] context_scope must be one of 'encoder', 'embedding'"):
        build_config("ner", merge(SMALL, {"model": {"context": 4, "context_scope": bad}}))


def test_a_batch_without_context_is_the_plain_batch() -> None:
    model = _model(4)
    words = [InContext(["Anna", "lives", "in", "Paris", "."]), ["Bob", "works"]]  # no tokens around either
    batch = make_batch(model, words)
    assert batch.centre is None and batch.tag_mask is batch.mask


@pytest.mark.parametrize("bad", [-1, 2.5, True, "16"])
def test_model_context_must_be_a_whole_number(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"\[model\] context must be a whole number of tokens >= 0"):
        build_config("ner", merge(SMALL, {"model": {"context": bad}}))


@pytest.mark.parametrize("scope", ["encoder", "embedding"])
def test_training_scores_and_evaluates_sentences_in_their_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   scope: str) -> None:
    import seqtag
    from seqtag import model as model_module

    data = _corpus_with_documents(tmp_path / "docs")
    seen: list[bool] = []
    real = model_module.TaggerModel.encode

    def encode(self: TaggerModel, batch: Any) -> torch.Tensor:
        seen.append(batch.centre is not None)
        return real(self, batch)

    monkeypatch.setattr(model_module.TaggerModel, "encode", encode)
    from seqtag import trainer as trainer_module

    bucketed: list[list[int]] = []
    real_batches = trainer_module.make_batches
    monkeypatch.setattr(trainer_module, "make_batches",
                        lambda lengths, *a: bucketed.append(list(lengths)) or real_batches(lengths, *a))
    config = merge(SMALL, {"model": {"context": 8, "context_scope": scope}, "training": {"max_epochs": 2},
                           "data": {"dataset": str(data)}})
    tagger = seqtag.train(config, task="ner", output=tmp_path / "m", progress=False, log=None)
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["model"]
    assert (saved["context"], saved.get("context_scope", "encoder")) == (8, scope)
    # the training batches are bucketed by the lengths of what the encoder reads: the windows, or the sentences
    from seqtag.data import load_corpus

    train = load_corpus(str(data), "ner").sentences("train", "IOB2", context=8)
    read = [len(t) for t, _ in train] if scope == "embedding" else [len(window(t)[0]) for t, _ in train]
    assert [len(t) for t, _ in train] != [len(window(t)[0]) for t, _ in train]  # the two differ here
    assert bucketed and all(b == read for b in bucketed)
    assert seen and all(seen)  # every training step, dev and test scoring batch had its context
    seen.clear()
    scores = seqtag.load(tmp_path / "m").evaluate(split="test")
    assert seen and all(seen)
    assert tagger.summary is not None and scores["f1"] == pytest.approx(tagger.summary["test"])  # scored alike
    # seqtag predict on the CoNLL file reads its documents too: the same tags as the scoring
    from seqtag.data import load_corpus
    from seqtag.predict_io import predict_lines

    gold = load_corpus(str(data), "ner").sentences("test", "IOB2", context=8)
    expected = [p.tags for p in seqtag.load(tmp_path / "m").predict([t for t, _ in gold])]
    seen.clear()
    with open(data / "test.conll", encoding="utf-8") as f:
        blocks = "\n".join(predict_lines(str(tmp_path / "m"), f, output_format="conll", log=lambda m: None,
                                       progress=False)).strip().split("\n\n")
    assert [[line.split("\t")[1] for line in b.splitlines()] for b in blocks] == expected
    assert seen and all(seen)


def test_the_spacy_component_gives_a_cut_doc_its_own_tokens_as_context(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy
    from spacy.tokens import Doc

    from seqtag.inference import Predictor
    from seqtag.tagger import Tagger

    tagger = Tagger(build_config("ner", merge(SMALL, {"model": {"context": 4}})), LABELS, _model(4), {})
    tagger.save(tmp_path / "m")
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(tmp_path / "m"), "max_tokens": 4})
    given: list = []
    real = Predictor.predict

    def spy(self: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        given.extend(inputs)
        return real(self, inputs, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict", spy)
    nlp(Doc(nlp.vocab, words="Anna lives in Paris . Bob works for Acme .".split()))
    words = "Anna lives in Paris . Bob works for Acme .".split()
    assert len(given) >= 3 and [w for piece in given for w in piece] == words  # the doc, cut in pieces
    start = 0
    for piece in given:  # each with up to 4 of the doc's tokens on either side
        assert isinstance(piece, InContext)
        assert (piece.left, piece.right) == (words[max(0, start - 4):start], words[start + len(piece):][:4])
        start += len(piece)


def test_streamed_training_refuses_context(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from seqtag.cli import main

    r = CliRunner().invoke(main, ["train", "--streaming", "--dataset", str(SAMPLES / "sample_ner"), "-o",
                                  str(tmp_path / "m"), "--no-progress", "--set", "model.context=8",
                                  "--set", "training.threads=1", "--max-epochs", "1"])
    assert r.exit_code != 0
    assert "model.context (document context) needs the training split in memory" in r.output


def test_documents_are_numbered_by_docstart_and_newdoc_lines(tmp_path: Path) -> None:
    from seqtag.readers import read_conll, read_conllu

    f = tmp_path / "x.conll"
    f.write_text("A O\n\n-DOCSTART- O\n\nB O\n\nC O\n-DOCSTART- O\nD O\n", encoding="utf-8")
    assert [(s.tokens[0], s.document) for s in read_conll(f)] == [("A", 0), ("B", 1), ("C", 1), ("D", 2)]
    word = "\t".join(["1", "{}", "_", "X", "_", "_", "0", "root", "_", "_"])
    u = tmp_path / "x.conllu"
    u.write_text("# newdoc id = a\n# sent_id = 1\n" + word.format("A") + "\n\n# sent_id = 2\n" + word.format("B")
                 + "\n\n# newdoc id = b\n" + word.format("C") + "\n", encoding="utf-8")
    assert [(s.tokens[0], s.document) for s in read_conllu(u)] == [("A", 1), ("B", 1), ("C", 2)]


@pytest.mark.parametrize("model, runtime, reach", [
    ({"context_scope": "encoder"}, True, 8), ({"context_scope": "embedding"}, True, 0),
    ({"encoder_context": 3}, True, 3), ({"context_scope": "encoder"}, False, 0)])
def test_prediction_batches_by_what_the_encoder_reads(model: dict[str, Any], runtime: bool, reach: int) -> None:
    from seqtag.inference import Predictor

    config = {"task": "pos", "model": {"context": 8, **model}}
    predictor = Predictor.from_config(config, ["X", "Y"], reads_context=runtime)
    assert predictor.encoder_reach == reach
    # short sentences in long windows and long ones in short windows: the two orders differ
    sents = [InContext(["w"] * n, ["l"] * (8 if n < 5 else 0), ["r"] * (8 if n < 5 else 1)) for n in range(1, 9)]
    sents += [InContext(["w"] * n, ["l"] * 0, ["r"] * 0) for n in range(1, 9)]
    seen: list[list[int]] = []

    def run(words: list[list[str]]) -> tuple[list[list[int]], None]:
        seen.append([read_length(w, reach) for w in words])
        return [[0] * len(w) for w in words], None

    preds = predictor.predict(sents, run, batch_size=4)
    assert [p.tokens for p in preds] == [list(s) for s in sents]  # in input order, the sentences' own tokens
    read = [n for batch in seen for n in batch]
    assert read == sorted(read)  # each batch holds what the encoder reads of like length, in ascending order
    assert len(seen) == 4
