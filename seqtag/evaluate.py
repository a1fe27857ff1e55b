"""Scores: seqeval entity precision, recall and F1 for NER; token accuracy for POS; error breakdowns."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from .labels import spans_from_tags

__all__ = ["ner_scores", "pos_scores", "ner_error_breakdown", "evaluate", "main_score"]


def ner_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """seqeval scores of IOB2 sequences in default (conlleval) and strict mode, micro and per type."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    g, p = [list(x) for x in gold], [list(x) for x in pred]
    out: dict[str, Any] = {
        "f1": 100 * f1_score(g, p, zero_division=0),
        "precision": 100 * precision_score(g, p, zero_division=0),
        "recall": 100 * recall_score(g, p, zero_division=0),
        "strict": {
            "f1": 100 * f1_score(g, p, mode="strict", scheme=IOB2, zero_division=0),
            "precision": 100 * precision_score(g, p, mode="strict", scheme=IOB2, zero_division=0),
            "recall": 100 * recall_score(g, p, mode="strict", scheme=IOB2, zero_division=0),
        },
    }
    report = classification_report(g, p, output_dict=True, zero_division=0)
    out["per_type"] = {k: {"precision": 100 * v["precision"], "recall": 100 * v["recall"], "f1": 100 * v["f1-score"],
                           "support": int(v["support"])}
                       for k, v in report.items() if not k.endswith(" avg")}
    return out


def ner_error_breakdown(tokens: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                        seen: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Counts of false predictions by kind, and recall on entities seen vs unseen in training.

    Kinds: ``type`` (right span, wrong type), ``boundary`` (overlapping span, same type), ``both``
    (overlapping, other type), ``spurious`` (no overlap with a gold entity); ``missed`` counts gold
    entities that no prediction overlaps.
    """
    kinds: Counter[str] = Counter()
    seen_total = seen_hit = unseen_total = unseen_hit = 0
    for toks, g, p in zip(tokens, gold, pred):
        gs, ps = set(spans_from_tags(g)), set(spans_from_tags(p))
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
             breakdown: bool = True) -> dict[str, Any]:
    """Score ``tagger`` on gold ``(tokens, tags)`` pairs (NER tags in IOB2)."""
    tokens = [t for t, _ in sentences]
    gold = [g for _, g in sentences]
    preds = tagger.predict(tokens, batch_size=batch_size, with_confidence=False)
    pred = [p.tags for p in preds]
    if task == "ner":
        scores = ner_scores(gold, pred)
        if breakdown:
            seen = None
            if train_sentences is not None:
                seen = {(" ".join(t[s:e]), ty) for t, g in train_sentences for s, e, ty in spans_from_tags(g)}
            scores["breakdown"] = ner_error_breakdown(tokens, gold, pred, seen)
        return scores
    words = {w for t, _ in train_sentences for w in t} if train_sentences is not None else None
    return pos_scores(tokens, gold, pred, words)
