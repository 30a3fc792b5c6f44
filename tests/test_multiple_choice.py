"""The multiple_choice task type (MedMCQA-style): each item has its own options, the target is the
right option's letter; the `choice` parser, the prompt's options, accuracy and macro-F1 by hand,
error classes, config checks, and log-likelihood scoring of each item's own options on a tiny
random Llama."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import yaml

from tunebench.backends import Generation
from tunebench.backends.transformers_backend import TransformersBackend
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, read_jsonl, write_json, write_jsonl
from tunebench.core.errors import ConfigError, DataError
from tunebench.core.spec import Task
from tunebench.predict.generate import generate_predictions, prediction_rows
from tunebench.predict.score import score_predictions
from tunebench.tasks import task_type
from tunebench.tasks.parsing import choice
from tunebench.tasks.prompting import PromptTemplate

BOOT = {"resamples": 200, "confidence": 0.95, "seed": 0}
VITAMINS = ["Vitamin A", "Vitamin B12", "Iron", "Folic acid"]
PROMPT = {"system": "Answer the medical question with the letter of the right option.",
          "user": "Question: {{ input }}\n{{ options }}", "assistant": "{{ target }}"}


def mc_task(**changes) -> Task:
    task = Task(name="med_mini", type="multiple_choice", parser="choice", metrics=("accuracy", "macro_f1"),
                generation={"max_new_tokens": 8, "stop": ["\n"]}, fields={"options": ["opa", "opb", "opc", "opd"]})
    return dataclasses.replace(task, **changes)


@pytest.mark.parametrize("output, letter", [
    ("B", "B"), ("b", "B"), ("(C)", "C"), ("C.", "C"), ("C) Iron", "C"), ("Answer: D", "D"),
    ("Answer:\nd", "D"), ("**A**", "A"), ("Option B", "B"), ("[A]", "A"), ("B\nbecause it is", "B"),
    ("iron", "C"), ("Iron.", "C"), ("`vitamin b12`", "B"), ("Answer: Folic-acid", "D"),
    ("E", None), ("The answer is B", None), ("A man of sixty", None), ("Vitamin", None), ("", None),
])
def test_the_choice_parser_reads_a_letter_or_an_options_text_and_returns_the_letter(output, letter):
    assert choice(output, VITAMINS) == letter


def test_a_letter_that_is_also_an_options_text_is_read_as_the_task_asks():
    blood_groups = ["O", "AB", "A", "B"]
    assert choice("A", blood_groups) == "A"  # answer_format letter: the letter A
    assert choice("A", blood_groups, prefer="text") == "C"  # answer_format text: the option "A"
    assert choice("AB", blood_groups, prefer="letter") == "B"
    assert choice("A", ["same", "Same"]) == "A" and choice("same", ["same", "Same"]) is None  # ambiguous text


def test_the_prompt_shows_each_rows_own_options_and_the_answer_in_the_tasks_format():
    template = PromptTemplate.from_spec(PROMPT)
    shot = {"id": "s1", "input": "Which is a mineral?", "options": ["Iron", "Vitamin C", "Niacin"], "target": "A"}
    item = {"id": "t1", "input": "Which vitamin holds cobalt?", "options": VITAMINS}
    msgs = template.messages(item, [shot], None)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "Question: Which is a mineral?\nA. Iron\nB. Vitamin C\nC. Niacin"
    assert msgs[2]["content"] == "A"
    assert msgs[3]["content"].endswith("C. Iron\nD. Folic acid") and "Niacin" not in msgs[3]["content"]
    assert template.messages(item, [shot], None, "text")[2]["content"] == "Iron"
    looped = PromptTemplate.from_spec({**PROMPT, "user": "{% for o in options %}<{{ o }}>{% endfor %}"})
    assert looped.messages(item, [], None)[-1]["content"] == "<Vitamin A><Vitamin B12><Iron><Folic acid>"


def test_generated_answers_are_parsed_against_each_items_own_options():
    items = [{"id": "a", "input": "q", "options": VITAMINS, "target": "C"},
             {"id": "b", "input": "q", "options": ["yes", "no"], "target": "B"}]
    outputs = [Generation(text=t, tokens_in=5, tokens_out=2, latency_s=0.1) for t in ("Iron\n", "C")]
    rows = prediction_rows(mc_task(), items, ["p", "p"], outputs, (), None)
    assert [r["parsed"] for r in rows] == ["C", None]  # item b has no option C


def score_cell(tmp_path, task: Task, test: list[dict], outputs: list[str], tokens_out: list[int]) -> dict:
    kind = task_type("multiple_choice")
    preds = [{"id": r["id"], "output": o, "parsed": kind.parse(task, r, o), "latency_s": 0.1, "tokens_in": 20,
              "tokens_out": n} for r, o, n in zip(test, outputs, tokens_out)]
    write_jsonl(tmp_path / "test.jsonl", test)
    write_jsonl(tmp_path / "preds.jsonl", preds)
    write_json(tmp_path / "meta.json", {"system": "m", "model": "m", "adapter": None, "prompting": "0shot",
                                        "shots": 0, "method": "generate", "started_at": "2026-01-01T00:00:00+00:00",
                                        "finished_at": "2026-01-01T00:01:00+00:00"})
    return score_predictions(task=task, predictions_path=str(tmp_path / "preds.jsonl"),
                             meta_path=str(tmp_path / "meta.json"), test_path=str(tmp_path / "test.jsonl"),
                             max_items=None, bootstrap=BOOT, out_path=str(tmp_path / "score.json"))


def test_accuracy_and_macro_f1_by_hand_with_the_error_classes(tmp_path):
    test = [{"id": f"q{i}", "input": f"question {i}", "options": VITAMINS, "target": t}
            for i, t in enumerate(["A", "B", "C", "D", "A", "B"])]
    outputs = ["A", "Vitamin B12", "D) Folic acid", "I am not sure", "B", "Answer: the second one is"]
    record = score_cell(tmp_path, mc_task(), test, outputs, [1, 4, 5, 5, 1, 8])
    # parsed: A (right), B (right, by its text), D (wrong), None, B (wrong), None (truncated at 8 tokens)
    assert [it["parsed"] for it in record["items"]] == ["A", "B", "D", None, "B", None]
    assert [it["score"] for it in record["items"]] == [1, 1, 0, 0, 0, 0]
    assert [it["error"] for it in record["items"]] == [None, None, "wrong_option", "no_answer", "wrong_option",
                                                        "truncated"]
    assert record["errors"] == {"wrong_option": 2, "no_answer": 1, "truncated": 1}
    assert record["metrics"]["accuracy"]["value"] == round(2 / 6, 6)
    # F1 per letter: A 2*1/(1+2) = 2/3 (1 right, predicted once, 2 true); B 2*1/(2+2) = 1/2;
    # C 0 (never predicted, 1 true); D 0 (predicted once, 1 true): the mean is (2/3 + 1/2) / 4
    assert record["metrics"]["macro_f1"]["value"] == round((2 / 3 + 1 / 2) / 4, 6)
    from sklearn.metrics import f1_score

    parsed = [it["parsed"] or "none" for it in record["items"]]
    assert record["metrics"]["macro_f1"]["value"] == pytest.approx(
        f1_score([r["target"] for r in test], parsed, labels=list("ABCD"), average="macro"), abs=1e-6)
    ci = record["metrics"]["macro_f1"]
    assert ci["ci_low"] <= ci["value"] <= ci["ci_high"] and ci["ci_low"] < ci["ci_high"]
    assert read_json(tmp_path / "score.json")["task_type"] == "multiple_choice"


def test_text_answers_score_when_the_task_asks_for_the_options_text(tmp_path):
    test = [{"id": "q0", "input": "q", "options": ["O", "AB", "A", "B"], "target": "C"},
            {"id": "q1", "input": "q", "options": ["O", "AB", "A", "B"], "target": "B"}]
    record = score_cell(tmp_path, mc_task(answer_format="text"), test, ["A", "AB"], [1, 1])
    assert [it["parsed"] for it in record["items"]] == ["C", "B"]
    assert record["metrics"]["accuracy"]["value"] == 1.0


def add_mc_task(root, **changes) -> dict:
    """A MedMCQA-like task in a copied project (question, opa..opd, cop 0-3); the loader's overrides."""
    rows = [{"id": f"m{i:03d}", "question": f"Question {i}?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
             "cop": i % 4} for i in range(40)]
    write_jsonl(root / "data/med_mini.jsonl", rows)
    (root / "prompts/med_mini.yaml").write_text(yaml.safe_dump(PROMPT))
    doc = {"name": "med_mini", "type": "multiple_choice", "source": {"kind": "local", "path": "data/med_mini.jsonl"},
           "fields": {"id": "id", "input": "question", "target": "cop", "options": ["opa", "opb", "opc", "opd"]},
           "expected_rows": 40, "split": {"val": 0.1, "test": 0.5, "seed": 3}, "prompt": "prompts/med_mini.yaml",
           "metrics": ["accuracy", "macro_f1"], "method": "loglik", **changes}
    (root / "configs/tasks/med_mini.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    tasks = yaml.safe_load((root / "configs/config.yaml").read_text())["tasks"]
    return {"tasks": [*tasks, "med_mini"]}


def test_a_multiple_choice_task_needs_options_and_no_labels(project_copy):
    overrides = add_mc_task(project_copy)
    task = load_project_from_file(project_copy, overrides=overrides).tasks["med_mini"]
    assert (task.parser, task.method, task.labels, task.answer_format) == ("choice", "loglik", None, "letter")
    add_mc_task(project_copy, fields={"id": "id", "input": "question", "target": "cop"})
    with pytest.raises(ConfigError) as info:
        load_project_from_file(project_copy, overrides=overrides)
    assert info.value.field == "fields.options" and "opa" in info.value.fix
    add_mc_task(project_copy, parser="first_label")
    with pytest.raises(ConfigError) as info:
        load_project_from_file(project_copy, overrides=overrides)
    assert info.value.field == "parser" and "choice" in info.value.fix
    prompt = project_copy / "prompts/ticket_routing.yaml"  # a classification prompt has no options
    add_mc_task(project_copy)
    prompt.write_text(prompt.read_text().replace("Ticket: {{ input }}", "Ticket: {{ input }} {{ options }}"))
    with pytest.raises(ConfigError) as info:
        load_project_from_file(project_copy, overrides=overrides)
    assert (info.value.field, info.value.file) == ("user", "prompts/ticket_routing.yaml")


# -- log-likelihood of each item's own options (tiny random Llama, see conftest) ------------------

@pytest.fixture(scope="module")
def backend(tiny_llama_dir):
    return TransformersBackend(tiny_llama_dir, threads=1, batch_size=3)


def reference_logprob(backend, prompt: str, continuation: str) -> float:
    """log P(continuation | prompt) from one plain forward pass over prompt + continuation."""
    torch, tok = backend.torch, backend.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(continuation, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(torch.tensor([p + c])).logits[0].float(), dim=-1)
    return float(sum(logp[len(p) - 1 + k, t] for k, t in enumerate(c)))


OPTIONS = [["fever", "a cough that lasts for weeks", "rash"], ["yes", "no"],
           ["A", "B", "C", "D", "E"], ["one two three four five six", "seven"]]


def mc_conversations():
    shots = []
    for i in range(3):
        shots += [{"role": "user", "content": f"example question {i} " * 6}, {"role": "assistant", "content": "B"}]
    return [[{"role": "system", "content": "pick one option"}, *shots, {"role": "user", "content": f"item {i} " * (i + 1)}]
            for i in range(len(OPTIONS))]


def test_each_items_own_options_are_scored_as_if_alone_after_its_prompt(backend):
    convs = mc_conversations()
    scored = backend.score_labels(convs, OPTIONS, progress=False)
    assert backend.last_prefix["tokens"] > 0  # the shared system + examples were computed once
    for conv, options, s in zip(convs, OPTIONS, scored):
        prompt = backend.render(conv)
        assert len(s.logprobs) == len(options)  # one log-probability per option of this item
        expected = [reference_logprob(backend, prompt, backend.answer_text(conv, o)) for o in options]
        assert s.logprobs == pytest.approx(expected, abs=2e-3)
        assert s.batch_size <= 3
    alike = backend.score_labels(convs, [["A", "B", "C"]] * len(convs), progress=False)  # the shared path
    assert [s.logprobs for s in alike] == [s.logprobs for s in backend.score_labels(convs, ["A", "B", "C"],
                                                                                    progress=False)]


@pytest.mark.parametrize("answer_format", ["letter", "text"])
def test_a_loglik_cell_answers_with_the_letter_of_the_most_likely_option(answer_format, tiny_llama_dir,
                                                                         routing_split, tmp_path):
    project, _ = routing_split
    task = mc_task(method="loglik", answer_format=answer_format)
    rows = [{"id": f"q{i}", "input": f"question {i}", "options": OPTIONS[i % len(OPTIONS)], "target": "A"}
            for i in range(8)]
    write_jsonl(tmp_path / "train.jsonl", rows[:4])
    write_jsonl(tmp_path / "test.jsonl", rows[4:])
    generate_predictions(task=task, model=project.models["smollm2-135m-instruct"], model_dir=tiny_llama_dir,
                         prompt_spec=PROMPT, train_path=tmp_path / "train.jsonl", test_path=tmp_path / "test.jsonl",
                         shots=2, fewshot_seed=1, max_items=None, threads=1, out_rows=str(tmp_path / "ll.jsonl"),
                         out_meta=str(tmp_path / "ll.meta.json"), system="tiny", prompting="2shot", progress=False)
    for item, row in zip(rows[4:], read_jsonl(tmp_path / "ll.jsonl")):
        scores = row["option_logprobs"]
        assert list(scores) == list("ABCDE"[:len(item["options"])]) and "label_logprobs" not in row
        assert row["parsed"] == max(scores, key=scores.get) and row["tokens_out"] == 0
        shown = item["options"]["ABCDE".index(row["parsed"])] if answer_format == "text" else row["parsed"]
        assert row["output"] == shown
        assert all(v < 0 for v in scores.values())
        assert len(set(scores.values())) > 1 or len(scores) == 1
    assert read_json(tmp_path / "ll.meta.json")["method"] == "loglik"


def test_macro_f1_counts_only_the_letters_that_occur():
    kind = task_type("multiple_choice")
    cell = pl.DataFrame({"id": ["a", "b", "c"], "target": ["A", "A", "B"], "parsed": ["A", None, "B"]})
    scores, values, statistics = kind.score_items(mc_task(), cell)
    assert scores == [1.0, 0.0, 1.0] and values is not None and statistics is not None
    assert values["accuracy"].mean() == pytest.approx(2 / 3)
    assert statistics["macro_f1"](np.arange(3)) == pytest.approx((2 / 3 + 1) / 2)  # A: 2*1/(1+2), B: 1


def test_a_target_that_is_no_letter_is_a_data_error():
    cell = pl.DataFrame({"id": ["a", "b"], "target": ["A", "Iron"], "parsed": ["A", "B"]})
    with pytest.raises(DataError) as info:
        task_type("multiple_choice").score_items(mc_task(), cell)
    assert "'b'" in info.value.problem and info.value.field == "target"
