"""The multinomial bootstrap of large cells: resampling n items is drawing the counts of their
distinct outcomes from Multinomial(n, outcome shares), so above MULTINOMIAL_ABOVE items a metric of
outcome counts is resampled that way. Forced onto small cells here, its intervals must agree with
index resampling within Monte-Carlo error, and every record says which method made its interval."""

from __future__ import annotations

import numpy as np
import pytest

import tunebench.scoring.metrics as metrics
from tunebench.compare.paired import paired_comparison
from tunebench.scoring.metrics import (
    INDICES,
    MULTINOMIAL,
    bootstrap_ci,
    distinct_outcomes,
    subset_mean,
)

LABELS = ["a", "b", "c", "d"]
N, RESAMPLES = 2000, 2000
TOLERANCE = 0.01  # interval endpoints; the Monte-Carlo error of either is about 0.001 here


@pytest.fixture
def multinomial(monkeypatch):
    """Every cell above 0 items takes the multinomial path, and index draws there are an error."""
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 0)
    monkeypatch.setattr("tunebench.compare.paired.MULTINOMIAL_ABOVE", 0)

    def no_index_draws(*args, **kwargs):
        raise AssertionError("index resampling on the multinomial path")
        yield  # a generator, like resample_chunks: the error comes when it is iterated

    monkeypatch.setattr(metrics, "resample_chunks", no_index_draws)
    monkeypatch.setattr("tunebench.compare.paired.resample_chunks", no_index_draws)


def classification_case(seed: int, right: float = 0.6) -> tuple[list[str], list[str | None]]:
    rng = np.random.default_rng(seed)
    targets = [LABELS[k] for k in rng.integers(0, len(LABELS), N)]
    draw, other = rng.random(N), rng.integers(0, len(LABELS), N)
    preds = [t if d < right else None if d > 0.9 else LABELS[o] for t, d, o in zip(targets, draw, other)]
    return targets, preds


def assert_close(fast: dict, slow: dict) -> None:
    assert fast["value"] == slow["value"]
    assert abs(fast["ci_low"] - slow["ci_low"]) < TOLERANCE and abs(fast["ci_high"] - slow["ci_high"]) < TOLERANCE


def test_binary_items_give_the_index_interval_within_monte_carlo_error(monkeypatch):
    correct = (np.random.default_rng(3).random(N) < 0.3).astype(float)
    args = dict(item_values={"exact_match": correct}, resamples=RESAMPLES, seed=0)
    slow = bootstrap_ci([""] * N, [""] * N, ["exact_match"], **args)["exact_match"]
    assert "bootstrap_method" not in slow  # below the threshold: index resampling, the record as it was
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 0)
    fast = bootstrap_ci([""] * N, [""] * N, ["exact_match"], **args)["exact_match"]
    assert fast["bootstrap_method"] == MULTINOMIAL and fast["bootstrap_items_above"] == 0
    assert fast["bootstrap_outcomes"] == 2
    assert_close(fast, slow)
    # the width is the binomial one: resampling n (not a handful of outcomes) items
    p = correct.mean()
    assert fast["ci_high"] - fast["ci_low"] == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / N), rel=0.15)


def test_the_multinomial_path_draws_no_item_positions(multinomial, monkeypatch):
    targets, preds = classification_case(5)
    names = ["accuracy", "macro_f1", "weighted_f1"]
    fast = bootstrap_ci(targets, preds, names, labels=LABELS, resamples=RESAMPLES, seed=1)
    assert {fast[m]["bootstrap_method"] for m in names} == {MULTINOMIAL}
    correct = np.array([float(t == p) for t, p in zip(targets, preds)])
    assert bootstrap_ci(targets, preds, ["exact_match"], item_values={"exact_match": correct},
                        resamples=RESAMPLES)["exact_match"]["bootstrap_method"] == MULTINOMIAL
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 10**9)  # back on the index path
    with pytest.raises(AssertionError, match="index resampling"):  # the guard is live
        bootstrap_ci(targets, preds, names, labels=LABELS, resamples=RESAMPLES, seed=1)


def test_classification_intervals_agree(monkeypatch):
    targets, preds = classification_case(5)
    names = ["accuracy", "macro_f1", "weighted_f1"]
    slow = bootstrap_ci(targets, preds, names, labels=LABELS, resamples=RESAMPLES, seed=1)
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 0)
    fast = bootstrap_ci(targets, preds, names, labels=LABELS, resamples=RESAMPLES, seed=1)
    seen = len({(t, p) for t, p in zip(targets, preds)})
    for name in names:
        assert fast[name]["bootstrap_method"] == MULTINOMIAL and fast[name]["bootstrap_outcomes"] == seen
        assert_close(fast[name], slow[name])
    assert fast != slow  # other random draws: the same distribution, not the same numbers


def test_the_threshold_and_the_outcome_cap_decide_the_method(monkeypatch):
    targets, preds = classification_case(2)
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", N)  # n == threshold: index resampling, no record
    assert "bootstrap_method" not in bootstrap_ci(targets, preds, ["accuracy"], labels=LABELS, resamples=50)["accuracy"]
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", N - 1)
    assert bootstrap_ci(targets, preds, ["accuracy"], labels=LABELS, resamples=50)["accuracy"]["bootstrap_method"] == MULTINOMIAL
    monkeypatch.setattr(metrics, "MULTINOMIAL_MAX_OUTCOMES", 3)  # more outcomes than that: indices, recorded
    record = bootstrap_ci(targets, preds, ["accuracy"], labels=LABELS, resamples=50)["accuracy"]
    assert record["bootstrap_method"] == INDICES and record["bootstrap_outcomes"] > 3
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 10**9)
    assert record["ci_low"] == bootstrap_ci(targets, preds, ["accuracy"], labels=LABELS, resamples=50)["accuracy"]["ci_low"]


def test_statistics_of_item_positions_keep_index_resampling(monkeypatch):
    rng = np.random.default_rng(4)
    values, present = np.round(rng.random(N) * 4) / 4, rng.random(N) < 0.7
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 0)
    out = bootstrap_ci([""] * N, [""] * N, ["token_f1", "present_f1"], item_values={"token_f1": values},
                       statistics={"present_f1": subset_mean(values, present)}, resamples=200)
    assert out["token_f1"]["bootstrap_method"] == MULTINOMIAL and out["token_f1"]["bootstrap_outcomes"] == 5
    assert out["present_f1"]["bootstrap_method"] == INDICES and out["present_f1"]["bootstrap_outcomes"] is None


def test_distinct_outcomes_rebuild_every_column():
    rng = np.random.default_rng(0)
    columns = [rng.integers(0, 3, 500).astype(float), rng.integers(0, 4, 500) / 4, np.full(500, 2.0)]
    code, per = distinct_outcomes(columns)
    assert len(per[0]) == len({tuple(row) for row in np.stack(columns, axis=1)})
    for column, values in zip(columns, per):
        assert np.array_equal(values[code], column)


def task_score(system: str, targets: list[str], preds: list[str | None]) -> dict:
    items = [{"id": f"i{k}", "target": t, "parsed": p, "score": float(t == p)} for k, (t, p) in enumerate(zip(targets, preds))]
    return {"system": system, "task": "routing", "prompting": "0shot", "source": "task", "method": "generate",
            "primary_metric": "accuracy", "metrics": {"accuracy": {"value": 0}, "macro_f1": {"value": 0}},
            "items": items}


@pytest.mark.parametrize("labels", [LABELS, None])
def test_paired_intervals_agree_with_index_resampling(monkeypatch, labels):
    targets, base_preds = classification_case(7, right=0.55)
    _, tuned_preds = classification_case(7, right=0.6)  # the same draws: strongly paired items
    base, tuned = task_score("base", targets, base_preds), task_score("ft", targets, tuned_preds)
    slow = paired_comparison(base, tuned, labels=labels, resamples=RESAMPLES, seed=0)
    monkeypatch.setattr(metrics, "MULTINOMIAL_ABOVE", 0)
    monkeypatch.setattr("tunebench.compare.paired.MULTINOMIAL_ABOVE", 0)
    fast = paired_comparison(base, tuned, labels=labels, resamples=RESAMPLES, seed=0)
    assert [r["metric"] for r in fast] == [r["metric"] for r in slow] == (["accuracy", "macro_f1"] if labels else ["accuracy"])
    for f, s in zip(fast, slow):
        assert f["bootstrap_method"] == MULTINOMIAL and "bootstrap_method" not in s
        assert f["delta_pp"] == s["delta_pp"] and f["direction"] == s["direction"]
        assert abs(f["ci_low_pp"] - s["ci_low_pp"]) < 100 * TOLERANCE
        assert abs(f["ci_high_pp"] - s["ci_high_pp"]) < 100 * TOLERANCE
        assert f["delta_sd_pp"] == pytest.approx(s["delta_sd_pp"], rel=0.1)
        # paired: far narrower than two independent intervals (the items' shared difficulty cancels)
        assert f["ci_high_pp"] - f["ci_low_pp"] < 2.5


def test_mcnemar_on_many_discordant_pairs_is_the_exact_binomial_tail(monkeypatch):
    import tunebench.compare.gate as gate

    base = (np.random.default_rng(2).random(3 * gate.MCNEMAR_EXACT_MAX) < 0.47).astype(int)
    fast = gate.mcnemar_exact(base, 1 - base)  # every pair discordant: above the exact sum's limit
    monkeypatch.setattr(gate, "MCNEMAR_EXACT_MAX", 10**9)
    exact = gate.mcnemar_exact(base, 1 - base)
    assert fast[1:] == exact[1:] and 0 < exact[0] < 0.05
    assert fast[0] == pytest.approx(exact[0], rel=1e-9)
