"""Error classification (the seeds' classify_errors step): every wrong item of a cell gets one class
from its task type, counted in the score record, the summary and summary.md, with a classification
task's most frequent confusions and how much of the test split the cells evaluate."""

from __future__ import annotations

from collections import Counter

import pytest
from test_scoring import BOOT, score, write_cell

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_jsonl, write_json
from tunebench.predict.score import score_predictions
from tunebench.report.markdown import markdown
from tunebench.report.summary import SummaryInputs, build_summary


@pytest.fixture(scope="module")
def routing(repo_root):
    return load_project_from_file(repo_root).tasks["ticket_routing"]


def expected_class(target, parsed, tokens_out, cap):
    if parsed == target:
        return None
    if tokens_out >= cap:
        return "truncated"
    return "no_answer" if parsed is None else "other_label"


def test_each_wrong_item_has_one_class_and_the_record_counts_them(routing, tmp_path):
    paths = write_cell(tmp_path, routing, 80, seed=11)
    record = score(routing, paths)
    preds = {p["id"]: p for p in read_jsonl(paths["jsonl"])}
    cap = routing.generation["max_new_tokens"]
    want = {it["id"]: expected_class(it["target"], preds[it["id"]]["parsed"], preds[it["id"]]["tokens_out"], cap)
            for it in read_jsonl(paths["test.jsonl"])}
    assert {it["id"]: it["error"] for it in record["items"]} == want
    assert record["errors"] == dict(Counter(e for e in want.values() if e).most_common())
    assert {"no_answer", "other_label", "truncated"} <= set(record["errors"])  # the cell has each kind
    assert sum(record["errors"].values()) == sum(it["score"] == 0 for it in record["items"])
    pairs = Counter((it["target"], it["parsed"]) for it in record["items"]
                    if it["error"] and it["parsed"] is not None)
    top = record["confusions"][0]
    assert top["count"] == max(pairs.values()) and pairs[(top["target"], top["answer"])] == top["count"]
    assert record["n_of"] == 80 and record["labels"] == list(routing.labels)
    assert set(record["labels_absent"]) == set(routing.labels[7:])  # write_cell draws targets from the first 7


def test_summary_and_markdown_show_error_classes_confusions_and_coverage(routing, tmp_path, repo_root):
    paths = write_cell(tmp_path, routing, 30, seed=5)
    # a test_sample_size of 30 out of a 40-item test split
    write_json(tmp_path / "manifest.json", {"splits": {"train": {"rows": 100}, "val": {"rows": 10},
                                                       "test": {"rows": 30, "of": 40}}})
    record = score_predictions(task=routing, predictions_path=paths["jsonl"], meta_path=paths["meta.json"],
                               test_path=paths["test.jsonl"], max_items=None, bootstrap=BOOT,
                               out_path=paths["score.json"], manifest_path=str(tmp_path / "manifest.json"))
    summary = build_summary(SummaryInputs.read(
        score_paths=[paths["score.json"]], prepared_manifests={routing.name: str(tmp_path / "manifest.json")},
        model_dirs={}, tasks={routing.name: routing}, suite="demo", config_hash="0" * 64, root=repo_root,
        bootstrap=BOOT))
    [row] = summary["errors"]
    assert row["errors"] == record["errors"] and row["wrong"] == sum(record["errors"].values())
    info = summary["tasks"]["ticket_routing"]
    assert (info["evaluated"], info["test_of"]) == (30, 40)
    text = markdown(summary)
    assert f"{len(routing.labels)} labels, {len(record['labels_absent'])} of them absent" in text
    assert "n = 30 of 40 test items (a subset)" in text
    assert "Errors by class:" in text and f"| {row['wrong']} of 30 |" in text
    top = record["confusions"][0]
    assert f"{top['target']} -> {top['answer']} ({top['count']})" in text


def test_an_extraction_cell_keeps_its_count_beside_its_wrong_class(repo_root, tmp_path):
    """Extraction has a class named `wrong`: the table's count column must not be overwritten by it."""
    product = load_project_from_file(repo_root).tasks["ticket_product"]
    paths = write_cell(tmp_path, product, 40, seed=2)
    record = score(product, paths)
    assert record["errors"].get("wrong")
    write_json(tmp_path / "manifest.json", {"splits": {"test": {"rows": 40}}})
    summary = build_summary(SummaryInputs.read(
        score_paths=[paths["score.json"]], prepared_manifests={product.name: str(tmp_path / "manifest.json")},
        model_dirs={}, tasks={product.name: product}, suite="demo", config_hash="0" * 64, root=repo_root,
        bootstrap=BOOT))
    text = markdown(summary)
    header = next(line for line in text.splitlines() if line.startswith("| system | prompting | wrong of n |"))
    assert "| wrong |" in header
    wrong = sum(record["errors"].values())
    assert f"| m | 0shot | {wrong} of 40 |" in text
