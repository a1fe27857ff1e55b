"""The predictor every runtime shares (seqtag.inference.Predictor), run with a stub network."""

from __future__ import annotations

import gc

from seqtag.inference import Predictor, RunBatch
from seqtag.tokenizers import WhitespaceTokenizer

LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def _stub(calls: list[list[int]]) -> RunBatch:
    """A network that tags each word "Name..." as a person (BIOES) and records each batch's lengths."""
    def run(words: list[list[str]]) -> tuple[list[list[int]], list[list[float]]]:
        calls.append([len(w) for w in words])
        width = max(len(w) for w in words)
        rows = []
        for sent in words:
            ids = [4 if w.startswith("Name") else 0 for w in sent]
            rows.append(ids + [0] * (width - len(sent)))  # padding past each sentence is ignored
        return rows, [[0.5] * width for _ in words]
    return run


def test_predictions_come_in_input_order_in_length_sorted_batches() -> None:
    calls: list[list[int]] = []
    predictor = Predictor(WhitespaceTokenizer(), LABELS, "ner", "BIOES")
    inputs = ["a b c Name", ["Name"], "", ["x"] * 7, "Name y"]
    preds = list(predictor.predict_stream(inputs, _stub(calls), batch_size=2, chunk_size=3))
    assert [p.tokens for p in preds] == [["a", "b", "c", "Name"], ["Name"], [], ["x"] * 7, ["Name", "y"]]
    assert [[(e.label, e.start, e.end, e.text, e.score) for e in p.entities] for p in preds] == \
        [[("PER", 3, 4, "Name", 0.5)], [("PER", 0, 1, "Name", 0.5)], [], [], [("PER", 0, 1, "Name", 0.5)]]
    assert preds[0].tags == ["O", "O", "O", "B-PER"]  # IOB2 whatever the model's scheme
    assert preds[0].entities[0].start_char == 6 and preds[0].offsets[3] == (6, 10)
    assert calls == [[1, 4], [2, 7]]  # per chunk, empty inputs skipped, shortest first
    assert gc.isenabled()


def test_without_confidences_every_score_is_one() -> None:
    predictor = Predictor(WhitespaceTokenizer(), ["NOUN", "VERB"], "pos", "IOB2")
    pred = predictor.predict("dogs bark", lambda words: ([[1] * len(w) for w in words], None))[0]
    assert pred.tags == ["VERB", "VERB"] and pred.scores == [1.0, 1.0] and pred.entities == []
