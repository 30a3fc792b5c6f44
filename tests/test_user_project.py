"""A new user's project through the real `snakemake` command: their own CSV data with many labels
built from shared parts (an official train and test file, integer labels named by `label_names`,
`labels: auto`, as README "Adding your own task" shows), their own model folder (a tiny random Llama: no download), `method: loglik`,
and a suite of their own with its own results folder. What this user hit on a first run must work
or fail clearly: the loglik cell reaches summary.json and the dashboard; a target named for another
suite's folder gets one `tunebench:` line naming the right target."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import copy_repo, run
from tunebench.core.atomic import read_json

pytestmark = pytest.mark.e2e
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TUNEBENCH = str(Path(sys.executable).with_name("tunebench"))
# labels that share parts, as BANKING77's do: a lenient parser would credit `card_payment` inside
# `card_payment_fee_charged`
LABELS = [f"{thing}_{what}" for thing in ("card_payment", "transfer", "top_up", "cash_withdrawal")
          for what in ("fee_charged", "not_recognised", "pending", "reverted", "failed")] + ["card_payment"]


def write_yaml(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def user_project(tmp_path_factory, tiny_llama_dir) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("user") / "repo")
    (repo / "data_in/intents").mkdir(parents=True)
    for split, n in (("train", 96), ("test", 30)):
        with open(repo / f"data_in/intents/{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "category"])
            for i in range(n):
                label = i % len(LABELS)
                writer.writerow([f"{split} message {i}: something about {LABELS[label].replace('_', ' ')}", label])
    write_yaml(repo / "configs/tasks/intents.yaml", {
        "name": "intents", "type": "classification",
        "source": {"kind": "local", "path": "data_in/intents", "format": "csv",
                   "splits": {"train": "train.csv", "test": "test.csv"}},
        "fields": {"id": None, "input": "text", "target": "category"}, "labels": "auto", "label_names": LABELS,
        "split": {"val": 0.1, "test": 0.2, "seed": 7}, "prompt": "prompts/intents.yaml",
        "metrics": ["accuracy", "macro_f1"], "generation": {"max_new_tokens": 8}, "method": "loglik"})
    (repo / "prompts/intents.yaml").write_text(
        'system: "Classify the message. Answer with the label only."\n'
        'user: "Labels: {{ labels | join(\', \') }}\\n\\nMessage: {{ input }}\\nLabel:"\n'
        'assistant: "{{ target }}"\n')
    write_yaml(repo / "configs/models/tiny.yaml", {
        "name": "tiny", "source": {"kind": "local", "path": str(tiny_llama_dir)}, "dtype": "float32",
        "batch_size": 8})
    config = yaml.safe_load((repo / "configs/config.yaml").read_text())
    config.update(models=["tiny"], tasks=["intents"], finetune={"tasks": [], "training": "cpu-lora"})
    config["prompting"]["shots"] = [0]
    config["suites"]["mine"] = {"description": "a user's own suite", "results_dir": "results/mine",
                                "max_eval_items": 10, "benchmarks": []}
    config["suite"] = "mine"
    write_yaml(repo / "configs/config.yaml", config)
    proc = run([SNAKEMAKE, "--cores", "2"], cwd=repo, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return repo


def test_a_loglik_task_reaches_the_summary_and_the_dashboard(user_project):
    summary = read_json(user_project / "results/mine/summary.json")
    jsonschema.validate(summary, read_json(user_project / "configs/schema/summary.schema.json"))
    cells = [c for c in summary["cells"] if c["task"] == "intents"]
    assert {c["metric"] for c in cells} == {"accuracy", "macro_f1"}
    assert all(c["method"] == "loglik" and c["n"] == 10 and c["parse_failures"] == 0 for c in cells)
    site = read_json(user_project / "results/mine/site/data.json")
    assert {c["method"] for c in site["cells"] if c["task"] == "intents"} == {"loglik"}
    table_row = next(line for line in (user_project / "results/mine/summary.md").read_text().splitlines()
                     if line.startswith("| tiny | 0shot |"))
    assert "| loglik | 10 | 0 |" in table_row
    assert not (user_project / "results/summary.json").exists()


def test_the_official_test_file_is_the_test_split_and_its_integer_labels_are_named(user_project):
    test = [json.loads(line) for line in (user_project / "data/prepared/intents/test.jsonl").read_text().splitlines()]
    assert [r["input"] for r in test] == [f"test message {i}: something about {LABELS[i % len(LABELS)].replace('_', ' ')}"
                                          for i in range(30)]  # as the file has it, in its order
    assert [r["target"] for r in test[:3]] == LABELS[:3]
    summary = read_json(user_project / "results/mine/summary.json")
    info = summary["tasks"]["intents"]
    assert info["labels"] == LABELS and (info["evaluated"], info["test_of"]) == (10, 30)
    assert info["splits"]["test"] == 30 and info["splits"]["train"] + info["splits"]["val"] == 96


def test_every_method_a_task_may_name_is_one_the_summary_schema_accepts(repo_root):
    task_schema = yaml.safe_load((repo_root / "configs/schema/task.schema.yaml").read_text())
    methods = set(task_schema["properties"]["method"]["enum"])
    summary_schema = read_json(repo_root / "configs/schema/summary.schema.json")
    cell = summary_schema["properties"]["cells"]["items"]["properties"]
    assert methods == set(cell["method"]["enum"])


def test_a_target_in_another_suites_folder_names_the_right_one(user_project):
    proc = run([SNAKEMAKE, "--cores", "1", "-n", "results/summary.json"], cwd=user_project, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "MissingRule" not in proc.stderr
    assert ("tunebench: configs/config.yaml: field `suite`: the target results/summary.json is an output of "
            "suite 'demo' (results/), but this run's suite is 'mine', which writes to results/mine/") in proc.stderr
    assert "Fix: ask for results/mine/summary.json" in proc.stderr
    proc = run([SNAKEMAKE, "--cores", "1", "-n", "results/mine/summary.json"], cwd=user_project, timeout=300)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr


def test_the_gate_and_baseline_update_read_the_configured_suites_folder(user_project):
    """No baseline for this user's model yet: the gate says so and exits 3 (not a green PASS); the
    baseline is then stored from the suite's own folder, results/mine, with no --results."""
    proc = run([TUNEBENCH, "gate"], cwd=user_project, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "NOT COMPARED tiny" in proc.stdout and "PASS" not in proc.stdout.replace("NOT COMPARED", "")
    proc = run([TUNEBENCH, "baseline", "update", "--run-id", "first"], cwd=user_project, timeout=300)
    baseline = user_project / "baselines/tiny.json"
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "wrote baselines/tiny.json: 1 scores of tiny from run first (mine)" in proc.stdout
        assert read_json(baseline)["suite"] == "mine"
    finally:
        baseline.unlink(missing_ok=True)
