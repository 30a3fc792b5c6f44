"""Methods side by side: `methods: [generate, loglik]` makes each method a condition of the same task
cell (0shot, 0shot-loglik), on the same items and in-context examples, compared item by item."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest
import yaml
from test_scoring import BOOT, score, write_cell

from conftest import run
from tunebench.compare.paired import method_report, paired_comparison
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, write_json
from tunebench.core.errors import ConfigError
from tunebench.core.spec import parse_prompting

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def edit_task(root: Path, name: str, **changes) -> None:
    path = root / "configs" / "tasks" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_each_method_is_a_condition_named_after_it(project_copy):
    edit_task(project_copy, "ticket_routing", methods=["generate", "loglik"])
    task = load_project_from_file(project_copy).tasks["ticket_routing"]
    assert task.method == "generate" and task.promptings([0, 5]) == ["0shot", "0shot-loglik", "5shot", "5shot-loglik"]
    assert [parse_prompting(p) for p in ("5shot", "5shot-loglik")] == [(5, None), (5, "loglik")]


def test_a_method_that_does_not_fit_the_type_names_its_entry(project_copy):
    edit_task(project_copy, "ticket_product", methods=["generate", "loglik"])
    with pytest.raises(ConfigError) as err:
        load_project_from_file(project_copy)
    assert err.value.field == "methods[1]" and "ticket_product.yaml" in err.value.file


def test_the_plan_has_a_cell_per_method_on_the_same_split(project_copy):
    edit_task(project_copy, "ticket_routing", methods=["generate", "loglik"])
    proc = run([SNAKEMAKE, "-n", "--cores", "1", "--config", "suite=test"], cwd=project_copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = set(re.findall(r"results/test/predictions/([^/\s]+)/ticket_routing/([0-9a-z-]+)\.jsonl", proc.stdout))
    base = "smollm2-135m-instruct"
    assert {(base, p) for p in ("0shot", "0shot-loglik", "5shot", "5shot-loglik")} <= cells
    assert (f"{base}+ticket_routing-16", "0shot-loglik") in cells  # the adapter too, under each method
    assert not any(p.endswith("loglik") for s, p in re.findall(
        r"results/test/predictions/([^/\s]+)/ticket_product/([0-9a-z-]+)\.jsonl", proc.stdout))
    # one prepared split feeds every condition: the same items and in-context examples
    assert proc.stdout.count("rule split_prepare:") == 2


def test_the_summary_pairs_the_methods_item_by_item(tmp_path, repo_root):
    task = load_project_from_file(repo_root).tasks["ticket_routing"]
    records = []
    for seed, prompting, method in ((1, "5shot", "generate"), (2, "5shot-loglik", "loglik")):
        paths = write_cell(tmp_path / prompting, task, 60, seed=seed)  # the same item ids, other answers
        meta = read_json(paths["meta.json"])
        write_json(paths["meta.json"], {**meta, "prompting": prompting, "shots": 5, "method": method})
        (tmp_path / prompting).mkdir(exist_ok=True)
        records.append(score(dataclasses.replace(task, method=method), paths))
    [main, other] = records
    rows = method_report(records, {task.name: list(task.labels)}, BOOT)
    assert {(r["prompting"], r["other_prompting"], r["method"], r["other_method"]) for r in rows} == {
        ("5shot", "5shot-loglik", "generate", "loglik")}
    assert [r["metric"] for r in rows] == [r["metric"] for r in
                                           paired_comparison(main, other, labels=list(task.labels), **BOOT)]
    accuracy = next(r for r in rows if r["metric"] == "accuracy")
    assert accuracy["n_paired"] == 60
    assert accuracy["finetuned"] - accuracy["base"] == pytest.approx(
        other["metrics"]["accuracy"]["value"] - main["metrics"]["accuracy"]["value"], abs=1e-6)
