"""Raw data -> prepared splits: deterministic, stratified, checked, loud on bad data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.errors import DataError
from tunebench.core.schema import load_schema
from tunebench.data.generators.tickets import INTENTS, NO_PRODUCT, generate
from tunebench.data.prepare import capped_subset, prepare_splits, write_train_subset
from tunebench.data.sources import fetch_raw, read_raw


def test_ticket_generator_is_deterministic_and_varied():
    a, b = generate(n_rows=500, seed=3), generate(n_rows=500, seed=3)
    assert a == b
    assert generate(n_rows=500, seed=4) != a
    intents = Counter(r["intent"] for r in a)
    assert len(intents) == len(INTENTS) >= 8
    assert max(intents.values()) - min(intents.values()) <= 1  # balanced
    assert len({r["text"] for r in a}) > 480  # hardly any duplicate texts
    assert len({r["id"] for r in a}) == 500
    products = [r for r in a if r["product"] != NO_PRODUCT]
    assert 0.5 < len(products) / len(a) < 0.95
    assert all(r["product"].lower() in r["text"].lower() for r in products)


def prepared(project, task_name, tmp_path):
    task = project.tasks[task_name]
    raw = tmp_path / "raw" / task_name
    fetch_raw(task.source, raw, root=project.root)
    out = {s: str(tmp_path / "prep" / f"{s}.jsonl") for s in ("train", "val", "test")}
    manifest = prepare_splits(task, raw, out, str(tmp_path / "prep" / "manifest.json"),
                              load_schema(project.root, "row.schema.json"))
    return task, out, manifest


def test_prepare_is_stratified_disjoint_and_deterministic(repo_root, tmp_path):
    project = load_project_from_file(repo_root)
    task, out, manifest = prepared(project, "ticket_routing", tmp_path / "a")
    splits = {s: read_jsonl(p) for s, p in out.items()}
    assert manifest["rows"] == task.expected_rows
    ids = [r["id"] for rows in splits.values() for r in rows]
    removed = [i for s in ("train", "val") for i in manifest["splits"][s]["removed"]["ids"]]
    assert task.split["decontaminate"] == manifest["decontaminate"] == "ngram"
    assert removed and not set(removed) & set(ids)  # rows that repeat a test item left train and val
    assert len(ids) == len(set(ids)) == task.expected_rows - len(removed)
    assert len(splits["test"]) == round(task.expected_rows * task.split["test"])
    for name, rows in splits.items():  # every split keeps every label; test (never cleaned) its balance
        counts = Counter(r["target"] for r in rows)
        assert set(counts) == set(task.labels)
        assert max(counts.values()) - min(counts.values()) <= (1 if name == "test" else len(rows) // 10)
    _, out2, _ = prepared(project, "ticket_routing", tmp_path / "b")
    for s in out:
        assert Path(out[s]).read_bytes() == Path(out2[s]).read_bytes()


def test_train_caps_are_stratified_and_nested(repo_root, tmp_path):
    project = load_project_from_file(repo_root)
    task, out, _ = prepared(project, "ticket_routing", tmp_path)
    write_train_subset(task, out["train"], 500, str(tmp_path / "train-500.jsonl"))
    write_train_subset(task, out["train"], 100, str(tmp_path / "train-100.jsonl"))
    big, small = read_jsonl(tmp_path / "train-500.jsonl"), read_jsonl(tmp_path / "train-100.jsonl")
    assert len(big) == 500 and len(small) == 100
    assert {r["id"] for r in small} <= {r["id"] for r in big}
    counts, whole = Counter(r["target"] for r in big), Counter(r["target"] for r in read_jsonl(out["train"]))
    # the train split's label proportions (decontamination took more of some labels than of others)
    assert all(abs(counts[k] - 500 * n / whole.total()) <= 1 for k, n in whole.items())
    with pytest.raises(DataError) as info:
        write_train_subset(task, out["train"], 10**6, str(tmp_path / "too-big.jsonl"))
    assert info.value.field == "train_sizes"


def test_capped_subset_keeps_proportions_of_unbalanced_groups():
    rows = [{"id": f"a{i}", "target": "a"} for i in range(90)] + [{"id": f"b{i}", "target": "b"} for i in range(10)]
    subset = capped_subset(rows, 20, seed=1, stratify=True)
    assert Counter(r["target"] for r in subset) == {"a": 18, "b": 2}


def write_raw(tmp_path: Path, rows: list[dict]) -> Path:
    raw = tmp_path / "raw"
    (raw / "files").mkdir(parents=True)
    with open(raw / "files" / "rows.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    (raw / "manifest.json").write_text(json.dumps(
        {"source": {"kind": "local"}, "format": "jsonl", "rows": len(rows),
         "files": [{"path": "files/rows.jsonl", "sha256": "-"}]}))
    return raw


@pytest.fixture
def routing_task(repo_root):
    return load_project_from_file(repo_root).tasks["ticket_routing"]


def run_prepare(task, raw, tmp_path, repo_root):
    out = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "val", "test")}
    return prepare_splits(task, raw, out, str(tmp_path / "manifest.json"),
                          load_schema(repo_root, "row.schema.json"))


def good_rows(n=3000):
    return generate(n_rows=n, seed=13)


@pytest.mark.parametrize("mutate, field, words", [
    (lambda rows: rows[:1234], "expected_rows", "truncated"),
    (lambda rows: [*rows[:-1], {**rows[-1], "id": rows[0]["id"]}], "id", "repeats id"),
    (lambda rows: [*rows[:-1], {**rows[-1], "intent": "complaint"}], "labels", "not in the task's label set"),
    (lambda rows: [*rows[:-1], {k: v for k, v in rows[-1].items() if k != "intent"}], "fields.target", "no column 'intent'"),
    (lambda rows: [*rows[:-1], {**rows[-1], "text": ""}], "input", "should be non-empty"),
])
def test_bad_raw_data_fails_loudly_and_writes_nothing(routing_task, tmp_path, repo_root, mutate, field, words):
    raw = write_raw(tmp_path, mutate(good_rows()))
    with pytest.raises(DataError) as info:
        run_prepare(routing_task, raw, tmp_path, repo_root)
    err = info.value
    assert err.field == field
    assert words in str(err)
    assert err.fix
    assert not (tmp_path / "train.jsonl").exists()


def test_read_raw_round_trips_generated_source(tmp_path):
    source = {"kind": "generated", "generator": "support_tickets", "params": {"n_rows": 50, "seed": 1}}
    manifest = fetch_raw(source, tmp_path / "raw")
    assert manifest["rows"] == 50
    assert read_raw(tmp_path / "raw") == generate(n_rows=50, seed=1)
    assert read_json(tmp_path / "raw" / "manifest.json")["source"] == source
