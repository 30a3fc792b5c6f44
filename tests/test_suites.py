"""A suite's own models, tasks and fine-tuning, and its task_overrides (tunebench.config.suites)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tunebench.config.loader import load_project_from_file
from tunebench.config.suites import merge_task
from tunebench.core.atomic import write_jsonl
from tunebench.core.errors import ConfigError
from tunebench.hub.scope import SyncScope

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "configs/config.yaml").read_text())


def with_suite(name: str, suite: dict, **top) -> dict:
    """Overrides for load_project_from_file: the config's suites plus `name`, chosen."""
    suites = copy.deepcopy(CONFIG["suites"])
    suites[name] = {"results_dir": f"results/{name}", "max_eval_items": 4, **suite}
    return {"suites": suites, "suite": name, **top}


def load_error(overrides: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_project_from_file(ROOT, overrides=overrides)
    return info.value


def test_merge_task_merges_mappings_replaces_other_values_and_null_removes():
    base = {"source": {"kind": "hub", "repo_id": "org/x", "revision": "main"}, "expected_rows": 10,
            "split": {"val": 0.1, "seed": 7}, "metrics": ["accuracy", "macro_f1"]}
    out = merge_task(base, {"split": {"seed": 8}, "metrics": ["macro_f1"], "expected_rows": None,
                            "source": {"revision": "v2"}})
    assert out == {"source": {"kind": "hub", "repo_id": "org/x", "revision": "v2"}, "split": {"val": 0.1, "seed": 8},
                   "metrics": ["macro_f1"]}
    assert base["expected_rows"] == 10 and base["split"]["seed"] == 7  # the task file's doc is untouched
    # a source of another kind replaces the whole mapping: repo_id belongs to the hub kind
    local = merge_task(base, {"source": {"kind": "local", "path": "x.jsonl", "format": None}})
    assert local["source"] == {"kind": "local", "path": "x.jsonl"}


def test_the_chosen_suite_runs_its_own_models_tasks_and_fine_tuning():
    project = load_project_from_file(ROOT, overrides=with_suite("solo", {
        "tasks": ["ticket_product"], "finetune": {"tasks": ["ticket_product"]}, "train_sizes": [32]}))
    assert list(project.tasks) == ["ticket_product"]
    assert project.config["tasks"] == ["ticket_product"]  # the workflow's config says the same
    assert project.config["finetune"] == {"tasks": ["ticket_product"], "training": "cpu-lora"}
    assert list(project.systems) == ["smollm2-135m-instruct", "smollm2-135m-instruct+ticket_product-32"]
    default = load_project_from_file(ROOT)  # another suite chosen: the config's own grid
    assert list(default.tasks) == ["ticket_routing", "ticket_product"]


def test_task_overrides_change_the_suites_task_and_not_the_file(tmp_path):
    overrides = with_suite("small", {
        "data_dir": "data/small", "train_sizes": [16],
        "task_overrides": {"ticket_routing": {"source": {"params": {"n_rows": 300}}, "expected_rows": 300,
                                              "split": {"seed": 9}}}})
    project = load_project_from_file(ROOT, overrides=overrides)
    task = project.tasks["ticket_routing"]
    assert task.source["params"] == {"n_rows": 300, "seed": 13} and task.expected_rows == 300
    assert task.split["seed"] == 9 and task.split["val"] == 0.1  # merged with the file's, defaults filled
    assert task.file == Path("configs/tasks/ticket_routing.yaml")
    assert project.tasks["ticket_product"] == load_project_from_file(ROOT).tasks["ticket_product"]
    assert load_project_from_file(ROOT).tasks["ticket_routing"].source["params"]["n_rows"] == 3000
    # its data lives in its own folder, and that is what the hub sync carries
    assert project.layout.prepared("ticket_routing", "test") == "data/small/prepared/ticket_routing/test.jsonl"
    assert project.layout.raw("ticket_routing") == "data/small/raw/ticket_routing"
    assert "data/small/prepared/ticket_routing" in SyncScope.from_project(project).roots()
    assert load_project_from_file(ROOT).layout.prepared("t") == "data/prepared/t/train.jsonl"


def test_a_task_override_can_point_a_task_at_local_rows(tmp_path):
    routing = yaml.safe_load((ROOT / "configs/tasks/ticket_routing.yaml").read_text())
    labels = routing["labels"]
    rows = [{"id": f"r{i}", "text": f"ticket {i} about my order", "intent": labels[i % len(labels)]}
            for i in range(60)]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    project = load_project_from_file(ROOT, overrides=with_suite("local", {
        "data_dir": "data/local", "train_sizes": [16],  # 60 rows leave 42 to train on: no cap of 500
        "task_overrides": {"ticket_routing": {"source": {"kind": "local", "path": str(tmp_path / "rows.jsonl")},
                                              "expected_rows": None}}}))
    task = project.tasks["ticket_routing"]
    assert task.source == {"kind": "local", "path": str(tmp_path / "rows.jsonl")} and task.expected_rows is None


def test_an_override_that_breaks_the_task_names_the_file_and_the_override():
    err = load_error(with_suite("bad", {"data_dir": "data/bad",
                                        "task_overrides": {"ticket_routing": {"split": {"val": "a lot"}}}}))
    assert "configs/tasks/ticket_routing.yaml" in err.file
    assert "suites.bad.task_overrides.ticket_routing" in err.file and err.field.startswith("split")


@pytest.mark.parametrize(("suite", "field"), [
    ({"data_dir": "data/x", "task_overrides": {"banking_nope": {"expected_rows": 3}}}, "suites.x.task_overrides.banking_nope"),
    ({"data_dir": "data/x", "tasks": ["ticket_product"], "finetune": {"tasks": []},
      "task_overrides": {"ticket_routing": {}}}, "suites.x.task_overrides.ticket_routing"),
    ({"models": ["smollm2-135m-instruct", "no-such-model"]}, "suites.x.models[1]"),
    ({"tasks": ["ticket_product", "no_such_task"], "finetune": {"tasks": []}}, "suites.x.tasks[1]"),
    ({"tasks": ["ticket_product"], "finetune": {"tasks": ["ticket_routing"]}}, "suites.x.finetune.tasks[0]"),
    ({"tasks": ["ticket_product"]}, "suites.x.tasks"),  # the config fine-tunes ticket_routing
    ({"finetune": {"training": "no-such-training"}}, "suites.x.finetune.training"),
    ({"task_overrides": {"ticket_routing": {"expected_rows": 3000}}}, "suites.x.data_dir"),  # shares data/
])
def test_a_suites_own_grid_is_checked_with_the_suites_field(suite, field):
    err = load_error(with_suite("x", suite))
    assert err.file == "configs/config.yaml" and err.field == field, str(err)
    assert err.fix


def test_another_suites_mistake_is_found_too():
    overrides = with_suite("x", {"models": ["no-such-model"]})
    overrides["suite"] = "demo"
    err = load_error(overrides)
    assert err.field == "suites.x.models[0]" and "smollm2-135m-instruct" in err.fix
