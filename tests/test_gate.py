"""Regression gates that noise can't fool: planted drops FAIL, noise PASSes, gains are IMPROVED, the
exit status follows, and a baseline is never overwritten silently."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunebench.atomic import read_json, write_json
from tunebench.baseline import BaselineError, compare_to_baseline, load_baseline
from tunebench.cli import main as cli
from tunebench.errors import TunebenchError
from tunebench.gate import FAIL, IMPROVED, PASS, gate_score, mcnemar_exact

GATES = {"alpha": 0.05, "power": 0.8, "default": {"relative_pct": 5}, "metrics": {}}
BOOT = {"resamples": 300, "confidence": 0.95, "seed": 0}
LABELS = ["a", "b"]


def score(correct, ids=None, system="m"):
    ids = ids or [f"i{k:04d}" for k in range(len(correct))]
    acc = float(np.mean(correct))
    half = 1.96 * np.sqrt(acc * (1 - acc) / len(correct))
    return {"system": system, "model": system, "adapter": None, "task": "routing", "prompting": "0shot",
            "method": "generate", "primary_metric": "accuracy", "n": len(correct),
            "metrics": {"accuracy": {"value": acc, "ci_low": max(0, acc - half), "ci_high": min(1, acc + half),
                                     "confidence": 0.95}},
            "items": [{"id": i, "target": "a", "parsed": "a" if ok else "b", "score": float(ok)}
                      for i, ok in zip(ids, correct)],
            "timing": {"items_per_s": 3.0}}


def verdict(base, current):
    (row,) = gate_score(base, current, gates=GATES, labels=LABELS, bootstrap=BOOT)
    return row


def test_a_planted_10pp_drop_on_500_items_fails():
    rng = np.random.default_rng(0)
    base = rng.random(500) < 0.7
    current = base.copy()
    flip = rng.choice(np.flatnonzero(base), size=50, replace=False)  # 50 of 500 right answers go wrong
    current[flip] = False
    row = verdict(score(base), score(current))
    assert row["delta_pp"] == pytest.approx(-10.0)
    assert row["verdict"] == FAIL and "McNemar" in row["test"] and row["p_value"] < 1e-6
    assert row["mde_pp"] < 10 and "dropped 10.0 pp" in row["why"]


def test_a_10pp_gain_is_improved():
    rng = np.random.default_rng(1)
    base = rng.random(500) < 0.6
    current = base.copy()
    current[rng.choice(np.flatnonzero(~base), size=50, replace=False)] = True
    row = verdict(score(base), score(current))
    assert row["verdict"] == IMPROVED and row["delta_pp"] == pytest.approx(10.0)


def test_noise_without_a_real_change_passes_in_at_least_95_percent_of_200_trials():
    rng = np.random.default_rng(2)
    truth = rng.random(500) < 0.7  # each item's "difficulty": same model, same items
    passes = 0
    for _ in range(200):
        base = np.where(rng.random(500) < 0.15, rng.random(500) < 0.7, truth)  # run-to-run noise
        current = np.where(rng.random(500) < 0.15, rng.random(500) < 0.7, truth)
        passes += verdict(score(base), score(current))["verdict"] == PASS
    assert passes >= 190


def test_a_big_drop_on_few_items_is_not_called_a_failure():
    """16 items: -12.5 pp is beyond ±5 % but within noise; the row says how much it could detect."""
    base = [True] * 10 + [False] * 6
    current = [True] * 8 + [False] * 8
    row = verdict(score(base), score(current))
    assert row["verdict"] == PASS and "within noise" in row["why"] and row["mde_pp"] > 12.5


def test_runs_without_shared_items_fall_back_to_an_unpaired_test():
    base = score([True] * 300 + [False] * 200)
    current = score([True] * 200 + [False] * 300, ids=[f"other{k}" for k in range(500)])
    row = verdict(base, current)
    assert row["test"].startswith("unpaired") and row["verdict"] == FAIL


def test_mcnemar_exact_matches_the_binomial_test():
    scipy_stats = pytest.importorskip("scipy.stats")
    base = np.array([1] * 30 + [0] * 10 + [1] * 50)
    current = np.array([0] * 30 + [1] * 10 + [1] * 50)
    p, b, c = mcnemar_exact(base, current)
    assert (b, c) == (30, 10)
    assert p == pytest.approx(scipy_stats.binomtest(10, 40, 0.5).pvalue)


@pytest.fixture
def run(tmp_path):
    """A finished run's files (summary + scores) and a repo root with the schemas."""
    from conftest import ROOT

    results = tmp_path / "results"
    write_json(results / "summary.json", {"suite": "demo", "provenance": {
        "git_commit": "abc", "config_hash": "0" * 64, "started_at": "2026-11-24T00:00:00+00:00"}})
    write_json(results / "scores/m/routing/0shot.json", score([True] * 70 + [False] * 30))
    return results, ROOT


def test_baseline_update_refuses_to_overwrite_and_keeps_the_previous_one(tmp_path, run, capsys):
    results, root = run
    args = ["--root", str(tmp_path), "baseline", "update", "--results", str(results)]
    (tmp_path / "configs/schema").mkdir(parents=True)
    (tmp_path / "configs/schema/baseline.schema.json").write_text((root / "configs/schema/baseline.schema.json").read_text())
    assert cli(args + ["--run-id", "r1"]) == 0
    first = read_json(tmp_path / "baselines/m.json")
    assert first["run_id"] == "r1" and first["scores"][0]["items"][0] == {"id": "i0000", "score": 1.0,
                                                                          "target": "a", "parsed": "a"}
    assert cli(args + ["--run-id", "r2"]) == 2
    assert "already holds run 'r1'" in capsys.readouterr().err
    assert read_json(tmp_path / "baselines/m.json")["run_id"] == "r1"  # untouched
    assert cli(args + ["--run-id", "r2", "--replace"]) == 0
    assert read_json(tmp_path / "baselines/m.json")["run_id"] == "r2"
    (archived,) = (tmp_path / "baselines/history/m").glob("*-r1.json")
    assert read_json(archived) == first  # recoverable


def test_gate_exit_status_follows_the_verdicts(tmp_path, run, capsys):
    results, root = run
    baseline = {"schema_version": 1, "system": "m", "model": "m", "run_id": "base", "created_at": "2026-11-01",
                "suite": "demo", "scores": [{**score([True] * 450 + [False] * 50), "items": score(
                    [True] * 450 + [False] * 50)["items"]}]}
    for name, correct, expected in (("same", [True] * 450 + [False] * 50, 0), ("drop", [True] * 350 + [False] * 150, 1)):
        report = compare_to_baseline(baseline, [score(correct)], system="m", gates=GATES, labels={"routing": LABELS},
                                     bootstrap=BOOT, baseline_file="baselines/m.json")
        write_json(tmp_path / name / "comparisons/m.json", report)
        assert cli(["gate", "--results", str(tmp_path / name)]) == expected
    out = capsys.readouterr().out
    assert "FAIL routing/0shot accuracy: 0.900 -> 0.700 (-20.0 pp)" in out
    assert cli(["gate", "--results", str(tmp_path / "nothing")]) == 2


def test_a_malformed_baseline_names_the_file_and_field(tmp_path, repo_root):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema_version": 1, "system": "m", "model": "m", "created_at": "x",
                                "suite": "demo", "scores": [{"task": "t"}]}))
    with pytest.raises(TunebenchError) as err:
        load_baseline(path, repo_root)
    assert err.value.file == str(path) and err.value.field == "run_id" and "add `run_id:`" in err.value.fix
    path.write_text("{not json")
    with pytest.raises(BaselineError, match="not valid JSON"):
        load_baseline(path, repo_root)


def test_snakemake_refuses_a_malformed_baseline_before_any_job(project_copy):
    import sys
    from pathlib import Path

    from conftest import run

    path = project_copy / "baselines/smollm2-135m-instruct.json"
    doc = read_json(path)
    metric = next(iter(doc["scores"][0]["metrics"]))
    doc["scores"][0]["metrics"][metric]["value"] = "high"
    write_json(path, doc)
    proc = run([str(Path(sys.executable).with_name("snakemake")), "--cores", "1", "--config", "suite=test"],
               cwd=project_copy)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"baselines/smollm2-135m-instruct.json: field `scores[0].metrics.{metric}.value`" in proc.stderr
    assert "Fix:" in proc.stderr and not (project_copy / "data").exists()  # nothing ran
