"""Task types are a registry: the built-in ones declare what the config checks, prepare, few-shot
drawing and scoring ask of them, and a new type is its own module plus the task schema's `type` enum.

The toy type `yes_no` below is that module: registered from this test, it is loaded, checked,
prepared and scored by the unchanged package; the only other edit is the enum, in a copied schema."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, read_jsonl, write_json, write_jsonl
from tunebench.core.errors import ConfigError
from tunebench.core.schema import load_schema
from tunebench.core.spec import Task
from tunebench.data.prepare import prepare_splits
from tunebench.data.sources import fetch_raw
from tunebench.predict.score import score_predictions
from tunebench.scoring.metrics import CLASSIFICATION, DETECTION, EXTRACTION
from tunebench.tasks import ItemScores, TaskType, register_task_type, task_type, task_type_names
from tunebench.tasks.registry import NO_ANSWER, unregister_task_type

BOOT = {"resamples": 200, "confidence": 0.95, "seed": 0}


class YesNo(TaskType):
    """A yes/no question: the answer counts by its first word, so 'Yes, it is.' is yes."""

    name = "yes_no"
    metrics = ("exact_match",)
    default_parser = "first_line"
    parsers = frozenset({"first_line"})
    labelled = False
    stratify = True

    @staticmethod
    def answer(parsed: str | None) -> str | None:
        word = (parsed or "").strip().split(maxsplit=1)[:1]
        first = word[0].strip(".,!").lower() if word else ""
        return {"yes": "yes", "y": "yes", "true": "yes", "no": "no", "n": "no", "false": "no"}.get(first)

    def score_items(self, task: Task, cell) -> ItemScores:
        scores = [float(self.answer(p) == t) for p, t in zip(cell["parsed"], cell["target"])]
        return ItemScores(scores, {"exact_match": np.array(scores, dtype=float)})

    def miss(self, target: str, parsed: str | None) -> str | None:
        answer = self.answer(parsed)
        return None if answer == target else NO_ANSWER if answer is None else "opposite"


@pytest.fixture
def yes_no():
    register_task_type(YesNo)
    yield task_type("yes_no")
    unregister_task_type("yes_no")


def test_the_built_in_types_declare_what_the_rest_asks():
    classification, extraction = task_type("classification"), task_type("extraction")
    assert classification.metrics == CLASSIFICATION and extraction.metrics == EXTRACTION + DETECTION
    assert (classification.default_parser, extraction.default_parser) == ("first_label", "first_line")
    assert classification.parsers == {"first_label", "label_mention", "first_line"} and extraction.parsers == {"first_line"}
    assert classification.labelled and classification.stratify
    assert not extraction.labelled and not extraction.stratify
    assert classification.prompt_variables == {"system": {"labels"}, "user": {"input", "labels"},
                                               "assistant": {"target", "labels"}}
    assert extraction.prompt_variables == {"system": set(), "user": {"input", "context"}, "assistant": {"target"}}
    assert [classification.miss("a", p) for p in ("a", None, "b")] == [None, NO_ANSWER, "other_label"]
    assert [extraction.miss("the blue mug", p) for p in ("Blue mug.", None, "mug", "a chair")] == [
        None, NO_ANSWER, "partial", "wrong"]


def test_the_schema_offers_exactly_the_registered_types(repo_root):
    assert sorted(load_schema(repo_root, "task.schema.yaml")["properties"]["type"]["enum"]) == task_type_names()


def test_an_unregistered_type_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="'regression'.*classification, code, extraction, multiple_choice"):
        task_type("regression")


def test_an_extraction_task_refuses_what_needs_labels(project_copy):
    path = project_copy / "configs/tasks/ticket_product.yaml"
    original = path.read_text()
    for change, field, words in [({"parser": "first_label"}, "parser", "first_line for extraction tasks"),
                                 ({"method": "loglik"}, "method", "extraction tasks generate"),
                                 ({"metrics": ["accuracy"]}, "metrics", "token_f1")]:
        path.write_text(yaml.safe_dump({**yaml.safe_load(original), **change}, sort_keys=False))
        with pytest.raises(ConfigError) as info:
            load_project_from_file(project_copy)
        assert info.value.field == field and words in info.value.fix
    path.write_text(original)
    prompt = project_copy / "prompts/ticket_product.yaml"
    prompt.write_text(prompt.read_text().replace("Product:", "Product ({{ labels }}):"))
    with pytest.raises(ConfigError) as info:
        load_project_from_file(project_copy)
    assert (info.value.field, info.value.file) == ("user", "prompts/ticket_product.yaml")
    assert "labels" in info.value.problem and "{{ input }}" in info.value.fix


def add_yes_no_task(root: Path, n: int = 60) -> dict:
    """The toy task in a copied project: its data, prompt and task file, and `yes_no` in the copied
    schema's type enum. Returns the loader's overrides that add it to the run."""
    schema_path = root / "configs/schema/task.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    schema["properties"]["type"]["enum"].append("yes_no")
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
    rows = [{"id": f"q{i:03d}", "question": f"Is ticket {i} about a refund?", "answer": "yes" if i % 3 else "no"}
            for i in range(n)]
    write_jsonl(root / "data/yes_no.jsonl", rows)
    (root / "prompts/is_refund.yaml").write_text(
        'system: Answer yes or no.\nuser: "{{ input }}"\nassistant: "{{ target }}"\n')
    (root / "configs/tasks/is_refund.yaml").write_text(yaml.safe_dump({
        "name": "is_refund", "type": "yes_no", "source": {"kind": "local", "path": "data/yes_no.jsonl"},
        "fields": {"id": "id", "input": "question", "target": "answer"}, "expected_rows": n,
        "split": {"val": 0.2, "test": 0.5, "seed": 3}, "prompt": "prompts/is_refund.yaml",
        "metrics": ["exact_match"]}, sort_keys=False))
    tasks = yaml.safe_load((root / "configs/config.yaml").read_text())["tasks"]
    return {"tasks": [*tasks, "is_refund"]}


def test_a_toy_type_needs_only_its_module_and_the_schema_enum(yes_no, project_copy, tmp_path):
    overrides = add_yes_no_task(project_copy)
    project = load_project_from_file(project_copy, overrides=overrides)
    task = project.tasks["is_refund"]
    assert (task.type, task.parser, task.metrics, task.labels) == ("yes_no", "first_line", ("exact_match",), None)

    raw = tmp_path / "raw"
    fetch_raw(task.source, raw, root=project.root)
    out = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "val", "test")}
    manifest = prepare_splits(task, raw, out, str(tmp_path / "manifest.json"),
                              load_schema(project.root, "row.schema.json"))
    test = read_jsonl(out["test"])
    assert Counter(r["target"] for r in test) == {"yes": 20, "no": 10}  # stratified, as the type says
    assert manifest["splits"]["test"]["labels"] is None  # no label set

    answers = {"yes": ["Yes.", "yes, it is", "no", None], "no": ["No", "nope", "yes"]}
    preds = [{"id": r["id"], "parsed": answers[r["target"]][k % len(answers[r["target"]])], "latency_s": 0.1,
              "tokens_in": 10, "tokens_out": 2} for k, r in enumerate(test)]
    write_jsonl(tmp_path / "preds.jsonl", preds)
    write_json(tmp_path / "meta.json", {"system": "m", "model": "m", "adapter": None, "prompting": "0shot",
                                        "shots": 0, "method": "generate", "started_at": "2026-01-01T00:00:00+00:00",
                                        "finished_at": "2026-01-01T00:01:00+00:00"})
    record = score_predictions(task=task, predictions_path=str(tmp_path / "preds.jsonl"),
                               meta_path=str(tmp_path / "meta.json"), test_path=out["test"], max_items=None,
                               bootstrap=BOOT, out_path=str(tmp_path / "score.json"))
    expected = [float(yes_no.answer(p["parsed"]) == r["target"]) for p, r in zip(preds, test)]
    assert [it["score"] for it in record["items"]] == expected
    assert record["metrics"]["exact_match"]["value"] == round(sum(expected) / len(expected), 6)
    assert record["task_type"] == "yes_no" and read_json(tmp_path / "score.json") == record
    assert [yes_no.miss(r["target"], p["parsed"]) for p, r in zip(preds, test)].count("opposite") > 0


def test_a_toy_type_checks_its_config_with_the_shared_messages(yes_no, project_copy):
    overrides = add_yes_no_task(project_copy)
    path = project_copy / "configs/tasks/is_refund.yaml"
    doc = yaml.safe_load(path.read_text())
    for change, field, words in [({"metrics": ["accuracy"]}, "metrics", "use: exact_match"),
                                 ({"parser": "first_label"}, "parser", "first_line for yes_no tasks"),
                                 ({"method": "loglik"}, "method", "yes_no tasks generate")]:
        path.write_text(yaml.safe_dump({**doc, **change}, sort_keys=False))
        with pytest.raises(ConfigError) as info:
            load_project_from_file(project_copy, overrides=overrides)
        assert (info.value.file, info.value.field) == ("configs/tasks/is_refund.yaml", field)
        assert words in info.value.fix


def test_without_the_schema_enum_the_type_is_refused_at_load(yes_no, project_copy):
    overrides = add_yes_no_task(project_copy)
    schema_path = project_copy / "configs/schema/task.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    schema["properties"]["type"]["enum"].remove("yes_no")
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_project_from_file(project_copy, overrides=overrides)
    assert info.value.field == "type" and "not allowed" in info.value.problem + info.value.fix
