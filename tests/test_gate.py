"""Regression gates that noise can't fool: planted drops FAIL, noise PASSes, gains are IMPROVED, the
exit status follows, and a baseline is never overwritten silently."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tunebench.cli import main as cli
from tunebench.compare.baseline import BaselineError, compare_to_baseline, load_baseline
from tunebench.compare.gate import FAIL, IMPROVED, PASS, gate_score, mcnemar_exact
from tunebench.core.atomic import read_json, write_json
from tunebench.core.errors import TunebenchError

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
    assert "FAIL routing/0shot accuracy: 0.900 -> 0.700 (-20.0 pp, p<0.001)" in out
    assert "gate: FAIL (1 metric(s) failed of 1 compared)" in out
    assert cli(["gate", "--results", str(tmp_path / "nothing")]) == 2


def test_a_malformed_baseline_names_the_file_and_field(tmp_path, repo_root):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema_version": 1, "system": "m", "model": "m", "created_at": "x",
                                "suite": "demo", "scores": [{"task": "t"}]}))
    with pytest.raises(TunebenchError) as err:
        load_baseline(path, repo_root)
    assert err.value.file == str(path) and err.value.field == "run_id" and "add `run_id:`" in err.value.fix
    path.write_text("{not json")
    with pytest.raises(BaselineError, match="not valid JSON") as err:
        load_baseline(path, repo_root)
    assert "baselines/history/m/" in err.value.fix  # restore it, or write it again: never a stack
    path.write_bytes(b'{"system": "caf\xe9"}')  # saved in Latin-1 by an editor
    with pytest.raises(BaselineError, match="not UTF-8"):
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


# ---------- `tunebench gate` as a user runs it ----------

TUNEBENCH = str(Path(sys.executable).with_name("tunebench"))
BASELINE = {"schema_version": 1, "system": "m", "model": "m", "run_id": "base", "created_at": "2026-11-01",
            "suite": "demo", "scores": [score([True] * 450 + [False] * 50)]}


def tunebench(*args: str, cwd: Path):
    from conftest import run

    return run([TUNEBENCH, *args], cwd=cwd, timeout=120)


def write_report(results: Path, baseline: dict | None, correct: list[bool], system: str = "m") -> None:
    report = compare_to_baseline(baseline, [score(correct, system=system)], system=system, gates=GATES,
                                 labels={"routing": LABELS}, bootstrap=BOOT, baseline_file=f"baselines/{system}.json")
    write_json(results / "comparisons" / f"{system}.json", report)


def test_a_gate_that_compared_nothing_says_not_compared_and_exits_3(tmp_path):
    same = [True] * 450 + [False] * 50
    write_report(tmp_path / "no-baseline", None, same)
    proc = tunebench("gate", "--results", "no-baseline", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # was 0, with a green "0 PASS, 0 FAIL, 0 IMPROVED"
    assert "NOT COMPARED m: no baseline (baselines/m.json)" in proc.stdout
    assert "tunebench baseline update --results no-baseline --run-id ID --system m" in proc.stdout
    assert "gate: NOT COMPARED" in proc.stdout and "PASS" not in proc.stdout

    other_cells = {**BASELINE, "scores": [{**BASELINE["scores"][0], "prompting": "5shot"}]}  # shares no cell
    write_report(tmp_path / "other-cells", other_cells, same)
    proc = tunebench("gate", "--results", "other-cells", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "NOT COMPARED m vs baselines/m.json (run base; baseline suite `demo`)" in proc.stdout
    assert "none of this run's cells is in the baseline (routing/0shot)" in proc.stdout
    assert "--system m --replace" in proc.stdout and "0 PASS" not in proc.stdout


def test_systems_without_a_baseline_are_named_and_strict_fails_on_them(tmp_path):
    same = [True] * 450 + [False] * 50
    write_report(tmp_path / "r", BASELINE, same)
    write_report(tmp_path / "r", None, same, system="m+tuned")
    proc = tunebench("gate", "--results", "r", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # what was compared passed
    assert "m vs baselines/m.json (run base): 1 PASS, 0 FAIL, 0 IMPROVED" in proc.stdout
    assert "NOT COMPARED m+tuned: no baseline" in proc.stdout
    assert "gate: PASS (1 metric(s) compared; not compared: m+tuned)" in proc.stdout
    proc = tunebench("gate", "--results", "r", "--strict", cwd=tmp_path)
    assert proc.returncode == 3 and "gate: NOT COMPARED (--strict)" in proc.stdout
    write_report(tmp_path / "r", BASELINE, [True] * 350 + [False] * 150)  # a FAIL outranks "not compared"
    assert tunebench("gate", "--results", "r", "--strict", cwd=tmp_path).returncode == 1


def test_gate_help_documents_the_exit_statuses(tmp_path):
    proc = tunebench("gate", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for line in ("0  every compared metric passed", "1  at least one metric FAILed", "2  bad input",
                 "3  not compared"):
        assert line in proc.stdout
    assert "--strict" in proc.stdout and "--config" in proc.stdout and "--suite" in proc.stdout


def test_gate_reads_the_configured_suites_results_dir(project_copy, tmp_path):
    """`suite: test` writes results/test: the gate reads it there, not results/."""
    write_report(project_copy / "results/test", BASELINE, [True] * 350 + [False] * 150)  # a FAIL
    (project_copy / "ci.yaml").write_text("suite: test\n")
    for args in (["gate", "--config", "suite=test"], ["gate", "--suite", "test"],
                 ["gate", "--configfile", "configs/config.yaml", "ci.yaml"], ["gate", "--results", "results/test"]):
        proc = tunebench(*args, cwd=project_copy)
        assert proc.returncode == 1, (args, proc.stdout + proc.stderr)
        assert "FAIL routing/0shot accuracy" in proc.stdout
    proc = tunebench("--root", str(project_copy), "gate", "--suite", "test", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    proc = tunebench("gate", cwd=project_copy)  # the configured suite, demo: results/
    assert proc.returncode == 2 and "no comparisons in results/comparisons:" in proc.stderr
    proc = tunebench("gate", "--suite", "nope", cwd=project_copy)
    assert proc.returncode == 2 and "unknown suite 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_p_values_below_0_001_are_shown_as_such_and_json_keeps_the_number(repo_root):
    from tunebench.compare.gate import format_p
    from tunebench.report.markdown import comparison_markdown, gate_markdown

    assert [format_p(p) for p in (0.0, 1e-12, 0.00099, 0.001, 0.0123, 0.05, 1.0, None)] == [
        "<0.001", "<0.001", "<0.001", "0.001", "0.0123", "0.05", "1", "-"]
    report = compare_to_baseline(BASELINE, [score([True] * 350 + [False] * 150)], system="m", gates=GATES,
                                 labels={"routing": LABELS}, bootstrap=BOOT, baseline_file="baselines/m.json")
    (row,) = report["rows"]
    assert row["p_value"] == 0.0 and isinstance(row["p_value"], float)  # rounded in the JSON, still a number
    line = next(li for li in "\n".join(gate_markdown({"gates": [report]})).splitlines() if li.startswith("| routing"))
    assert line.split(" | ")[7] == "<0.001" and "p<0.001" in line
    assert "NOT COMPARED" in "\n".join(gate_markdown({"gates": [{**report, "rows": [], "not_in_baseline": ["x"]}]}))
    comparison = {"system": "m+t", "base_system": "m", "adapter": "t", "task": "routing", "rows": [{
        "role": "target", "task": "routing", "metric": "accuracy", "primary": True, "base": 0.5, "finetuned": 0.9,
        "base_prompting": "0shot", "delta_pp": 40.0, "ci_low_pp": 35.0, "ci_high_pp": 45.0, "delta_rel_pct": 80.0,
        "direction": "↗", "p_value": 0.0, "n_paired": 500}],
        "general": {"improved": 0, "regressed": 0, "unchanged": 0, "mean_delta_pp": None}}
    line = next(li for li in "\n".join(comparison_markdown({"comparisons": [comparison]})).splitlines()
                if li.startswith("| target"))
    assert line.split(" | ")[8] == "<0.001", line  # was "0"


@pytest.mark.skipif(shutil.which("node") is None, reason="no node")
def test_the_dashboard_shows_p_values_below_0_001_as_such(repo_root):
    import re
    import subprocess

    app = (repo_root / "site/src/app.js").read_text()
    source = re.search(r"\n  function fmtP\(p\) \{.*?\n  \}\n", app, re.S).group(0)
    assert app.count("get: (r) => fmtP(r.p_value)") == 2 and "get: (r) => r.p_value" not in app  # every p shown goes through it
    values = [0, 1e-12, 0.00099, 0.001, 0.0123, 0.05, 1, None]
    out = subprocess.run(["node", "-e", source + f"console.log(JSON.stringify({json.dumps(values)}.map(fmtP)))"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["<0.001", "<0.001", "<0.001", "0.001", "0.0123", "0.05", "1", "–"]
