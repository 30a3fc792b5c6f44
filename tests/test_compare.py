"""Paired comparisons of a fine-tuned system against its base: the interval and the arrow follow
the evidence on the same items."""

from __future__ import annotations

import numpy as np
import pytest

from tunebench.compare.paired import DOWN, FLAT, UP, forgetting_report, paired_comparison

LABELS = ["a", "b", "c"]
BOOT = {"resamples": 500, "confidence": 0.95, "seed": 0}


def task_score(system, correct: list[bool], prompting="0shot", ids=None):
    ids = ids or [f"i{k}" for k in range(len(correct))]
    items = [{"id": i, "target": "a", "parsed": "a" if ok else "b", "score": float(ok)} for i, ok in zip(ids, correct)]
    return {"system": system, "task": "routing", "prompting": prompting, "source": "task", "method": "generate",
            "primary_metric": "accuracy", "metrics": {"accuracy": {}, "macro_f1": {}}, "items": items}


def bench_score(system, passed: list[int]):
    items = [{"id": str(k), "score": float(p), "values": {"pass@1": [float(p), 1.0]}} for k, p in enumerate(passed)]
    return {"system": system, "task": "humaneval", "prompting": "0shot", "source": "benchmark",
            "primary_metric": "pass@1", "metrics": {"pass@1": {}}, "items": items}


def test_a_real_gain_points_up_and_its_interval_covers_it():
    rng = np.random.default_rng(1)
    base = rng.random(400) < 0.4
    tuned = base | (rng.random(400) < 0.3)  # the same items, some fixed
    (row, _f1) = paired_comparison(task_score("base", list(base)), task_score("ft", list(tuned)), labels=LABELS, **BOOT)
    delta = 100 * (tuned.mean() - base.mean())
    assert row["metric"] == "accuracy" and row["delta_pp"] == pytest.approx(delta, abs=1e-3)
    assert row["ci_low_pp"] < delta < row["ci_high_pp"] and row["ci_low_pp"] > 0
    assert row["direction"] == UP and row["p_value"] < 0.01 and row["n_paired"] == 400
    assert row["delta_rel_pct"] == pytest.approx(100 * delta / (100 * base.mean()), abs=0.01)


def test_a_drop_points_down_and_noise_stays_flat():
    base = [True] * 60 + [False] * 40
    worse = [True] * 30 + [False] * 70
    assert paired_comparison(task_score("b", base), task_score("f", worse), labels=LABELS, **BOOT)[0]["direction"] == DOWN
    shuffled = [True] * 59 + [False] + [True] + [False] * 39  # two items swap outcome
    row = paired_comparison(task_score("b", base), task_score("f", shuffled), labels=LABELS, **BOOT)[0]
    assert row["delta_pp"] == 0 and row["direction"] == FLAT


def test_only_shared_items_are_compared():
    base = task_score("b", [True, False, True], ids=["x", "y", "z"])
    tuned = task_score("f", [True, False], ids=["y", "w"])
    (row, _) = paired_comparison(base, tuned, labels=LABELS, **BOOT)
    assert row["n_paired"] == 1 and row["base"] == 0.0 and row["finetuned"] == 1.0


def test_forgetting_report_compares_the_own_task_with_each_base_prompting_and_benchmarks_like_for_like():
    scores = [task_score("m", [False] * 10), task_score("m", [True] * 3 + [False] * 7, "5shot"),
              task_score("m+routing-8", [True] * 10), bench_score("m", [1, 1, 0, 0]), bench_score("m+routing-8", [1, 0, 0, 0])]
    systems = {"m": {"model": "m", "adapter": None, "task": None},
               "m+routing-8": {"model": "m", "adapter": "routing-8", "task": "routing"}}
    (report,) = forgetting_report(scores, systems, {"routing": LABELS, "humaneval": None}, BOOT)
    target = [r for r in report["rows"] if r["role"] == "target" and r["metric"] == "accuracy"]
    assert [(r["base_prompting"], r["delta_pp"]) for r in target] == [("0shot", 100.0), ("5shot", 70.0)]
    (general,) = [r for r in report["rows"] if r["role"] == "general"]
    assert general["task"] == "humaneval" and general["delta_pp"] == -25.0 and general["n_paired"] == 4
    assert report["general"] == {"improved": 0, "regressed": 0, "unchanged": 1, "mean_delta_pp": -25.0}
    assert report["rows"][0]["role"] == "target"
