"""Metrics and their bootstrap confidence intervals.

Classification: accuracy, macro-F1, weighted-F1 (sklearn semantics: the labels are those present
in the targets or predictions of the sample; an unparsable prediction counts as a miss of its
target and creates no class). Extraction: SQuAD-style token-F1 and exact match.
Intervals: percentile bootstrap over items, with a fixed seed, so reruns give identical CIs.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

CLASSIFICATION = ("accuracy", "macro_f1", "weighted_f1")
EXTRACTION = ("token_f1", "exact_match")
NO_ANSWER = -1


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace (SQuAD's normalization)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str | None, target: str) -> float:
    pred = normalize_answer(prediction or "").split()
    gold = normalize_answer(target).split()
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str | None, target: str) -> float:
    return float(normalize_answer(prediction or "") == normalize_answer(target))


def _f1_from_codes(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, average: str) -> float:
    """F1 over label codes 0..n_labels-1; y_pred may hold NO_ANSWER."""
    valid = y_pred >= 0
    tp = np.bincount(y_true[valid & (y_pred == y_true)], minlength=n_labels).astype(float)
    pred_count = np.bincount(y_pred[valid], minlength=n_labels).astype(float)
    true_count = np.bincount(y_true, minlength=n_labels).astype(float)
    present = (true_count + pred_count) > 0
    if not present.any():
        return 0.0
    denom = pred_count + true_count
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if average == "macro":
        return float(f1[present].mean())
    return float((f1 * true_count).sum() / true_count.sum())


def classification_scores(targets: Sequence[str], predictions: Sequence[str | None],
                          labels: Sequence[str]) -> dict[str, float]:
    codes = {label: i for i, label in enumerate(labels)}
    y_true = np.array([codes[t] for t in targets])
    y_pred = np.array([codes.get(p, NO_ANSWER) if p is not None else NO_ANSWER for p in predictions])
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": _f1_from_codes(y_true, y_pred, len(labels), "macro"),
        "weighted_f1": _f1_from_codes(y_true, y_pred, len(labels), "weighted"),
    }


def bootstrap_ci(targets: Sequence[str], predictions: Sequence[str | None], metrics: Sequence[str],
                 *, labels: Sequence[str] | None = None, resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """Value and percentile bootstrap CI for each metric, resampling items with replacement."""
    n = len(targets)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=int)
    alpha = (1 - confidence) / 2
    out: dict[str, dict] = {}

    def summarize(value: float, samples: np.ndarray) -> dict:
        lo, hi = (np.quantile(samples, [alpha, 1 - alpha]) if n else (value, value))
        return {"value": round(float(value), 6), "ci_low": round(float(lo), 6),
                "ci_high": round(float(hi), 6), "confidence": confidence, "resamples": resamples}

    if labels is not None:
        codes = {label: i for i, label in enumerate(labels)}
        y_true = np.array([codes[t] for t in targets], dtype=int)
        y_pred = np.array([codes.get(p, NO_ANSWER) if p is not None else NO_ANSWER
                           for p in predictions], dtype=int)
        correct = (y_true == y_pred).astype(float)
        for metric in metrics:
            if metric == "accuracy":
                out[metric] = summarize(correct.mean() if n else 0.0, correct[index].mean(axis=1))
            else:
                average = metric.split("_")[0]
                value = _f1_from_codes(y_true, y_pred, len(labels), average) if n else 0.0
                samples = np.array([_f1_from_codes(y_true[i], y_pred[i], len(labels), average)
                                    for i in index])
                out[metric] = summarize(value, samples)
        return out

    per_item = {
        "token_f1": np.array([token_f1(p, t) for p, t in zip(predictions, targets)], dtype=float),
        "exact_match": np.array([exact_match(p, t) for p, t in zip(predictions, targets)], dtype=float),
    }
    for metric in metrics:
        values = per_item[metric]
        out[metric] = summarize(values.mean() if n else 0.0, values[index].mean(axis=1))
    return out
