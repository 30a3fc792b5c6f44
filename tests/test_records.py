"""One score record for both producers: a task's cell and a benchmark's lm-eval run write records
the score schema accepts, with `source` saying which; records written before `source` existed are
read as they are written now."""

from __future__ import annotations

import json

import pytest
from test_scoring import score, write_cell

from tunebench.benchmarks.score import score_lm_eval
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, write_json, write_jsonl
from tunebench.core.errors import ConfigError
from tunebench.core.records import BENCHMARK_KEYS, TASK_KEYS, ScoreRecord, read_score, record_source
from tunebench.core.schema import load_schema

BOOT = {"resamples": 200, "confidence": 0.95, "seed": 0}


@pytest.fixture(scope="module")
def schema(repo_root):
    return load_schema(repo_root, "score.schema.json")


@pytest.fixture(scope="module")
def tasks(repo_root):
    project = load_project_from_file(repo_root)
    return project.tasks["ticket_routing"], project.tasks["ticket_product"]


def lm_eval_run(folder, *, partial=None):
    """lm-eval's files as the worker leaves them: instruction-level lists, a per-prompt boolean, a
    corpus-level value that is no mean over items, a stderr lm-eval could not compute."""
    task = "tunebench_ifbench"
    samples = [{"doc_id": k, "filter": "none", "prompt_level_strict_acc": k % 3 == 0,
                "inst_level_strict_acc": [k % 2 == 0, k % 3 == 0][: 1 + k % 2], "corpus_f1": 0.0}
               for k in range(12)]
    results = {"results": {task: {"prompt_level_strict_acc,none": 4 / 12, "prompt_level_strict_acc_stderr,none": "N/A",
                                  "inst_level_strict_acc,none": 8 / 18, "inst_level_strict_acc_stderr,none": 0.1,
                                  "corpus_f1,none": 0.5, "corpus_f1_stderr,none": 0.05}},
               "configs": {task: {}}, "n-shot": {task: 0}, "n-samples": {task: {"original": 20, "effective": 12}}}
    write_json(folder / "x" / "results_2026.json", results)
    write_jsonl(folder / "x" / f"samples_{task}_2026.jsonl", samples)
    write_json(folder / "tunebench_meta.json", {
        "lm_eval_task": task, "spec": {"kind": "ifbench"}, "chat_template": True, "limit": 12, "partial": partial,
        "unscored": {}, "seconds": 6.0, "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:00:06+00:00"})
    return folder


def benchmark_record(tmp_path, **kw):
    return score_lm_eval(run_dir=str(lm_eval_run(tmp_path / "run", **kw)), out_path=str(tmp_path / "bench.json"),
                         system="m+t-1", model="m", adapter="t-1", benchmark="ifbench", bootstrap=BOOT)


def test_both_producers_write_records_the_schema_accepts(tasks, tmp_path, schema):
    for task in tasks:
        paths = write_cell(tmp_path, task, 40, seed=1)
        written = score(task, paths)
        record = read_score(paths["score.json"], schema)
        assert record.source == "task" and record.method == "generate" and record.to_dict() == written
        assert list(written) == list(TASK_KEYS)
    written = benchmark_record(tmp_path)
    record = read_score(tmp_path / "bench.json", schema)
    assert record.source == "benchmark" and record.method is None and record.to_dict() == written
    assert list(written) == list(BENCHMARK_KEYS)
    metrics = record.metrics
    assert metrics["inst_level_strict_acc"]["ci_method"] == "bootstrap"
    assert metrics["corpus_f1"]["ci_method"].startswith("normal")  # not a mean over items
    assert record.unscored == {"count": 0, "reasons": []} and record.n == 12


def test_a_record_round_trips_through_its_dict(tmp_path, tasks):
    paths = write_cell(tmp_path, tasks[0], 10)
    for written in (score(tasks[0], paths), benchmark_record(tmp_path)):
        assert ScoreRecord.from_dict(written).to_dict() == written
        assert json.loads(json.dumps(written)) == written


def test_records_from_before_source_are_read_as_written_now(tmp_path, tasks, schema):
    paths = write_cell(tmp_path, tasks[0], 10)
    task_doc, bench_doc = score(tasks[0], paths), benchmark_record(tmp_path)
    old_task = {k: v for k, v in task_doc.items() if k != "source"}
    old_bench = {**{k: v for k, v in bench_doc.items() if k != "source"}, "method": "lm-eval"}
    assert record_source(old_task) == "task" and record_source(old_bench) == "benchmark"
    for old, new in ((old_task, task_doc), (old_bench, bench_doc)):
        write_json(tmp_path / "old.json", old)
        assert read_score(tmp_path / "old.json", schema).to_dict() == new


def test_a_malformed_record_names_the_file_and_field(tmp_path, tasks, schema):
    paths = write_cell(tmp_path, tasks[0], 10)
    doc = score(tasks[0], paths)
    cases = [({**doc, "method": None}, "method"),  # only a benchmark has no method
             ({**doc, "kind": "ifbench"}, "kind"),  # a task's record has no benchmark fields
             ({**doc, "items": [*doc["items"][:3], {"id": "x", "score": 1.0}]}, "items[3]")]
    for bad, field in cases:
        write_json(tmp_path / "bad.json", bad)
        with pytest.raises(ConfigError) as err:
            read_score(tmp_path / "bad.json", schema)
        assert err.value.file == str(tmp_path / "bad.json") and err.value.field == field, err.value
    bench = read_json(tmp_path / "bench.json") if (tmp_path / "bench.json").exists() else benchmark_record(tmp_path)
    write_json(tmp_path / "bad.json", {k: v for k, v in bench.items() if k != "lm_eval_task"})
    with pytest.raises(ConfigError) as err:
        read_score(tmp_path / "bad.json", schema)
    assert err.value.field == "lm_eval_task"


def test_the_summary_carries_source_and_renders_a_benchmark_as_before(tmp_path, tasks, repo_root):
    from tunebench.core.spec import System
    from tunebench.report.markdown import markdown
    from tunebench.report.summary import SummaryInputs, build_summary

    routing = tasks[0]
    paths = write_cell(tmp_path, routing, 30, seed=3)
    score(routing, paths)
    benchmark_record(tmp_path)
    write_json(tmp_path / "manifest.json", {"splits": {"test": {"rows": 30}}})
    inputs = SummaryInputs.read(
        score_paths=[paths["score.json"], str(tmp_path / "bench.json")],
        prepared_manifests={routing.name: str(tmp_path / "manifest.json")}, model_dirs={},
        tasks={routing.name: routing}, suite="demo", config_hash="0" * 64, root=repo_root,
        systems={"m+t-1": System.parse("m+t-1")}, bootstrap=BOOT)
    assert [s.source for s in inputs.scores] == ["task", "benchmark"]
    summary = build_summary(inputs)  # checked against summary.schema.json
    by_source = {c["source"]: c for c in summary["cells"] if c["primary"]}
    assert by_source["task"]["method"] == "generate" and "cost_per_query_usd" not in by_source["task"]
    assert "method" not in by_source["benchmark"] and by_source["benchmark"]["ci_method"] == "bootstrap"
    assert list(summary["provenance"]["benchmarks"]) == ["ifbench"]
    text = markdown(summary)
    assert "| m+t-1 | 0shot | 0.333 [" in text and " | lm-eval | 12 | 0 |" in text
    # a summary collected before `source` existed renders the same
    legacy = {**summary, "cells": [{k: v for k, v in c.items() if k != "source"}
                                   | ({"method": "lm-eval"} if c["source"] == "benchmark" else {})
                                   for c in summary["cells"]]}
    assert markdown(legacy) == text


@pytest.mark.parametrize("damage", ["drop a field", "add a field", "not an object"])
def test_an_item_without_the_first_items_fields_is_named(tasks, tmp_path, schema, damage):
    """Every item needs the first item's fields (the schema checks the first one only): the error
    names the file and the item, and the fix."""
    paths = write_cell(tmp_path, tasks[0], 40, seed=1)
    score(tasks[0], paths)
    doc = read_json(paths["score.json"])
    item = doc["items"][7]
    if damage == "drop a field":
        item.pop(next(iter(item)))
    elif damage == "add a field":
        item["extra"] = 1
    else:
        doc["items"][7] = [item]
    write_json(paths["score.json"], doc)
    with pytest.raises(ConfigError) as error:
        read_score(paths["score.json"], schema)
    text = str(error.value)
    assert "items[7]" in text and "score.json" in text and "rerun" in text
