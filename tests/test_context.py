"""Document context (``model.context``): the sentences around a sentence in its document go through the
embedding and the encoder; only the sentence itself is tagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from seqtag.config import merge
from seqtag.context import InContext, window, with_context
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


def _model(context: int = 0) -> TaggerModel:
    cfg = build_config("ner", merge(SMALL, {"model": {"context": context}}))
    torch.manual_seed(0)
    words = [["Anna", "lives", "in", "Paris", "."], ["Bob", "works", "for", "Acme", "today", "."]]
    model = TaggerModel(cfg["model"], ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], "IOB2", sentences=words)
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


def test_a_batch_without_context_is_the_plain_batch() -> None:
    model = _model(4)
    words = [InContext(["Anna", "lives", "in", "Paris", "."]), ["Bob", "works"]]  # no tokens around either
    batch = make_batch(model, words)
    assert batch.centre is None and batch.tag_mask is batch.mask


@pytest.mark.parametrize("bad", [-1, 2.5, True, "16"])
def test_model_context_must_be_a_whole_number(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"\[model\] context must be a whole number of tokens >= 0"):
        build_config("ner", merge(SMALL, {"model": {"context": bad}}))


def test_training_scores_and_evaluates_sentences_in_their_documents(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import seqtag
    from seqtag import model as model_module

    data = _corpus_with_documents(tmp_path / "docs")
    seen: list[bool] = []
    real = model_module.TaggerModel.encode

    def encode(self: TaggerModel, batch: Any) -> torch.Tensor:
        seen.append(batch.centre is not None)
        return real(self, batch)

    monkeypatch.setattr(model_module.TaggerModel, "encode", encode)
    config = merge(SMALL, {"model": {"context": 8}, "training": {"max_epochs": 2}, "data": {"dataset": str(data)}})
    tagger = seqtag.train(config, task="ner", output=tmp_path / "m", progress=False, log=None)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model"]["context"] == 8
    assert seen and all(seen)  # every training step, dev and test scoring batch had its context
    seen.clear()
    scores = seqtag.load(tmp_path / "m").evaluate(split="test")
    assert seen and all(seen)
    assert tagger.summary is not None and scores["f1"] == pytest.approx(tagger.summary["test"])  # scored alike


def test_streamed_training_refuses_context(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from seqtag.cli import main

    r = CliRunner().invoke(main, ["train", "--streaming", "--dataset", str(SAMPLES / "sample_ner"), "-o",
                                  str(tmp_path / "m"), "--no-progress", "--set", "model.context=8",
                                  "--set", "training.threads=1", "--max-epochs", "1"])
    assert r.exit_code != 0
    assert "model.context (document context) needs the training split in memory" in r.output
