"""Metrics and their bootstrap confidence intervals.

Classification: accuracy, macro-F1, weighted-F1 (sklearn semantics: the labels are those present
in the targets or predictions of the sample; an unparsable prediction counts as a miss of its
target and creates no class). Extraction: SQuAD-style token-F1 and exact match (the best over an
item's gold answers); with abstention, answer detection (precision, recall, F1 and the average
precision of the confidence that an answer is present, as scikit-learn computes them), which are
no mean of per-item values: `statistics` of the resampled item positions.
Intervals: percentile bootstrap over items, with a fixed seed, so reruns give identical CIs (a
ratio of per-item sums, `ratio_bootstrap`, for benchmarks whose items weigh differently). The
resample indices are drawn in blocks of rows (the very numbers of one big draw, in bounded memory)
and each block is scored at once: one offset bincount of (target, prediction) pairs per block for
classification, a gather of the per-item scores for extraction. Above MULTINOMIAL_ABOVE items, a
metric that is a function of the counts of a few distinct per-item outcomes (confusion cells, the
joint values of the means) draws those counts instead: a resample of n items is a Multinomial(n,
outcome shares) draw, the same distribution at O(outcomes) per resample (other random numbers, so
the interval moves within Monte-Carlo error); the metric's record then names its method
(`bootstrap_method`, `bootstrap_items_above`, `bootstrap_outcomes`). Statistics of item positions
(AUPR, answer detection, subset means) keep index resampling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial

import numpy as np

# the answer-level scores, where callers have always imported them from
from tunebench.scoring.answers import (  # noqa: F401
    best_item_scores,
    exact_match,
    item_scores,
    normalize_answer,
    token_f1,
)

CLASSIFICATION = ("accuracy", "macro_f1", "weighted_f1")
EXTRACTION = ("token_f1", "exact_match")
DETECTION = ("detection_precision", "detection_recall", "detection_f1", "aupr")  # extraction with abstain
NO_ANSWER = -1
CHUNK_ELEMENTS = 1 << 22  # bootstrap indices drawn per chunk of resamples (32 MB of int64)
# Above this many items a metric that is a function of the counts of a few distinct per-item
# outcomes is resampled as Multinomial(n, outcome shares) draws of those counts: the same
# distribution as resampling n item positions, at O(outcomes) per resample instead of O(n). Up to it
# (every demo, baseline and test cell) the index draws are kept, so their intervals stay as they were;
# above it index resampling costs seconds per metric and a gather of resamples x n positions.
MULTINOMIAL_ABOVE = 100_000
MULTINOMIAL_MAX_OUTCOMES = 10_000  # more distinct outcomes than this: index resampling (a draw costs O(outcomes))
INDICES, MULTINOMIAL = "indices", "multinomial"


Statistic = Callable[[np.ndarray], float]


class Unavailable:
    """A metric the outputs cannot give (AUPR without confidences): bootstrap_ci reports it with
    value None and this reason. Called, it gives NaN."""

    def __init__(self, reason: str):
        self.reason = reason

    def __call__(self, index: np.ndarray) -> float:
        return float("nan")


def subset_mean(values: np.ndarray, among: np.ndarray) -> Statistic:
    """The mean of `values` over the resampled items where `among` holds (0 when there are none)."""
    def mean(index: np.ndarray) -> float:
        keep = among[index]
        return float(values[index][keep].mean()) if keep.any() else 0.0
    return mean


def detection_statistics(present: np.ndarray, answered: np.ndarray) -> dict[str, Statistic]:
    """Answer detection: the positive class is "an answer is present", predicted when the model
    answered. Precision, recall and F1 as sklearn's binary scores (0 where a ratio is 0/0)."""
    codes = present.astype(int) * 2 + answered.astype(int)  # 3: tp, 1: fp, 2: fn

    def ratio(index: np.ndarray, which: str) -> float:
        c = np.bincount(codes[index], minlength=4)
        tp, fp, fn = int(c[3]), int(c[1]), int(c[2])
        num, den = {"detection_precision": (tp, tp + fp), "detection_recall": (tp, tp + fn),
                    "detection_f1": (2 * tp, 2 * tp + fp + fn)}[which]
        return num / den if den else 0.0
    return {m: partial(ratio, which=m) for m in DETECTION[:3]}


def average_precision(truth: np.ndarray, score: np.ndarray) -> Statistic:
    """sklearn's average_precision_score over the resampled items: the sum over distinct scores,
    highest first, of (recall gained there) x (precision there); 0 without positives."""
    groups, group = np.unique(-np.asarray(score, dtype=float), return_inverse=True)
    k, truth = len(groups), np.asarray(truth, dtype=float)

    def ap(index: np.ndarray) -> float:
        pos = np.bincount(group[index], weights=truth[index], minlength=k)
        seen = np.cumsum(np.bincount(group[index], minlength=k))
        if not pos.sum():
            return 0.0
        precision = np.divide(np.cumsum(pos), seen, out=np.zeros(k), where=seen > 0)
        return float((pos * precision).sum() / pos.sum())
    return ap


def _f1_from_counts(tp: np.ndarray, pred_count: np.ndarray, true_count: np.ndarray, average: str) -> float:
    """F1 from per-label float counts (true positives, predicted, true)."""
    present = (true_count + pred_count) > 0
    if not present.any():
        return 0.0
    denom = pred_count + true_count
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if average == "macro":
        return float(f1[present].mean())
    return float((f1 * true_count).sum() / true_count.sum())


def _f1_from_codes(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, average: str) -> float:
    """F1 over label codes 0..n_labels-1; y_pred may hold NO_ANSWER."""
    valid = y_pred >= 0
    tp = np.bincount(y_true[valid & (y_pred == y_true)], minlength=n_labels).astype(float)
    pred_count = np.bincount(y_pred[valid], minlength=n_labels).astype(float)
    true_count = np.bincount(y_true, minlength=n_labels).astype(float)
    return _f1_from_counts(tp, pred_count, true_count, average)


def _label_codes(targets: Sequence[str], predictions: Sequence[str | None],
                 labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    codes = {label: i for i, label in enumerate(labels)}
    y_true = np.array([codes[t] for t in targets], dtype=int)
    y_pred = np.array([codes.get(p, NO_ANSWER) if p is not None else NO_ANSWER for p in predictions], dtype=int)
    return y_true, y_pred


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


def resample_chunks(rng: np.random.Generator, n: int, resamples: int,
                    chunk_elements: int | None = None) -> Iterator[np.ndarray]:
    """rng.integers(0, n, size=(resamples, n)) in consecutive blocks of rows: the same numbers as
    the one-shot draw (the generator's stream continues across calls), in bounded memory."""
    rows = max(1, min(resamples, (chunk_elements or CHUNK_ELEMENTS) // max(n, 1)))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def bootstrap_plan(n: int, outcomes: int | None) -> dict[str, object]:
    """How n items with that many distinct outcomes (None: the metric is no function of outcome
    counts) are resampled, as the record states it: empty up to MULTINOMIAL_ABOVE items (index
    resampling, as ever), else the method with the threshold and the outcome count behind it."""
    if n <= MULTINOMIAL_ABOVE:
        return {}
    method = MULTINOMIAL if outcomes is not None and outcomes <= MULTINOMIAL_MAX_OUTCOMES else INDICES
    return {"bootstrap_method": method, "bootstrap_items_above": MULTINOMIAL_ABOVE, "bootstrap_outcomes": outcomes}


def distinct_outcomes(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each item's outcome code (0..k-1, in sorted order of the columns' value tuples) and each
    column's value per outcome: the distinct rows of the columns."""
    n = len(columns[0])
    code = np.zeros(n, dtype=np.int64)
    for column in columns:  # one column at a time, re-densified, so the mixed radix never overflows
        values, inverse = np.unique(column, return_inverse=True)
        _, code = np.unique(code * len(values) + inverse.reshape(-1), return_inverse=True)
        code = code.reshape(-1)
    first = np.unique(code, return_index=True)[1]
    return code, [np.asarray(column)[first] for column in columns]


def multinomial_chunks(rng: np.random.Generator, counts: np.ndarray, resamples: int,
                       width: int | None = None) -> Iterator[np.ndarray]:
    """Bootstrap resamples of items as counts of their outcomes: Multinomial(n, counts / n) draws,
    (rows, outcomes) per block, each block at most CHUNK_ELEMENTS x `width` (what a row becomes)."""
    n = int(counts.sum())
    shares = counts / n
    rows = max(1, min(resamples, CHUNK_ELEMENTS // max(width or len(counts), 1)))
    for start in range(0, resamples, rows):
        yield rng.multinomial(n, shares, size=min(rows, resamples - start))


def pair_codes(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """One code per item for its (target, prediction) pair; NO_ANSWER is prediction 0."""
    return y_true * (n_labels + 1) + (y_pred + 1)


def confusion_counts(pairs: np.ndarray, n_labels: int, index: np.ndarray) -> np.ndarray:
    """For each row of `index` (resamples x items), the counts of (target, prediction) pairs:
    (rows, n_labels, n_labels + 1), NO_ANSWER first on the last axis. A bincount per row over the
    codes in their narrowest type: 3-5x faster at 1M items than one bincount over all rows' codes
    offset into int64 (the gather moves bytes, the count stays in cache)."""
    rows, cells = len(index), n_labels * (n_labels + 1)
    narrow = pairs.astype(np.uint8 if cells <= 1 << 8 else np.uint16 if cells <= 1 << 16 else np.int64)
    out = np.empty((rows, cells), dtype=np.int64)
    for r in range(rows):
        out[r] = np.bincount(narrow[index[r]], minlength=cells)
    return out.reshape(rows, n_labels, n_labels + 1)


def classification_rows(counts: np.ndarray, metrics: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """Each metric for each row of confusion counts over n items, equal to what the item-level
    computation (_f1_from_codes, the mean of correct) gives for that row's items."""
    tp = np.diagonal(counts[:, :, 1:], axis1=1, axis2=2).astype(float)
    pred_count = counts[:, :, 1:].sum(axis=1).astype(float)
    true_count = counts.sum(axis=2).astype(float)
    out = {}
    for metric in metrics:
        if metric == "accuracy":  # a sum of 0/1 is exact: count / n is the mean of correct
            out[metric] = tp.sum(axis=1) / n
        else:  # per row: the F1 of a few labels takes microseconds; the same code gives the same float
            average = metric.split("_")[0]
            out[metric] = np.array([_f1_from_counts(tp[r], pred_count[r], true_count[r], average)
                                    for r in range(len(counts))], dtype=float)
    return out


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0)


def bootstrap_ci(targets: Sequence[str], predictions: Sequence[str | None], metrics: Sequence[str],
                 *, labels: Sequence[str] | None = None, resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0,
                 item_values: dict[str, np.ndarray] | None = None,
                 statistics: dict[str, Callable[[np.ndarray], float]] | None = None) -> dict[str, dict]:
    """Value and percentile bootstrap CI for each metric, resampling items with replacement.
    `item_values`: per-item scores already computed (the metric is their mean); `statistics`: metrics
    that are no mean (AUPR, detection F1), as a function of the resampled item positions."""
    n = len(targets)
    alpha = (1 - confidence) / 2
    out: dict[str, dict] = {}

    def summarize(value: float, samples: np.ndarray | None, plan: dict | None = None) -> dict:
        lo, hi = (np.quantile(samples, [alpha, 1 - alpha]) if n and samples is not None else (value, value))
        return {"value": round(float(value), 6), "ci_low": round(float(lo), 6),
                "ci_high": round(float(hi), 6), "confidence": confidence, "resamples": resamples, **(plan or {})}

    given = {*(item_values or {}), *(statistics or {})}
    unknown = [m for m in metrics if m not in EXTRACTION and m not in given] if labels is None else []
    if unknown:
        raise KeyError(unknown[0])
    if not n:
        return {metric: summarize(0.0, None) for metric in metrics}
    chunks = resample_chunks(np.random.default_rng(seed), n, resamples)
    if labels is not None:
        y_true, y_pred = _label_codes(targets, predictions, labels)
        pairs = pair_codes(y_true, y_pred, len(labels))
        cells = len(labels) * (len(labels) + 1)
        counts = np.bincount(pairs, minlength=cells)
        seen = np.flatnonzero(counts)
        plan = bootstrap_plan(n, len(seen))
        if plan.get("bootstrap_method") == MULTINOMIAL:  # metrics of the confusion counts
            blocks = []
            for draw in multinomial_chunks(np.random.default_rng(seed), counts[seen], resamples, width=cells):
                confusion = np.zeros((len(draw), cells), dtype=np.int64)
                confusion[:, seen] = draw
                blocks.append(classification_rows(confusion.reshape(-1, len(labels), len(labels) + 1), metrics, n))
        else:
            blocks = [classification_rows(confusion_counts(pairs, len(labels), index), metrics, n)
                      for index in chunks]
        for metric in metrics:
            if metric == "accuracy":
                value = (y_true == y_pred).astype(float).mean()
            else:
                value = _f1_from_codes(y_true, y_pred, len(labels), metric.split("_")[0])
            out[metric] = summarize(value, _concat([b[metric] for b in blocks]), plan)
        return out

    special = {m: f for m, f in (statistics or {}).items() if m in metrics and not isinstance(f, Unavailable)}
    for m, f in (statistics or {}).items():
        if m in metrics and isinstance(f, Unavailable):
            out[m] = {"value": None, "ci_low": None, "ci_high": None, "confidence": confidence,
                      "resamples": resamples, "unavailable": f.reason}
    means = [m for m in metrics if m not in special and m not in out]
    values = {m: item_values[m] if item_values and m in item_values else item_scores(targets, predictions, m)
              for m in means}
    samples: dict[str, list] = {m: [] for m in metrics}
    plans = {m: bootstrap_plan(n, None) for m in special}
    if means and n > MULTINOMIAL_ABOVE:  # a mean is a function of the counts of the items' (joint) values
        code, per_outcome = distinct_outcomes([values[m] for m in means])
        plans.update({m: bootstrap_plan(n, len(per_outcome[0])) for m in means})
        if plans[means[0]]["bootstrap_method"] == MULTINOMIAL:
            counts = np.bincount(code, minlength=len(per_outcome[0]))
            for draw in multinomial_chunks(np.random.default_rng(seed), counts, resamples):
                for metric, outcome_values in zip(means, per_outcome):
                    samples[metric].append(draw @ outcome_values / n)
            means = []
    if means or special:
        for index in chunks:
            for metric in means:
                samples[metric].append(np.take(values[metric], index).mean(axis=1))
            for metric, statistic in special.items():
                samples[metric].append(np.array([statistic(row) for row in index], dtype=float))
    for metric in metrics:
        if metric not in out:
            value = special[metric](np.arange(n)) if metric in special else values[metric].mean()
            out[metric] = summarize(value, _concat(samples[metric]), plans.get(metric))
    return {metric: out[metric] for metric in metrics}


def ratio_bootstrap(num: np.ndarray, den: np.ndarray, *, resamples: int, confidence: float, seed: int) -> dict:
    """sum(num) / sum(den) with its percentile bootstrap over items (a per-item mean when den is
    all ones; instruction-level ratios otherwise) and the resamples' standard deviation. The
    resamples are those of bootstrap_ci for the same seed and n, drawn in blocks."""
    n = len(num)
    value = float(num.sum() / den.sum()) if n and den.sum() else 0.0
    if n:
        parts = []
        for index in resample_chunks(np.random.default_rng(seed), n, resamples):
            with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero resample: 0/0 counts as 0
                parts.append(np.take(num, index).sum(axis=1) / np.take(den, index).sum(axis=1))
        samples = np.nan_to_num(_concat(parts), nan=0.0)
    else:
        samples = np.array([value])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return {"value": round(value, 6), "ci_low": round(float(lo), 6), "ci_high": round(float(hi), 6),
            "stderr": round(float(samples.std(ddof=1)), 6) if n > 1 else 0.0,
            "confidence": confidence, "resamples": resamples, "ci_method": "bootstrap"}
