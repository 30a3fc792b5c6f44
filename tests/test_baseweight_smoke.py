"""The seeds' benchmark on its smoke suite, end to end: `snakemake --config suite=baseweight-smoke` runs
the same DAG as `baseweight` (six tasks, zero-shot, 5-shot and a LoRA per task) on the fixtures under
tests/fixtures/baseweight/ (the six datasets in their upstream Hub formats) with the embedded model and
one training step, offline (the network cut where the test runs as root)."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import copy_repo, offline_prefix, run
from tunebench.core.atomic import read_json

pytestmark = pytest.mark.e2e
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PRIMARY = {"banking77": "weighted_f1", "cuad": "token_f1", "ledgar": "macro_f1", "fpb": "macro_f1",
           "medmcqa": "accuracy", "mbpp": "pass_at_1"}  # the seeds' metric per task
RESULTS = "results/baseweight-smoke"
BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("baseweight") / "repo")
    proc = run([*offline_prefix(), SNAKEMAKE, "--cores", "2", "--config", "suite=baseweight-smoke"], cwd=repo,
               timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return repo


def test_the_summary_has_all_six_tasks_with_their_metrics_and_intervals(smoke):
    summary = read_json(smoke / RESULTS / "summary.json")
    jsonschema.validate(summary, read_json(smoke / "configs/schema/summary.schema.json"))
    assert set(PRIMARY) <= set(summary["tasks"])
    for task, metric in PRIMARY.items():
        assert summary["tasks"][task]["primary_metric"] == metric
        cells = [c for c in summary["cells"] if c["task"] == task and c["primary"]]
        conditions = {(c["system"], c["prompting"]) for c in cells}
        assert {(BASE, "0shot"), (BASE, "5shot")} <= conditions, task
        assert any(c["adapter"] for c in cells), f"{task}: no LoRA cell"
        for c in cells:
            if c["value"] is not None:
                assert c["ci_low"] <= c["value"] <= c["ci_high"], (task, c)
        info = summary["tasks"][task]
        assert info["evaluated"] <= info["test_of"]  # n of N, said in summary.md
    text = (smoke / RESULTS / "summary.md").read_text()
    for task in PRIMARY:
        assert f"## {task}" in text
    assert "test items" in text


def test_every_cell_has_its_error_classes(smoke):
    summary = read_json(smoke / RESULTS / "summary.json")
    cells = {(c["system"], c["task"], c["prompting"]) for c in summary["cells"] if c["source"] == "task"}
    rows = {(r["system"], r["task"], r["prompting"]): r for r in summary["errors"]}
    assert cells == set(rows)
    for row in rows.values():
        assert row["wrong"] == sum(row["errors"].values()) <= row["n"]
    assert any(r["wrong"] for r in rows.values())


def test_the_code_task_is_scored_by_running_its_tests_in_the_sandbox(smoke):
    record = read_json(smoke / RESULTS / f"scores/{BASE}/mbpp/0shot.json")
    assert record["task_type"] == "code" and record["primary_metric"] == "pass_at_1" and record["n"] > 0
    kinds = {"syntax", "runtime", "timeout", "assertion", "no_code", "truncated"}
    assert all(it["error"] is None or it["error"] in kinds for it in record["items"])
    assert all((it["score"] == 1.0) == (it["error"] is None) for it in record["items"])


def test_long_contracts_are_read_in_windows_and_detection_is_scored(smoke):
    meta = read_json(smoke / RESULTS / f"predictions/{BASE}/cuad/0shot.meta.json")
    assert meta["windows"]["per_item_max"] > 1  # the fixture's long contracts need several windows
    record = read_json(smoke / RESULTS / f"scores/{BASE}/cuad/0shot.json")
    assert {"token_f1", "detection_f1", "aupr"} <= set(record["metrics"])
    assert record["n"] < record["n_of"] or record["n"] == record["n_of"]


def test_the_multiple_choice_task_reads_options_and_letters(smoke):
    record = read_json(smoke / RESULTS / f"scores/{BASE}/medmcqa/0shot.json")
    assert record["task_type"] == "multiple_choice"
    assert {it["target"] for it in record["items"]} <= set("ABCD")
