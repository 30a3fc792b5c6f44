"""Each of the seeds' six task configs prepares its dataset from the Hub's files as they are laid out
upstream (tests/fixtures/baseweight/: the same paths, columns, arrow types and ClassLabel metadata;
README there says which rows are real): the shipped configs/tasks/<task>.yaml with the
baseweight-smoke suite's task_overrides, which only point `source` at the local copy."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_jsonl
from tunebench.core.schema import load_schema
from tunebench.data.prepare import prepare_splits
from tunebench.data.sources import fetch_raw

FIXTURES = Path(__file__).parent / "fixtures" / "baseweight"


@pytest.fixture(scope="module")
def project(repo_root):
    return load_project_from_file(repo_root, overrides={"suite": "baseweight-smoke"})


def prepared(project, name: str, tmp_path: Path):
    task = project.tasks[name]
    raw = tmp_path / name / "raw"
    fetch_raw(task.source, raw, root=project.root)
    out = {s: str(tmp_path / name / f"{s}.jsonl") for s in ("train", "val", "test")}
    manifest = prepare_splits(task, raw, out, str(tmp_path / name / "manifest.json"),
                              load_schema(project.root, "row.schema.json"))
    return task, {s: read_jsonl(p) for s, p in out.items()}, manifest


def upstream(path: str) -> list[dict]:
    return pq.read_table(FIXTURES / path).to_pylist()


def test_banking77_uses_its_official_test_split_and_classlabel_names(project, tmp_path):
    task, splits, manifest = prepared(project, "banking77", tmp_path)
    assert len(manifest["labels"]) == 77 and manifest["labels"][0] == "activate_my_card"
    assert "Refund_not_showing_up" in manifest["labels"]  # spelled as upstream
    test = upstream("banking77/default/test/0000.parquet")
    assert [r["input"] for r in splits["test"]] == [r["text"] for r in test]
    assert [r["target"] for r in splits["test"]] == [manifest["labels"][r["label"]] for r in test]
    assert len(splits["train"]) + len(splits["val"]) == 24 and manifest["splits"]["test"]["of"] == 12


def test_ledgar_keeps_its_official_validation_and_100_provision_types(project, tmp_path):
    _, splits, manifest = prepared(project, "ledgar", tmp_path)
    assert len(manifest["labels"]) == 100 and manifest["labels"][0] == "Adjustments"
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "val": 8, "test": 12}
    validation = upstream("ledgar/ledgar/validation-00000-of-00001.parquet")
    assert [r["input"] for r in splits["val"]] == [r["text"] for r in validation]


def test_fpb_has_only_train_so_validation_and_test_are_carved_stratified(project, tmp_path):
    task, splits, manifest = prepared(project, "fpb", tmp_path)
    assert manifest["labels"] == ["negative", "neutral", "positive"] and manifest["official_splits"] == ["train"]
    assert sum(len(v) for v in splits.values()) == 48
    assert {r["target"] for r in splits["test"]} == {"negative", "neutral", "positive"}


def test_medmcqa_options_become_letters_and_validation_is_the_test_set(project, tmp_path):
    _, splits, _ = prepared(project, "medmcqa", tmp_path)
    validation = upstream("medmcqa/data/validation-00000-of-00001.parquet")
    assert [r["id"] for r in splits["test"]] == [r["id"] for r in validation]  # answers withheld in test
    for row, raw in zip(splits["test"], validation):
        assert row["options"] == [raw["opa"], raw["opb"], raw["opc"], raw["opd"]]
        assert row["target"] == "ABCD"[raw["cop"]]


def test_mbpp_rows_carry_their_tests(project, tmp_path):
    _, splits, _ = prepared(project, "mbpp", tmp_path)
    test = upstream("mbpp/full/test-00000-of-00001.parquet")
    assert [r["id"] for r in splits["test"]] == [str(r["task_id"]) for r in test]
    assert all(r["tests"] == raw["test_list"] and r["test_setup"] == raw["test_setup_code"]
               for r, raw in zip(splits["test"], test))


def test_cuad_keeps_every_gold_span_and_samples_present_and_absent_evenly(project, tmp_path):
    task, splits, manifest = prepared(project, "cuad", tmp_path)
    test = {r["id"]: r for r in upstream("cuad/default/test/0000.parquet")}
    assert manifest["splits"]["test"]["of"] == 12 and len(splits["test"]) == task.test_sample_size
    present = [r for r in splits["test"] if r["target"]]
    assert len(present) == len(splits["test"]) // 2  # test_balance
    for row in splits["test"]:
        assert row["answers"] == test[row["id"]]["answers"]["text"] and row["context"] == test[row["id"]]["context"]
