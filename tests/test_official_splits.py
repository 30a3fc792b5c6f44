"""Official splits, label maps and the richer prepared rows: a dataset's own test file is used as is,
integer labels are named by the data's ClassLabel feature (or `label_names`), `labels: auto` reads the
label set, and multiple-choice options, code tests and SQuAD-style answers travel with each row."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunebench.core.atomic import read_jsonl
from tunebench.core.errors import DataError, SourceError
from tunebench.core.schema import load_schema
from tunebench.core.spec import Task
from tunebench.data.prepare import check_local_source, prepare_splits
from tunebench.data.sources import fetch_raw, read_raw_splits

NAMES = ["activate_my_card", "age_limit", "card_arrival", "lost_or_stolen_card"]


def write_parquet(path: Path, rows: list[dict], features: dict | None = None) -> None:
    """A parquet file as `datasets` writes it: the features in the schema metadata under `huggingface`."""
    table = pa.Table.from_pylist(rows)
    if features:
        meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
        table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def class_label_dataset(folder: Path, n_train: int = 40, n_test: int = 12) -> Path:
    features = {"text": {"dtype": "string", "_type": "Value"}, "label": {"names": NAMES, "_type": "ClassLabel"}}
    write_parquet(folder / "default" / "train" / "0000.parquet",
                  [{"text": f"train text {i}", "label": i % 4} for i in range(n_train)], features)
    write_parquet(folder / "default" / "test" / "0000.parquet",
                  [{"text": f"test text {i}", "label": i % 3} for i in range(n_test)], features)
    return folder


def make_task(tmp_path: Path, **fields) -> Task:
    base = dict(name="t", type="classification", fields={"id": None, "input": "text", "target": "label"},
                split={"val": 0.25, "test": 0.2, "seed": 7, "stratify": True}, metrics=("accuracy",),
                file=Path("configs/tasks/t.yaml"), generation={"max_new_tokens": 8, "stop": ["\n"]})
    base.update(fields)
    return Task(**base)


def prepare(task: Task, tmp_path: Path, root: Path):
    raw = tmp_path / "raw"
    fetch_raw(task.source, raw, root=root)
    out = {s: str(tmp_path / "prep" / f"{s}.jsonl") for s in ("train", "val", "test")}
    manifest = prepare_splits(task, raw, out, str(tmp_path / "prep" / "manifest.json"),
                              load_schema(Path(__file__).parents[1], "row.schema.json"))
    return {s: read_jsonl(p) for s, p in out.items()}, manifest


def test_the_official_test_split_is_used_as_is_and_labels_auto_reads_classlabel_names(tmp_path):
    data = class_label_dataset(tmp_path / "banking")
    source = {"kind": "local", "path": str(data), "splits": {"train": "default/train/*.parquet",
                                                             "test": "default/test/*.parquet"}}
    task = make_task(tmp_path, source=source, auto_labels=True, expected_rows={"train": 40, "test": 12})
    splits, manifest = prepare(task, tmp_path, tmp_path)
    assert manifest["labels"] == NAMES  # the ClassLabel names, in index order, including one no row has
    assert [r["input"] for r in splits["test"]] == [f"test text {i}" for i in range(12)]  # untouched, in order
    assert [r["target"] for r in splits["test"]][:4] == [NAMES[0], NAMES[1], NAMES[2], NAMES[0]]
    # validation carved from train only, stratified: 25% of 40 is 10, 2 or 3 of each label's 10
    assert len(splits["val"]) == 10 and len(splits["train"]) == 30
    assert sorted(Counter(r["target"] for r in splits["val"]).values()) == [2, 2, 3, 3]
    assert manifest["splits"]["test"]["of"] == 12 and manifest["official_splits"] == ["test", "train"]
    ids = [r["id"] for rows in splits.values() for r in rows]
    assert len(ids) == len(set(ids)) == 52 and splits["test"][0]["id"] == "t-test-000000"
    assert task.with_labels(manifest).labels == tuple(NAMES)
    assert task.with_labels(tmp_path / "prep" / "manifest.json").labels == tuple(NAMES)


def test_a_truncated_official_split_names_its_expected_rows_entry(tmp_path):
    data = class_label_dataset(tmp_path / "banking", n_test=11)
    source = {"kind": "local", "path": str(data), "splits": {"train": "default/train/*.parquet",
                                                             "test": "default/test/*.parquet"}}
    task = make_task(tmp_path, source=source, auto_labels=True, expected_rows={"train": 40, "test": 12})
    with pytest.raises(DataError) as err:
        prepare(task, tmp_path, tmp_path)
    assert err.value.field == "expected_rows.test" and "11 rows" in err.value.problem


def test_a_split_glob_that_matches_nothing_is_named(tmp_path):
    data = class_label_dataset(tmp_path / "banking")
    source = {"kind": "local", "path": str(data), "splits": {"train": "default/train/*.parquet",
                                                             "test": "default/tst/*.parquet"}}
    with pytest.raises(SourceError) as err:
        fetch_raw(source, tmp_path / "raw", root=tmp_path)
    assert err.value.field == "source.splits.test" and "default/test/0000.parquet" in err.value.fix


def test_label_names_map_integer_targets_of_plain_files(tmp_path):
    (tmp_path / "d").mkdir()
    for split, n in (("train", 30), ("test", 6)):
        (tmp_path / "d" / f"{split}.jsonl").write_text(
            "".join(json.dumps({"sentence": f"{split} {i}", "label": i % 3}) + "\n" for i in range(n)))
    source = {"kind": "local", "path": "d", "splits": {"train": "train.jsonl", "test": "test.jsonl"}}
    task = make_task(tmp_path, source=source, labels=("negative", "neutral", "positive"),
                     label_names=("negative", "neutral", "positive"),
                     fields={"id": None, "input": "sentence", "target": "label"})
    splits, manifest = prepare(task, tmp_path, tmp_path)
    assert [r["target"] for r in splits["test"]] == ["negative", "neutral", "positive"] * 2
    assert manifest["labels"] == ["negative", "neutral", "positive"]
    bad = make_task(tmp_path, source=source, label_names=("negative", "neutral"),
                    fields={"id": None, "input": "sentence", "target": "label"})
    with pytest.raises(DataError) as err:
        prepare(bad, tmp_path / "bad", tmp_path)
    assert "label index 2" in err.value.problem and "label_names" in err.value.fix


def test_many_small_labels_still_give_every_split_its_share(tmp_path):
    """77 intents with 1-2 rows each: rounding each label's share alone would leave val and test empty."""
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"text": f"x {i}", "label": f"intent_{i % 77}"}) + "\n" for i in range(120)))
    task = make_task(tmp_path, source={"kind": "local", "path": "rows.jsonl"}, auto_labels=True,
                     split={"val": 0.1, "test": 0.2, "seed": 7, "stratify": True})
    splits, manifest = prepare(task, tmp_path, tmp_path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 84, "val": 12, "test": 24}
    assert len(manifest["labels"]) == 77


def test_labels_auto_without_names_is_the_sorted_set_of_targets(tmp_path):
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"text": f"x {i}", "label": ["b", "c", "a"][i % 3]}) + "\n" for i in range(30)))
    task = make_task(tmp_path, source={"kind": "local", "path": "rows.jsonl"}, auto_labels=True)
    _, manifest = prepare(task, tmp_path, tmp_path)
    assert manifest["labels"] == ["a", "b", "c"] and manifest["official_splits"] == []


def medmcqa_rows(n: int, cop=lambda i: i % 4, split: str = "train") -> list[dict]:
    return [{"id": f"{split}-q{i}", "question": f"Which one {i}?", "opa": f"alpha {i}", "opb": f"beta {i}",
             "opc": f"gamma {i}", "opd": f"delta {i}", "cop": cop(i), "subject_name": "Anatomy"} for i in range(n)]


def test_multiple_choice_options_and_answer_index_become_the_letter(tmp_path):
    write_parquet(tmp_path / "mc" / "data" / "train-00000-of-00001.parquet", medmcqa_rows(20))
    write_parquet(tmp_path / "mc" / "data" / "validation-00000-of-00001.parquet", medmcqa_rows(8, split="validation"))
    write_parquet(tmp_path / "mc" / "data" / "test-00000-of-00001.parquet", medmcqa_rows(8, lambda i: -1, "test"))
    fields = {"id": "id", "input": "question", "target": "cop", "options": ["opa", "opb", "opc", "opd"]}
    # answers withheld in the official test split: evaluate on validation, as its dataset card says
    source = {"kind": "local", "path": "mc", "splits": {"train": "data/train-*.parquet",
                                                        "test": "data/validation-*.parquet"}}
    task = make_task(tmp_path, type="multiple_choice", source=source, fields=fields,
                     split={"val": 0.2, "test": 0.2, "seed": 7, "stratify": False})
    splits, manifest = prepare(task, tmp_path, tmp_path)
    first = splits["test"][0]
    assert first["options"] == ["alpha 0", "beta 0", "gamma 0", "delta 0"] and first["target"] == "A"
    assert [r["target"] for r in splits["test"]] == list("ABCDABCD")
    assert first["meta"] == {"subject_name": "Anatomy"}  # options and answer are not repeated in meta
    withheld = dict(source, splits={"train": "data/train-*.parquet", "test": "data/test-*.parquet"})
    with pytest.raises(DataError) as err:
        prepare(make_task(tmp_path, type="multiple_choice", source=withheld, fields=fields,
                          split={"val": 0.2, "test": 0.2, "seed": 7, "stratify": False}), tmp_path / "w", tmp_path)
    assert "answer index -1" in err.value.problem and "validation" in err.value.fix


def test_a_list_target_holds_every_gold_answer_and_empty_needs_abstain(tmp_path):
    rows = [{"id": f"c{i}", "question": f"Q{i}", "context": "word " * 50,
             "answers": {"text": [f"clause {i}", f"the clause {i}"] if i % 2 else [], "answer_start": []}}
            for i in range(40)]
    write_parquet(tmp_path / "cuad" / "train.parquet", rows)
    fields = {"id": "id", "input": "question", "target": "answers.text", "context": "context"}
    source = {"kind": "local", "path": "cuad/train.parquet"}
    task = make_task(tmp_path, type="extraction", source=source, fields=fields, abstain="none",
                     test_sample_size=6, test_balance=True,
                     split={"val": 0.1, "test": 0.5, "seed": 7, "stratify": False})
    splits, manifest = prepare(task, tmp_path, tmp_path)
    present = [r for r in splits["test"] if r["target"]]
    assert len(splits["test"]) == 6 and len(present) == 3  # balanced 50/50, as the seeds balance CUAD
    assert manifest["splits"]["test"] == {**manifest["splits"]["test"], "rows": 6, "of": 20}
    assert all(r["answers"] == [r["target"], "the " + r["target"]] for r in present)
    assert all(r["answers"] == [] and r["context"].startswith("word") for r in splits["test"] if not r["target"])
    with pytest.raises(DataError) as err:
        prepare(make_task(tmp_path, type="extraction", source=source, fields=fields), tmp_path / "x", tmp_path)
    assert "empty target" in err.value.problem and "abstain" in err.value.fix


def test_code_rows_carry_their_tests_and_setup(tmp_path):
    rows = [{"task_id": i, "text": f"Write f{i}.", "code": f"def f{i}():\n    return {i}",
             "test_list": [f"assert f{i}() == {i}"], "test_setup_code": "", "challenge_test_list": []}
            for i in range(10)]
    (tmp_path / "mbpp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fields = {"id": "task_id", "input": "text", "target": "code", "tests": "test_list", "test_setup": "test_setup_code"}
    task = make_task(tmp_path, type="code", source={"kind": "local", "path": "mbpp.jsonl"}, fields=fields,
                     split={"val": 0.2, "test": 0.3, "seed": 7, "stratify": False})
    splits, _ = prepare(task, tmp_path, tmp_path)
    row = splits["test"][0]
    assert row["tests"] == [f"assert f{row['id']}() == {row['id']}"] and row["test_setup"] == ""
    assert row["meta"] == {"challenge_test_list": []}


def test_a_local_source_with_official_splits_is_checked_at_load(tmp_path):
    data = class_label_dataset(tmp_path / "banking")
    source = {"kind": "local", "path": str(data), "splits": {"train": "default/train/*.parquet",
                                                             "test": "default/test/*.parquet"}}
    check_local_source(make_task(tmp_path, source=source, auto_labels=True), tmp_path,
                       load_schema(Path(__file__).parents[1], "row.schema.json"))
    wrong = make_task(tmp_path, source=source, labels=("card_arrival", "age_limit"))
    with pytest.raises(DataError) as err:
        check_local_source(wrong, tmp_path, load_schema(Path(__file__).parents[1], "row.schema.json"))
    assert "activate_my_card" in err.value.problem and err.value.field == "labels"
    raw = tmp_path / "raw"
    fetch_raw(source, raw, root=tmp_path)
    assert {k: len(v) for k, v in read_raw_splits(raw).items()} == {"train": 40, "test": 12}
