"""Confidences users can trust: how well they are calibrated, and temperature scaling fitted on dev.

A confidence is *calibrated* when, of the predictions scored about ``p``, a share ``p`` is right. The
unit is what a user acts on: an entity span for NER (right when its start, end and type match a gold
span; its score is :class:`~seqtag.inference.Entity`'s), a token for POS (right when its tag is gold).
:func:`calibration_report` measures it: the expected calibration error (ECE) over 10 equal-width bins,
``sum_b |bin_b| / N * |accuracy_b - confidence_b|``, with the mean confidence and the share right.

:func:`fit_temperature` makes the confidences calibrated after training: the head divides its scores by
a temperature ``T`` before it computes confidences (the CRF's emissions and transitions before its
marginals, the softmax head's logits before the softmax), which never changes the tags (the best path
and the arg max stay where they are). ``T`` is chosen on dev to minimise the log loss of the units'
confidences against their being right, over a grid on ``log T`` refined around its best point. The
temperature is the head's own config argument (``[model.head] temperature``), so it is saved in
``config.json`` and applied alike wherever the model runs: PyTorch, the ONNX export (a constant of the
graph) and the spaCy component. Training fits it at its end (``training.calibrate``);
``seqtag calibrate MODEL`` fits it for a saved model.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .labels import spans_from_tags

__all__ = ["BINS", "confidence_units", "expected_calibration_error", "calibration_report", "Calibration",
           "fit_temperature", "takes_temperature", "calibrate_and_save"]

BINS = 10
_STEP = (math.log(16.0) - math.log(0.25)) / 24  # the grid of temperatures: 0.25 to 16, 25 points on log T
_GRID = [math.exp(math.log(0.25) + i * _STEP) for i in range(25)]


def confidence_units(task: str, predictions: Sequence[Any], gold: Sequence[Sequence[str]]) -> tuple[list[float],
                                                                                                   list[bool]]:
    """The confidences of what was predicted and whether each is right.

    Args:
        task: ``"ner"`` (units: the predicted entity spans) or ``"pos"`` (units: the tokens).
        predictions: :class:`~seqtag.inference.Prediction` objects, one per sentence, with confidences.
        gold: Each sentence's gold tags (IOB2 for NER).
    """
    conf: list[float] = []
    right: list[bool] = []
    for pred, tags in zip(predictions, gold):
        if task == "ner":
            spans = set(spans_from_tags(tags))
            for e in pred.entities:
                conf.append(float(e.score))
                right.append((e.start, e.end, e.label) in spans)
        else:
            conf.extend(float(s) for s in pred.scores)
            right.extend(p == g for p, g in zip(pred.tags, tags))
    return conf, right


def _binned(conf: Sequence[float], right: Sequence[bool], bins: int) -> tuple[list[int], list[float], list[int]]:
    """Per equal-width bin of [0, 1] (1.0 in the last): the units, their summed confidence, those right."""
    count = [0] * bins
    total_conf = [0.0] * bins
    total_right = [0] * bins
    for c, r in zip(conf, right):
        b = min(bins - 1, max(0, int(c * bins)))
        count[b] += 1
        total_conf[b] += c
        total_right[b] += int(r)
    return count, total_conf, total_right


def expected_calibration_error(conf: Sequence[float], right: Sequence[bool], bins: int = BINS) -> float:
    """The ECE of ``conf`` against ``right`` over ``bins`` equal-width bins of [0, 1] (0.0 without units)."""
    if not conf:
        return 0.0
    count, total_conf, total_right = _binned(conf, right, bins)
    return sum(abs(total_right[b] - total_conf[b]) for b in range(bins) if count[b]) / len(conf)


def calibration_report(task: str, predictions: Sequence[Any], gold: Sequence[Sequence[str]],
                       bins: int = BINS) -> dict[str, Any]:
    """How calibrated the confidences of ``predictions`` are against ``gold``.

    Returns:
        ``unit`` (``span`` or ``token``), ``count``, ``ece``, ``mean_confidence``, ``accuracy`` (the share
        of units right: span precision for NER) and ``bins`` (each non-empty bin's ``low``, ``high``,
        ``count``, ``confidence`` and ``accuracy``), all shares in [0, 1].
    """
    conf, right = confidence_units(task, predictions, gold)
    n = len(conf)
    count, total_conf, total_right = _binned(conf, right, bins)
    rows = [{"low": b / bins, "high": (b + 1) / bins, "count": count[b],
             "confidence": round(total_conf[b] / count[b], 4), "accuracy": round(total_right[b] / count[b], 4)}
            for b in range(bins) if count[b]]
    return {"unit": "span" if task == "ner" else "token", "count": n,
            "ece": round(expected_calibration_error(conf, right, bins), 4),
            "mean_confidence": round(sum(conf) / n, 4) if n else 0.0,
            "accuracy": round(sum(right) / n, 4) if n else 0.0, "bins": rows}


def _log_loss(conf: Sequence[float], right: Sequence[bool]) -> float:
    eps = 1e-6
    return -sum(math.log(min(1 - eps, max(eps, c if r else 1.0 - c))) for c, r in zip(conf, right)) / max(1, len(conf))


def takes_temperature(head: Any) -> bool:
    """Whether a head can be calibrated: its constructor takes ``temperature`` (the config argument that
    saves it) and it has the attribute its ``decode`` reads."""
    try:
        params = inspect.signature(type(head).__init__).parameters
    except (TypeError, ValueError):
        return False
    return "temperature" in params and hasattr(head, "temperature")


@dataclass
class Calibration:
    """What :func:`fit_temperature` found: the temperature and the dev ECE before and after it."""

    temperature: float
    ece_before: float
    ece_after: float
    unit: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": round(self.temperature, 4), "dev_ece_before": round(self.ece_before, 4),
                "dev_ece_after": round(self.ece_after, 4), "unit": self.unit, "units": self.count}


def fit_temperature(tagger: Any, sentences: Sequence[tuple[list[str], list[str]]], batch_size: int = 256,
                    progress: Callable[[str], None] | None = None) -> Calibration:
    """Fit the temperature of ``tagger``'s head on gold ``(tokens, tags)`` pairs (NER tags in IOB2) and
    set it on the head; the caller saves the tagger (its config's ``model.head.temperature`` is set too).

    The encoder runs once; each candidate temperature only decodes again from its outputs.

    Raises:
        ValueError: The head cannot be calibrated (:func:`takes_temperature`).
    """
    import torch

    from .context import InContext, read_length
    from .inference import Predictor, confidence_rows
    from .model import make_batch

    model = tagger.model
    head = model.head
    if not takes_temperature(head):
        raise ValueError(f"the head {type(head).__name__} takes no temperature: its confidences cannot be calibrated")
    task = tagger.task
    predictor: Predictor = tagger.predictor
    items = [(t if isinstance(t, InContext) else list(t), list(g)) for t, g in sentences if t]
    order = sorted(range(len(items)), key=lambda i: read_length(items[i][0], model.encoder_reach))
    cached = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            words = [items[i][0] for i in idx]
            batch = make_batch(model, words)
            cached.append((idx, words, model.encode(batch), batch.tag_mask))

    def units(temperature: float) -> tuple[list[float], list[bool]]:
        head.temperature = temperature
        preds: list[Any] = [None] * len(items)
        with torch.inference_mode():
            for idx, words, x, mask in cached:
                tags, conf = head.decode(x, mask, with_confidence=True)
                rows = confidence_rows(conf.float().cpu())
                for row, (i, w) in enumerate(zip(idx, words)):
                    n = len(w)
                    preds[i] = predictor.make_prediction(w, [(0, 0)] * n, tags[row, :n].tolist(), rows[row][:n])
        return confidence_units(task, preds, [g for _, g in items])

    before = float(head.temperature)
    kind = "span" if task == "ner" else "token"
    try:
        first = units(before)
        ece_before = expected_calibration_error(*first)
        if not first[0]:  # no predicted span (a model that has learnt little): nothing to fit on
            if progress is not None:
                progress(f"not calibrated: no {kind} predicted on dev; the temperature stays {before:g}")
            return Calibration(before, ece_before, ece_before, kind, 0)
        losses = {}
        for t in _GRID:
            losses[t] = _log_loss(*units(t))
        best = min(losses, key=losses.__getitem__)
        lo, hi = math.log(best) - _STEP, math.log(best) + _STEP
        for _ in range(12):  # golden-section search on log T around the grid's best point
            a, b = hi - (hi - lo) / 1.618034, lo + (hi - lo) / 1.618034
            if _log_loss(*units(math.exp(a))) < _log_loss(*units(math.exp(b))):
                hi = b
            else:
                lo = a
        fitted = math.exp((lo + hi) / 2)
        if losses[best] < _log_loss(*units(fitted)):
            fitted = best
        conf, right = units(fitted)
        ece_after = expected_calibration_error(conf, right)
        if progress is not None:
            progress(f"calibrated on {len(conf)} dev {'spans' if task == 'ner' else 'tokens'}: temperature "
                     f"{fitted:.3f}, ECE {ece_before:.4f} -> {ece_after:.4f}")
    except BaseException:
        head.temperature = before
        raise
    finally:
        model.train(was_training)
    tagger.config["model"]["head"]["temperature"] = round(fitted, 6)
    head.temperature = round(fitted, 6)
    return Calibration(head.temperature, ece_before, ece_after, kind, len(conf))


def calibrate_and_save(tagger: Any, sentences: Sequence[tuple[list[str], list[str]]], path: Any, *,
                       batch_size: int = 256, log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Fit ``tagger``'s temperature on ``sentences`` (:func:`fit_temperature`) and save the tagger to ``path``
    (atomically) with the fit's figures in ``meta.json``'s ``scores.calibration``; the weights stay as they are.

    Training calls it at its end (``training.calibrate``), ``seqtag calibrate`` on a saved model.

    Returns:
        The figures (:meth:`Calibration.to_dict`), or ``None`` (and a log line) when the head cannot be
        calibrated.
    """
    if not takes_temperature(tagger.model.head):
        log(f"not calibrated: the head {type(tagger.model.head).__name__} takes no temperature")
        return None
    figures = fit_temperature(tagger, sentences, batch_size=batch_size, progress=log).to_dict()
    tagger.save(path, scores={**tagger.scores, "calibration": figures})
    return figures
