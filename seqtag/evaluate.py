"""Scores: entity precision, recall and F1 for NER, as seqeval gives them; token accuracy for POS; error breakdowns.

NER is scored on entity spans: the gold spans are read from the gold tags once, the predicted ones are
the entities a prediction carries. The counts are seqeval's (its default, conlleval mode, and its
strict IOB2 mode), and so is the arithmetic, so the scores equal seqeval's to the last bit; the tests
check them against seqeval.

With ``confusion``, :func:`evaluate` adds ``confusion_matrix``, what the pictures of an evaluation
report (:mod:`seqtag.report`) draw: every gold tag against every predicted one (POS), or every gold
entity type against every predicted one, with ``O`` for no entity, spans of the same boundaries apart
from overlapping ones with other boundaries (NER; :func:`ner_confusion`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from .labels import spans_from_tags, split_tag

__all__ = ["ner_scores", "pos_scores", "ner_error_breakdown", "ner_confusion", "tag_confusion", "evaluate",
           "main_score", "NO_ENTITY"]

Span = tuple[int, int, str]  # tokens [start, end) and the entity type
NO_ENTITY = "O"  # the row of predicted entities that match no gold one, the column of gold ones never found


def _prf(tp: int, predicted: int, true: int) -> dict[str, float]:
    """Precision, recall and F1 in percent, computed as seqeval does (0 where a count is 0)."""
    precision = tp / predicted if predicted else 0.0
    recall = tp / true if true else 0.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def _counts(gold: Iterable[Iterable[Span]], pred: Iterable[Iterable[Span]]) -> tuple[Counter[str], ...]:
    """Per entity type: the spans found in both (sentence by sentence), the predicted ones, the gold ones."""
    tp: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    true: Counter[str] = Counter()
    for g, p in zip(gold, pred):
        gs, ps = set(g), set(p)
        true.update(t for _, _, t in gs)
        predicted.update(t for _, _, t in ps)
        tp.update(t for _, _, t in gs & ps)
    return tp, predicted, true


def _strict(tags: Sequence[Sequence[str]], spans: Sequence[Sequence[Span]]) -> list[list[Span]]:
    """The spans that seqeval's strict IOB2 mode counts: those whose first tag is ``B-``."""
    return [[s for s in sent if split_tag(t[s[0]])[0] == "B"] for t, sent in zip(tags, spans)]


def ner_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], *,
               gold_spans: Sequence[Sequence[Span]] | None = None,
               pred_spans: Sequence[Sequence[Span]] | None = None) -> dict[str, Any]:
    """Entity scores of IOB2 tag sequences in seqeval's default (conlleval) and strict mode, micro and per type.

    Args:
        gold: The gold tags of each sentence.
        pred: The predicted tags of each sentence.
        gold_spans: The spans of ``gold`` when known (default: read from the tags as seqeval's default
            mode reads them).
        pred_spans: The spans of ``pred`` when known (a prediction's entities).

    Returns:
        ``f1``, ``precision``, ``recall`` (percent), the same under ``strict``, and ``per_type``
        (each type's scores and ``support``, its number of gold entities).
    """
    gs = [spans_from_tags(t) for t in gold] if gold_spans is None else gold_spans
    ps = [spans_from_tags(t) for t in pred] if pred_spans is None else pred_spans
    tp, predicted, true = _counts(gs, ps)
    out: dict[str, Any] = _prf(sum(tp.values()), sum(predicted.values()), sum(true.values()))
    out["strict"] = _prf(*(sum(c.values()) for c in _counts(_strict(gold, gs), _strict(pred, ps))))
    out["per_type"] = {t: {**_prf(tp[t], predicted[t], true[t]), "support": true[t]}
                       for t in sorted(set(true) | set(predicted))}
    return out


def ner_averages(scores: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The average rows of seqeval's classification report, from :func:`ner_scores`'s scores.

    ``micro avg`` is the overall score (every entity counted alike), ``macro avg`` the unweighted mean
    of the types' scores, ``weighted avg`` their mean weighted by each type's support (0 without gold
    entities, as seqeval gives with ``zero_division=0``); each row's ``support`` is every gold entity.
    """
    per_type = list(scores["per_type"].values())
    support = sum(int(v["support"]) for v in per_type)
    keys = ("precision", "recall", "f1")

    def mean(weights: list[float]) -> dict[str, float]:
        total = sum(weights)
        return {k: sum(w * v[k] for w, v in zip(weights, per_type)) / total if total else 0.0 for k in keys}

    return {"micro avg": {**{k: float(scores[k]) for k in keys}, "support": support},
            "macro avg": {**mean([1.0] * len(per_type)), "support": support},
            "weighted avg": {**mean([float(v["support"]) for v in per_type]), "support": support}}


def ner_error_breakdown(tokens: Sequence[Sequence[str]], gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]],
                        seen: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Counts of false predictions by kind, and recall on entities seen vs unseen in training.

    ``gold`` and ``pred`` are each sentence's entity spans. Kinds: ``type`` (right span, wrong type),
    ``boundary`` (overlapping span, same type), ``both`` (overlapping, other type), ``spurious`` (no
    overlap with a gold entity); ``missed`` counts gold entities that no prediction overlaps.
    """
    kinds: Counter[str] = Counter()
    seen_total = seen_hit = unseen_total = unseen_hit = 0
    for toks, g, p in zip(tokens, gold, pred):
        gs, ps = set(g), set(p)
        for s, e, t in ps - gs:
            over = [(gs_, ge, gt) for gs_, ge, gt in gs if gs_ < e and s < ge]
            if not over:
                kinds["spurious"] += 1
            elif any(gs_ == s and ge == e for gs_, ge, _ in over):
                kinds["type"] += 1
            elif any(gt == t for *_, gt in over):
                kinds["boundary"] += 1
            else:
                kinds["both"] += 1
        for s, e, t in gs:
            if not any(ps_ < e and s < pe for ps_, pe, _ in ps):
                kinds["missed"] += 1
            if seen is not None:
                key = (" ".join(toks[s:e]), t)
                hit = (s, e, t) in ps
                if key in seen:
                    seen_total, seen_hit = seen_total + 1, seen_hit + hit
                else:
                    unseen_total, unseen_hit = unseen_total + 1, unseen_hit + hit
    out: dict[str, Any] = {"errors": dict(kinds)}
    if seen is not None:
        out["recall_seen"] = 100 * seen_hit / seen_total if seen_total else None
        out["recall_unseen"] = 100 * unseen_hit / unseen_total if unseen_total else None
        out["entities_seen"], out["entities_unseen"] = seen_total, unseen_total
    return out


def ner_confusion(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> dict[str, Any]:
    """Gold entity types against predicted ones, each gold and each predicted entity counted once.

    In each sentence, a predicted span with a gold span's boundaries is that gold entity's match
    (``counts``: the diagonal holds the entities found, the rest type errors). The spans left are
    paired one to one where they overlap, the largest overlap first (``boundary``: the diagonal holds
    the right type with other boundaries). A gold entity still unpaired was missed (column ``O`` of
    ``counts``), a predicted one still unpaired is spurious (row ``O``).

    Returns:
        ``labels`` (the entity types, sorted, then :data:`NO_ENTITY`), ``counts`` and ``boundary``
        (rows: gold, columns: predicted, in ``labels`` order). A gold type's row sums over both
        matrices to its number of gold entities, a predicted type's column to its predicted entities.
    """
    gold_sets = [set(g) for g in gold]
    pred_sets = [set(p) for p in pred]
    types = sorted({t for sent in gold_sets + pred_sets for _, _, t in sent})
    labels = types + [NO_ENTITY]
    at = {t: i for i, t in enumerate(labels)}
    none = at[NO_ENTITY]
    n = len(labels)
    counts = [[0] * n for _ in range(n)]
    boundary = [[0] * n for _ in range(n)]
    for gs, ps in zip(gold_sets, pred_sets):
        by_span = {(s, e): t for s, e, t in ps}
        exact = [(g, (g[0], g[1], by_span[g[0], g[1]])) for g in gs if (g[0], g[1]) in by_span]
        for (_, _, gt), (_, _, pt) in exact:
            counts[at[gt]][at[pt]] += 1
        left_gold = gs - {g for g, _ in exact}
        left_pred = ps - {p for _, p in exact}
        # (-overlap, other type, gold, predicted): the largest overlap first, then the same type
        pairs: list[tuple[int, bool, Span, Span]] = []
        for g in left_gold:
            for p in left_pred:
                overlap = min(g[1], p[1]) - max(g[0], p[0])
                if overlap > 0:
                    pairs.append((-overlap, g[2] != p[2], g, p))
        for _, _, g, p in sorted(pairs):
            if g in left_gold and p in left_pred:
                boundary[at[g[2]]][at[p[2]]] += 1
                left_gold.discard(g)
                left_pred.discard(p)
        for _, _, gt in left_gold:
            counts[at[gt]][none] += 1
        for _, _, pt in left_pred:
            counts[none][at[pt]] += 1
    return {"labels": labels, "counts": counts, "boundary": boundary}


def tag_confusion(gold: Iterable[Sequence[str]], pred: Iterable[Sequence[str]]) -> dict[str, Any]:
    """Every gold tag against every predicted one: ``labels`` (the tags of either, sorted) and ``counts``
    (rows: gold, columns: predicted, in ``labels`` order; the diagonal holds the tokens tagged right)."""
    pairs: Counter[tuple[str, str]] = Counter()
    for g, p in zip(gold, pred):
        pairs.update(zip(g, p))
    labels = sorted({t for pair in pairs for t in pair})
    return {"labels": labels, "counts": [[pairs[(g, p)] for p in labels] for g in labels]}


def pos_scores(tokens: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
               train_words: set[str] | None = None, top_confusions: int = 10) -> dict[str, Any]:
    """Token accuracy, per-tag accuracy, accuracy on words unseen in training, frequent confusions."""
    total = correct = unseen = unseen_ok = 0
    per_tag: Counter[str] = Counter()
    per_tag_ok: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for toks, g, p in zip(tokens, gold, pred):
        for w, gt, pt in zip(toks, g, p):
            total += 1
            per_tag[gt] += 1
            ok = gt == pt
            correct += ok
            per_tag_ok[gt] += ok
            if not ok:
                confusions[(gt, pt)] += 1
            if train_words is not None and w not in train_words:
                unseen += 1
                unseen_ok += ok
    return {
        "accuracy": 100 * correct / total if total else 0.0,
        "tokens": total,
        "per_tag": {t: {"accuracy": 100 * per_tag_ok[t] / n, "support": n} for t, n in sorted(per_tag.items())},
        "unseen_accuracy": (100 * unseen_ok / unseen if unseen else None) if train_words is not None else None,
        "unseen_tokens": unseen if train_words is not None else None,
        "confusions": [{"gold": g, "predicted": p, "count": c} for (g, p), c in confusions.most_common(top_confusions)],
    }


def main_score(task: str, scores: dict[str, Any]) -> float:
    return float(scores["f1"] if task == "ner" else scores["accuracy"])


def evaluate(tagger: Any, sentences: Sequence[tuple[list[str], list[str]]], task: str,
             train_sentences: Iterable[tuple[list[str], list[str]]] | None = None, batch_size: int = 256,
             breakdown: bool = True, confusion: bool = False, calibration: bool = False) -> dict[str, Any]:
    """Score ``tagger`` on gold ``(tokens, tags)`` pairs (NER tags in IOB2).

    NER predictions are scored by the entities they carry, against the gold tags' spans, read once.
    ``breakdown`` adds the NER error breakdown (:func:`ner_error_breakdown`), ``confusion`` the
    ``confusion_matrix`` of either task (:func:`ner_confusion`, :func:`tag_confusion`), ``calibration``
    how calibrated the confidences of spans (NER) or tokens (POS) are
    (:func:`seqtag.calibration.calibration_report`: ``ece``, ``mean_confidence``, ``accuracy``, ``bins``).
    """
    tokens = [t for t, _ in sentences]
    gold = [g for _, g in sentences]
    preds = tagger.predict(tokens, batch_size=batch_size, with_confidence=calibration)
    pred = [p.tags for p in preds]
    extra: dict[str, Any] = {}
    if calibration:
        from .calibration import calibration_report

        extra["calibration"] = calibration_report(task, preds, gold)
    if task == "ner":
        gold_spans = [spans_from_tags(g) for g in gold]
        pred_spans = [[(e.start, e.end, e.label) for e in p.entities] for p in preds]
        scores = ner_scores(gold, pred, gold_spans=gold_spans, pred_spans=pred_spans)
        if breakdown:
            seen = None
            if train_sentences is not None:
                seen = {(" ".join(t[s:e]), ty) for t, g in train_sentences for s, e, ty in spans_from_tags(g)}
            scores["breakdown"] = ner_error_breakdown(tokens, gold_spans, pred_spans, seen)
        if confusion:
            scores["confusion_matrix"] = ner_confusion(gold_spans, pred_spans)
        return {**scores, **extra}
    words = {w for t, _ in train_sentences for w in t} if train_sentences is not None else None
    scores = pos_scores(tokens, gold, pred, words)
    if confusion:
        scores["confusion_matrix"] = tag_confusion(gold, pred)
    return {**scores, **extra}
