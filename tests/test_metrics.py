"""Our metrics equal the reference implementations; intervals are sound and reproducible."""

from __future__ import annotations

import random
import re
import string

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tunebench.scoring.metrics import (
    bootstrap_ci,
    classification_scores,
    exact_match,
    item_scores,
    normalize_answer,
    ratio_bootstrap,
    resample_chunks,
    token_f1,
)

LABELS = ["a", "b", "c", "d"]


def random_case(seed, n=60, invalid=0.1):
    rng = random.Random(seed)
    targets = [rng.choice(LABELS[:3]) for _ in range(n)]  # "d" never a target
    preds = [None if rng.random() < invalid else rng.choice(LABELS) for _ in range(n)]
    return targets, preds


@pytest.mark.parametrize("seed", range(5))
def test_classification_matches_sklearn(seed):
    targets, preds = random_case(seed)
    ours = classification_scores(targets, preds, LABELS)
    # sklearn: an unparsable answer is a miss; the labels are those seen in targets or predictions
    shown = ["<none>" if p is None else p for p in preds]
    labels = sorted(set(targets) | {p for p in preds if p is not None})
    assert ours["accuracy"] == pytest.approx(accuracy_score(targets, shown))
    assert ours["macro_f1"] == pytest.approx(f1_score(targets, shown, labels=labels, average="macro", zero_division=0))
    assert ours["weighted_f1"] == pytest.approx(f1_score(targets, shown, labels=labels, average="weighted", zero_division=0))


def test_token_f1_and_exact_match_follow_squad():
    assert token_f1("the wireless earbuds", "wireless earbuds") == 1.0
    assert token_f1("earbuds", "wireless earbuds") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("smart watch", "wireless earbuds") == 0.0
    assert token_f1(None, "none") == 0.0
    assert exact_match("USB-C Charger.", "usbc charger") == 1.0
    assert exact_match("charger", "usb-c charger") == 0.0


def test_bootstrap_ci_contains_value_and_is_reproducible():
    targets, preds = random_case(1, n=200)
    a = bootstrap_ci(targets, preds, ["accuracy", "macro_f1"], labels=LABELS, resamples=500, seed=3)
    b = bootstrap_ci(targets, preds, ["accuracy", "macro_f1"], labels=LABELS, resamples=500, seed=3)
    assert a == b
    for stats in a.values():
        assert stats["ci_low"] <= stats["value"] <= stats["ci_high"]
        assert stats["ci_high"] - stats["ci_low"] > 0.02
    assert a["accuracy"]["value"] == pytest.approx(classification_scores(targets, preds, LABELS)["accuracy"])


def test_bootstrap_width_matches_binomial_theory():
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.6
    targets = ["a"] * 400
    preds = ["a" if c else "b" for c in correct]
    ci = bootstrap_ci(targets, preds, ["accuracy"], labels=["a", "b"], resamples=2000)["accuracy"]
    p = correct.mean()
    expected = 2 * 1.96 * np.sqrt(p * (1 - p) / 400)
    assert ci["ci_high"] - ci["ci_low"] == pytest.approx(expected, rel=0.15)


def test_extraction_bootstrap():
    ci = bootstrap_ci(["wireless earbuds", "none", "blender"], ["earbuds", "none", None],
                      ["token_f1", "exact_match"], resamples=200)
    assert ci["token_f1"]["value"] == pytest.approx((2 / 3 + 1 + 0) / 3, abs=1e-6)
    assert ci["exact_match"]["value"] == pytest.approx(1 / 3, abs=1e-6)


def reference_bootstrap(targets, preds, metrics, labels, resamples, confidence, seed):
    """The plain way, independent of the vectorised code: one (resamples x n) draw, then every
    resample scored by a Python loop (sklearn's label semantics; fewer than 8 labels, so Python's
    left-to-right sums equal numpy's)."""
    n = len(targets)
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))

    def f1(ts, ps, average):
        tp = {label: sum(t == p == label for t, p in zip(ts, ps)) for label in labels}
        n_pred = {label: sum(p == label for p in ps) for label in labels}
        n_true = {label: sum(t == label for t in ts) for label in labels}
        scores = {label: 2 * tp[label] / (n_pred[label] + n_true[label]) if n_pred[label] + n_true[label] else 0.0
                  for label in labels}
        if average == "macro":
            present = [label for label in labels if n_pred[label] + n_true[label]]
            return sum(scores[label] for label in present) / len(present)
        return sum(scores[label] * n_true[label] for label in labels) / sum(n_true.values())

    def metric_value(metric, ts, ps):
        if metric == "accuracy":
            return sum(t == p for t, p in zip(ts, ps)) / len(ts)
        if labels:
            return f1(ts, ps, metric.split("_")[0])
        scorer = token_f1 if metric == "token_f1" else exact_match
        return float(np.array([scorer(p, t) for p, t in zip(ps, ts)]).mean())

    alpha = (1 - confidence) / 2
    out = {}
    for metric in metrics:
        samples = [metric_value(metric, [targets[i] for i in row], [preds[i] for i in row]) for row in index]
        lo, hi = np.quantile(samples, [alpha, 1 - alpha])
        out[metric] = {"value": round(metric_value(metric, targets, preds), 6), "ci_low": round(float(lo), 6),
                       "ci_high": round(float(hi), 6), "confidence": confidence, "resamples": resamples}
    return out


PRODUCTS = ["wireless earbuds", "USB-C charger", "the yoga mat", "none", "a Blender!", "smart  watch"]


def extraction_case(seed, n=40):
    rng = random.Random(seed)
    targets = [rng.choice(PRODUCTS) for _ in range(n)]
    preds = [rng.choice([t, t.upper() + ".", t.split()[-1], rng.choice(PRODUCTS), None]) for t in targets]
    return targets, preds


# computed by the implementation before vectorisation (one (resamples x n) draw, a loop per resample)
OLD_CLASSIFICATION = {
    "accuracy": {"value": 0.16, "ci_low": 0.08, "ci_high": 0.26, "confidence": 0.9, "resamples": 300},
    "macro_f1": {"value": 0.171122, "ci_low": 0.079498, "ci_high": 0.258972, "confidence": 0.9, "resamples": 300},
    "weighted_f1": {"value": 0.205068, "ci_low": 0.097628, "ci_high": 0.317945, "confidence": 0.9, "resamples": 300},
}
OLD_EXTRACTION = {
    "token_f1": {"value": 0.475, "ci_low": 0.341667, "ci_high": 0.629583, "confidence": 0.95, "resamples": 250},
    "exact_match": {"value": 0.425, "ci_low": 0.3, "ci_high": 0.575, "confidence": 0.95, "resamples": 250},
}


@pytest.mark.parametrize("chunk_elements", [None, 1, 37, 150, 10**6])
def test_bootstrap_equals_the_plain_one_shot_computation_in_any_block_size(chunk_elements, monkeypatch):
    if chunk_elements:
        monkeypatch.setattr("tunebench.scoring.metrics.CHUNK_ELEMENTS", chunk_elements)
    targets, preds = random_case(7, n=50)
    args = dict(labels=LABELS, resamples=300, confidence=0.9, seed=5)
    ours = bootstrap_ci(targets, preds, list(OLD_CLASSIFICATION), **args)
    assert ours == reference_bootstrap(targets, preds, list(OLD_CLASSIFICATION), **args) == OLD_CLASSIFICATION
    targets, preds = extraction_case(3)
    args = dict(labels=None, resamples=250, confidence=0.95, seed=1)
    ours = bootstrap_ci(targets, preds, list(OLD_EXTRACTION), **args)
    assert ours == reference_bootstrap(targets, preds, list(OLD_EXTRACTION), **args) == OLD_EXTRACTION


@pytest.mark.parametrize("n", [1, 2, 7, 100, 99_999, 2**31 + 3])
def test_resample_blocks_continue_the_one_shot_stream(n):
    """Blocks of rows drawn one after another are the numbers of one (resamples x n) draw: numpy's
    Generator keeps its stream across calls (also for odd block sizes), so CIs do not depend on
    the block size."""
    width = min(n, 1000)  # the row length stands in for n where n items would not fit in memory
    one_shot = np.random.default_rng(11).integers(0, n, size=(23, width))
    for rows in (1, 2, 5, 23):
        rng = np.random.default_rng(11)
        blocks = [rng.integers(0, n, size=(min(rows, 23 - s), width)) for s in range(0, 23, rows)]
        assert np.array_equal(np.concatenate(blocks), one_shot)
    if n < 10**6:
        blocks = list(resample_chunks(np.random.default_rng(11), n, 23, chunk_elements=3 * n))
        assert [len(b) for b in blocks] == [3] * 7 + [2]
        assert np.array_equal(np.concatenate(blocks), np.random.default_rng(11).integers(0, n, size=(23, n)))


def reference_ratio_bootstrap(num, den, resamples, confidence, seed):
    """The benchmarks' bootstrap as it was written before it moved here: one (resamples x n) draw."""
    n = len(num)
    value = float(num.sum() / den.sum()) if n and den.sum() else 0.0
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=int)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = num[idx].sum(axis=1) / den[idx].sum(axis=1) if n else np.array([value])
    samples = np.nan_to_num(samples, nan=0.0)
    lo, hi = np.quantile(samples, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return {"value": round(value, 6), "ci_low": round(float(lo), 6), "ci_high": round(float(hi), 6),
            "stderr": round(float(samples.std(ddof=1)), 6) if n > 1 else 0.0,
            "confidence": confidence, "resamples": resamples, "ci_method": "bootstrap"}


@pytest.mark.parametrize("chunk_elements", [None, 1, 37, 10**6])
def test_ratio_bootstrap_equals_the_one_shot_draw_in_any_block_size(chunk_elements, monkeypatch):
    if chunk_elements:
        monkeypatch.setattr("tunebench.scoring.metrics.CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 16, 301):
        den = rng.integers(0, 4, n).astype(float)  # zero weights: a resample of only those counts 0
        cases = [(rng.integers(0, 2, n).astype(float), np.ones(n)), (np.minimum(rng.integers(0, 4, n), den), den),
                 (np.zeros(n), np.ones(n))]
        for num, den_ in cases:
            for resamples, confidence, seed in ((300, 0.9, 5), (1000, 0.95, 0)):
                args = dict(resamples=resamples, confidence=confidence, seed=seed)
                assert ratio_bootstrap(num, den_, **args) == reference_ratio_bootstrap(num, den_, **args)


def test_bootstrap_edge_cases_keep_their_behaviour():
    empty = bootstrap_ci([], [], ["accuracy", "macro_f1"], labels=LABELS, resamples=10)
    assert all(s["value"] == s["ci_low"] == s["ci_high"] == 0.0 for s in empty.values())
    assert bootstrap_ci([], [], ["token_f1"], resamples=10)["token_f1"]["ci_high"] == 0.0
    with pytest.raises(KeyError):
        bootstrap_ci(["x"], ["x"], ["token_f1", "bleu"])
    with pytest.raises(KeyError):  # a target outside the label set
        bootstrap_ci(["a", "zz"], ["a", "a"], ["accuracy"], labels=LABELS)
    one = bootstrap_ci(["a"], ["b"], ["accuracy", "macro_f1"], labels=LABELS, resamples=5)
    assert one["accuracy"]["ci_high"] == 0.0 and one["macro_f1"]["value"] == 0.0


def test_item_scores_and_normalization_equal_the_squad_definitions():
    def squad_normalize(text):  # the SQuAD script's steps, written out
        text = text.lower()
        text = "".join(ch for ch in text if ch not in set(string.punctuation))
        text = re.sub(r"\b(a|an|the)\b", " ", text)
        return " ".join(text.split())

    texts = ["The  Wireless, earbuds!", "an apple", "A-n the", "Ünïcode\tTHE\u00a0café", "", "(none)", "a.b.c"]
    for text in texts:
        assert normalize_answer(text) == squad_normalize(text)
    targets, preds = extraction_case(5, n=200)
    for metric, scorer in (("token_f1", token_f1), ("exact_match", exact_match)):
        assert item_scores(targets, preds, metric).tolist() == [scorer(p, t) for p, t in zip(preds, targets)]
