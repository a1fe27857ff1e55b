"""Entity scores against seqeval, the reference: on the sample corpora, on a tagger's predictions
(scored by the entities they carry) and on random tag sequences, in seqeval's default and strict modes."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from seqtag.data import load_corpus
from seqtag.evaluate import evaluate, ner_scores

from .conftest import SAMPLES, train_small

TYPES = ("PER", "LOC", "MISC")


def seqeval_scores(gold: list[list[str]], pred: list[list[str]], strict_mode: bool = True) -> dict:
    """What seqeval gives, in the shape of :func:`ner_scores` (strict mode: IOB2; left out when not ``strict_mode``)."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns of its own averages over no entity at all
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
        out = {
            "f1": 100 * f1_score(gold, pred, zero_division=0),
            "precision": 100 * precision_score(gold, pred, zero_division=0),
            "recall": 100 * recall_score(gold, pred, zero_division=0),
            "per_type": {k: {"precision": 100 * v["precision"], "recall": 100 * v["recall"], "f1": 100 * v["f1-score"],
                             "support": int(v["support"])} for k, v in report.items() if not k.endswith(" avg")},
        }
        if strict_mode:
            out["strict"] = {"f1": 100 * f1_score(gold, pred, **strict),
                             "precision": 100 * precision_score(gold, pred, **strict),
                             "recall": 100 * recall_score(gold, pred, **strict)}
        return out


def perturbed(tags: list[str], rng: random.Random) -> list[str]:
    """``tags`` with about one tag in five replaced by any IOB2 tag (orphan ``I-`` tags included)."""
    choices = ["O"] + [f"{p}-{t}" for p in "BI" for t in TYPES]
    return [rng.choice(choices) if rng.random() < 0.2 else t for t in tags]


def random_tags(rng: random.Random, prefixes: str) -> list[list[str]]:
    choices = ["O"] + [f"{p}-{t}" for p in prefixes for t in TYPES]
    return [[rng.choice(choices) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 6))]


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_scores_equal_seqeval_on_the_sample_corpus(split: str) -> None:
    gold = [tags for _, tags in load_corpus(str(SAMPLES / "sample_ner"), "ner").sentences(split, "IOB2")]
    rng = random.Random(split)
    for pred in (gold, [perturbed(t, rng) for t in gold], [["O"] * len(t) for t in gold]):
        assert ner_scores(gold, pred) == seqeval_scores(gold, pred)  # equal to the last bit


def test_scores_equal_seqeval_on_random_iob2_sequences() -> None:
    rng = random.Random(0)
    for _ in range(800):
        gold = random_tags(rng, "BI")
        if rng.random() < 0.5:  # near the gold tags
            pred = [perturbed(t, rng) for t in gold]
        else:  # anything
            pred = [[rng.choice(["O", "B-PER", "I-PER", "I-LOC", "B-MISC"]) for _ in sent] for sent in gold]
        assert ner_scores(gold, pred) == seqeval_scores(gold, pred), (gold, pred)


def test_default_mode_equals_seqeval_on_random_bioes_sequences() -> None:
    """Spans are read as seqeval's default mode reads them, E- and S- tags too (strict mode is IOB2 only)."""
    rng = random.Random(1)
    for _ in range(500):
        gold = random_tags(rng, "BIES")
        pred = [[rng.choice(["O"] + [f"{p}-{t}" for p in "BIES" for t in TYPES]) for _ in s] for s in gold]
        scores = ner_scores(gold, pred)
        del scores["strict"]
        assert scores == seqeval_scores(gold, pred, strict_mode=False), (gold, pred)


@pytest.mark.parametrize("scheme", ["BIOES", "IOB2"])
def test_evaluate_scores_a_taggers_entities_as_seqeval_scores_its_tags(tmp_path: Path, scheme: str) -> None:
    """A barely trained tagger (an IOB2 softmax one predicts orphan I- tags, which strict mode does not
    count): the entities its predictions carry score as seqeval scores their tags, breakdown aside."""
    overrides: dict = {"scheme": scheme, "training": {"max_epochs": 2}}
    if scheme == "IOB2":
        overrides["model"] = {"head": {"type": "softmax.v1"}}
    tagger, _ = train_small("ner", tmp_path / scheme, overrides)
    gold = load_corpus(str(SAMPLES / "sample_ner"), "ner").sentences("dev", "IOB2")
    preds = tagger.predict([tokens for tokens, _ in gold])
    assert any(p.entities for p in preds)
    pred = [p.tags for p in preds]
    scores = evaluate(tagger, gold, "ner", train_sentences=gold)
    assert set(scores.pop("breakdown")) == {"errors", "recall_seen", "recall_unseen", "entities_seen",
                                            "entities_unseen"}
    assert scores == seqeval_scores([tags for _, tags in gold], pred)
