"""Our metrics equal the reference implementations; intervals are sound and reproducible."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tunebench.metrics import bootstrap_ci, classification_scores, exact_match, token_f1

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
