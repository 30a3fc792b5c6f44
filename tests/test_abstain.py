"""Extraction that may abstain (CUAD-style: most questions have no answer in the document): answer
detection and AUPR as scikit-learn computes them, token F1 over the items that have an answer, the
bootstrap of these statistics, the error classes, the abstain text in prompts, and the confidence
from token log-probs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from test_openai_backend import CONVERSATIONS, server  # noqa: F401  (a real `transformers serve`)

from tunebench.backends.token_logprobs import answer_logprob, api_logprob
from tunebench.core.atomic import write_json, write_jsonl
from tunebench.core.errors import ConfigError
from tunebench.core.records import SCORE_SCHEMA, check_record
from tunebench.core.schema import load_schema
from tunebench.core.spec import Task
from tunebench.predict.score import score_predictions
from tunebench.scoring.metrics import bootstrap_ci, resample_chunks, token_f1
from tunebench.tasks import task_type
from tunebench.tasks.extraction import answer_confidence, is_answer
from tunebench.tasks.prompting import PromptTemplate

BOOT = {"resamples": 300, "confidence": 0.95, "seed": 0}
METRICS = ("token_f1", "exact_match", "detection_f1", "detection_precision", "detection_recall", "aupr")
TASK = Task(name="cuad_like", type="extraction", parser="first_line", metrics=METRICS, abstain="none",
            generation={"max_new_tokens": 8, "stop": ["\n"]})
KIND = task_type("extraction")


def outputs(n: int = 60, seed: int = 3) -> pl.DataFrame:
    """A cell of n items, half without an answer (target ""), each item with gold answers; the
    model answers, abstains ("None." or "none"), or writes nothing parsable, with a confidence."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        present = k % 2 == 0
        answers = [f"clause {k} applies", f"clause {k}"] if present else []
        choice = rng.integers(0, 5)
        parsed = [f"clause {k}", "None.", f"the clause {k} applies here", "other words", None][choice]
        if not present and choice == 0:
            parsed = "none"
        rows.append({"id": f"q{k}", "target": answers[0] if present else "", "answers": answers, "parsed": parsed,
                     "output": parsed or "", "tokens_out": 3.0, "confidence": round(float(rng.random()), 3)})
    return pl.DataFrame(rows, schema={"id": pl.String, "target": pl.String, "answers": pl.List(pl.String),
                                      "parsed": pl.String, "output": pl.String, "tokens_out": pl.Float64,
                                      "confidence": pl.Float64})


def test_detection_and_aupr_equal_scikit_learn_and_token_f1_counts_present_items_only():
    cell = outputs()
    scores, values, statistics = KIND.score_items(TASK, cell)
    truth = np.array([bool(a) for a in cell["answers"].to_list()])
    answered = np.array([is_answer(p, "none") for p in cell["parsed"].to_list()])
    assert 0 < answered.sum() < len(answered) and truth.sum() == len(truth) / 2
    cis = bootstrap_ci(cell["target"].to_list(), cell["parsed"].to_list(), METRICS, item_values=values,
                       statistics=statistics, **BOOT)
    expected = {"detection_precision": precision_score(truth, answered),
                "detection_recall": recall_score(truth, answered), "detection_f1": f1_score(truth, answered),
                "aupr": average_precision_score(truth, cell["confidence"].to_numpy())}
    for metric, value in expected.items():
        assert cis[metric]["value"] == pytest.approx(value, abs=1e-6), metric
    # token F1: the best over each present item's answers, an abstention scoring 0; absent items ignored
    f1 = [max(token_f1(p, a) for a in answers) if is_answer(p, "none") else 0.0
          for p, answers in zip(cell["parsed"], cell["answers"].to_list()) if answers]
    assert cis["token_f1"]["value"] == pytest.approx(sum(f1) / len(f1), abs=1e-6)
    assert 0 < cis["token_f1"]["value"] < 1
    # an item's own score: its F1 when it has an answer, 1 for a real abstention when it has none
    for item, score in zip(cell.iter_rows(named=True), scores):
        if not item["answers"]:
            assert score == float(item["parsed"] is not None and not is_answer(item["parsed"], "none"))


def test_the_bootstrap_resamples_detection_and_aupr_like_scikit_learn_would():
    cell = outputs(40, seed=5)
    _, values, statistics = KIND.score_items(TASK, cell)
    cis = bootstrap_ci(cell["target"].to_list(), cell["parsed"].to_list(), ["aupr", "detection_f1"],
                       item_values=values, statistics=statistics, **BOOT)
    truth = np.array([bool(a) for a in cell["answers"].to_list()]).astype(int)
    answered = np.array([is_answer(p, "none") for p in cell["parsed"].to_list()]).astype(int)
    conf = cell["confidence"].to_numpy()
    rows = np.concatenate(list(resample_chunks(np.random.default_rng(BOOT["seed"]), 40, BOOT["resamples"])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample without positives: sklearn warns and gives 0
        aupr = [average_precision_score(truth[r], conf[r]) if truth[r].any() else 0.0 for r in rows]
        f1 = [f1_score(truth[r], answered[r], zero_division=0) for r in rows]
    for metric, samples in (("aupr", aupr), ("detection_f1", f1)):
        lo, hi = np.quantile(samples, [0.025, 0.975])
        assert (cis[metric]["ci_low"], cis[metric]["ci_high"]) == (pytest.approx(lo, abs=1e-6),
                                                                  pytest.approx(hi, abs=1e-6))
        assert cis[metric]["ci_low"] < cis[metric]["value"] < cis[metric]["ci_high"]


def test_without_confidences_aupr_is_unavailable_with_its_reason_in_a_valid_record(tmp_path, repo_root):
    cell = outputs(20)
    test = [{"id": r["id"], "input": f"question {r['id']}", "target": r["target"], "answers": r["answers"]}
            for r in cell.iter_rows(named=True)]
    preds = [{"id": r["id"], "output": r["output"], "parsed": r["parsed"], "latency_s": 0.1, "tokens_in": 50,
              "tokens_out": 3, "confidence": None} for r in cell.iter_rows(named=True)]
    write_jsonl(tmp_path / "test.jsonl", test)
    write_jsonl(tmp_path / "preds.jsonl", preds)
    write_json(tmp_path / "meta.json", {"system": "m", "model": "m", "adapter": None, "prompting": "0shot",
                                        "shots": 0, "method": "generate", "started_at": "2026-01-01T00:00:00+00:00",
                                        "finished_at": "2026-01-01T00:01:00+00:00"})
    record = score_predictions(task=TASK, predictions_path=str(tmp_path / "preds.jsonl"),
                               meta_path=str(tmp_path / "meta.json"), test_path=str(tmp_path / "test.jsonl"),
                               max_items=None, bootstrap=BOOT, out_path=str(tmp_path / "score.json"))
    aupr = record["metrics"]["aupr"]
    assert aupr["value"] is None and aupr["ci_low"] is None and "no token log-probs" in aupr["unavailable"]
    assert "20 of 20 items" in aupr["unavailable"]
    assert record["metrics"]["detection_f1"]["value"] > 0  # the rest is scored
    check_record(record, load_schema(repo_root, SCORE_SCHEMA), "score.json")  # the schema allows it


@pytest.mark.parametrize(("target", "answers", "parsed", "tokens_out", "expected"), [
    ("the term", ["the term", "term"], "none", 1, "abstained_wrongly"),
    ("", [], "the seller", 2, "answered_absent"),
    ("", [], "None.", 1, None),
    ("five years", ["five years"], "five years", 2, None),
    ("five years", ["five years", "5 years"], "5 years", 2, None),  # any gold answer counts
    ("five years", ["five years"], "ten years", 2, "partial"),
    ("five years", ["five years"], "the buyer", 2, "wrong"),
    ("five years", ["five years"], "a very long answer that ran on", 8, "truncated"),
    ("five years", ["five years"], None, 0, "no_answer"),
    ("", [], None, 0, "no_answer"),
])
def test_each_wrong_item_gets_its_error_class(target, answers, parsed, tokens_out, expected):
    item = {"id": "q", "target": target, "answers": answers, "parsed": parsed, "output": parsed or "",
            "tokens_out": tokens_out, "confidence": 0.5, "score": 0.0}
    assert KIND.error_class(TASK, item) == expected


def test_abstention_and_confidence_from_the_generated_tokens_log_probs():
    assert [is_answer(p, "none") for p in ("None.", " none ", "", ".", None, "no", "none of them")] == [
        False, False, False, False, False, True, True]
    mean = -0.4
    assert answer_confidence("the seller", 3 * mean, 3, "none") == pytest.approx(math.exp(mean), abs=1e-6)
    assert answer_confidence("none", 2 * mean, 2, "none") == pytest.approx(1 - math.exp(mean), abs=1e-6)
    assert answer_confidence("the seller", None, 3, "none") is None
    # an answer's log-prob sums its own tokens; an empty answer counts its end-of-turn step
    assert answer_logprob([-0.5, -0.25, -1.0], 2) == (-0.75, 2)
    assert answer_logprob([-0.1, -2.0], 0) == (-0.1, 1)


def test_api_log_probs_add_up_the_answer_tokens_entries():
    from openai.types.chat import ChatCompletion

    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [{
        "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "five years"},
        "logprobs": {"content": [{"token": "five", "logprob": -0.5, "bytes": None, "top_logprobs": []},
                                 {"token": " years", "logprob": -0.25, "bytes": None, "top_logprobs": []}]}}]}
    reply = ChatCompletion.model_validate(body)
    assert api_logprob(reply.choices[0].logprobs.content) == (-0.75, 2)
    assert api_logprob(None) == (None, None)  # a server that gives none


def test_in_context_and_training_answers_for_an_empty_target_are_the_abstain_text():
    spec = {"system": "Quote the clause.", "user": "{{ context }}\n\nQ: {{ input }}", "assistant": "{{ target }}"}
    template = PromptTemplate.from_spec(spec, "none")
    assert template.answer("", []) == "none" and template.answer("five years", []) == "five years"
    shots = [{"id": "s1", "input": "Term?", "target": "", "context": "A contract."},
             {"id": "s2", "input": "Term?", "target": "five years", "context": "For five years."}]
    msgs = template.messages({"id": "q", "input": "Term?", "context": "Another contract."}, shots, None)
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == ["none", "five years"]
    assert msgs[-1]["content"] == "Another contract.\n\nQ: Term?"
    assert PromptTemplate.from_spec(spec).answer("", []) == ""  # a task without abstain keeps its target


def test_the_config_checks_name_the_field_and_the_fix():
    base = {"name": "cuad", "type": "extraction", "metrics": ["token_f1"], "fields": {"context": "context"}}
    cases = [({"metrics": ["token_f1", "aupr"]}, "metrics", "abstain"),
             ({"context_window": {"tokens": 100, "stride": 0}, "fields": {}}, "context_window", "fields.context"),
             ({"context_window": {"tokens": 100, "stride": 100}}, "context_window.stride", "smaller")]
    for change, field, words in cases:
        with pytest.raises(ConfigError) as info:
            KIND.check({**base, **change}, "configs/tasks/cuad.yaml")
        assert info.value.field == field and words in info.value.fix
    assert KIND.check({**base, "abstain": "none", "metrics": ["token_f1", "aupr"],
                       "context_window": {"tokens": 100, "stride": 20}}, "configs/tasks/cuad.yaml") == "first_line"


def test_transformers_log_probs_are_those_compute_transition_scores_gives(tiny_llama_dir):
    import torch

    from tunebench.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_llama_dir, threads=1, logprobs=True)
    system = {"role": "system", "content": "Quote the clause that answers, or write none. " * 4}
    prompts = [backend.render([system, {"role": "user", "content": q}])
               for q in ("Term?", "Who may terminate the agreement?", "Governing law?")]
    got = backend.generate(prompts, max_new_tokens=5, stop=[], batch_size=2, progress=False)
    assert backend.last_prefix["tokens"] > 0  # the shared system turn went through the prefix cache
    for prompt, gen in zip(prompts, got):
        ids = backend.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                                         do_sample=False, temperature=None, top_p=None, top_k=None,
                                         pad_token_id=backend.tokenizer.pad_token_id, output_scores=True,
                                         return_dict_in_generate=True)
        steps = backend.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
        assert gen.logprob_tokens == max(gen.tokens_out, 1) and gen.logprob < 0
        assert gen.logprob == pytest.approx(float(steps[:gen.logprob_tokens].sum()), abs=2e-3)
    plain = TransformersBackend(tiny_llama_dir, threads=1).generate(prompts[:1], max_new_tokens=5, stop=[],
                                                                     batch_size=1, progress=False)
    assert plain[0].logprob is None and plain[0].text == got[0].text  # asked for only when wanted


def test_an_endpoint_that_ignores_log_probs_gives_answers_without_them(server, tmp_path):  # noqa: F811
    """`transformers serve` (a real server, see test_openai_backend) accepts `logprobs` and returns none."""
    from tunebench.backends.openai_backend import OpenAIBackend

    for stream in (True, False):
        backend = OpenAIBackend(base_url=server["url"], model=server["model"], stream=stream, logprobs=True,
                                cache_dir=tmp_path / f"cache-{stream}")
        got = backend.complete(CONVERSATIONS[:2], max_new_tokens=4, progress=False)
        assert all(g.text and g.logprob is None and g.logprob_tokens is None for g in got)
        assert backend.requests_sent == 2 and not backend.logprobs_refused


def test_a_training_completion_for_an_empty_target_is_the_abstain_text():
    from tunebench.train.lora import training_examples

    spec = {"user": "{{ context }}\n\nQ: {{ input }}", "assistant": "{{ target }}"}
    rows = [{"id": "a", "input": "Term?", "target": "", "context": "A contract."},
            {"id": "b", "input": "Term?", "target": "five years", "context": "For five years."}]
    examples = training_examples(TASK, spec, rows)
    assert [e["completion"][0]["content"] for e in examples] == ["none", "five years"]
    assert examples[0]["prompt"][-1]["content"] == "A contract.\n\nQ: Term?"


def test_a_long_document_trains_on_the_window_that_holds_its_answer():
    """CUAD-style training rows hold whole contracts: each example keeps one window, the one with the
    answer (as an in-context example does), so it fits the training length."""
    import dataclasses

    from tunebench.train.lora import training_examples

    spec = {"user": "{{ context }}\n\nQ: {{ input }}", "assistant": "{{ target }}"}
    contract = " ".join(f"w{i}" for i in range(300)) + " the term is five years " + " ".join(
        f"x{i}" for i in range(300))
    task = dataclasses.replace(TASK, context_window={"tokens": 50, "stride": 10})
    [example] = training_examples(task, spec, [{"id": "a", "input": "Term?", "target": "five years",
                                                "context": contract}])
    shown = example["prompt"][-1]["content"]
    assert "five years" in shown and len(shown.split()) <= 50 + 2  # one window (+ "Q: Term?")


def abstain_record(tmp_path, seed: int, confidence: bool) -> dict:
    cell = outputs(40, seed)
    folder = tmp_path / f"cell{seed}"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", [{"id": r["id"], "input": f"question {r['id']}", "target": r["target"],
                                         "answers": r["answers"]} for r in cell.iter_rows(named=True)])
    write_jsonl(folder / "preds.jsonl", [{"id": r["id"], "output": r["output"], "parsed": r["parsed"],
                                          "latency_s": 0.1, "tokens_in": 50, "tokens_out": 3,
                                          "confidence": r["confidence"] if confidence else None}
                                         for r in cell.iter_rows(named=True)])
    write_json(folder / "meta.json", {"system": "m", "model": "m", "adapter": None, "prompting": "0shot",
                                      "shots": 0, "method": "generate", "started_at": "2026-01-01T00:00:00+00:00",
                                      "finished_at": "2026-01-01T00:01:00+00:00"})
    return score_predictions(task=TASK, predictions_path=str(folder / "preds.jsonl"),
                             meta_path=str(folder / "meta.json"), test_path=str(folder / "test.jsonl"),
                             max_items=None, bootstrap=BOOT, out_path=str(folder / "score.json"))


def test_paired_comparisons_and_gates_of_an_abstaining_task(tmp_path):
    """The primary token F1 pairs over the items that have an answer (as the cell computes it); what is
    no sum over items (detection, AUPR) is not paired, and an unavailable AUPR gets no gate row."""
    from tunebench.compare.gate import gate_score
    from tunebench.compare.paired import paired_comparison

    base, tuned = abstain_record(tmp_path, 3, confidence=True), abstain_record(tmp_path, 4, confidence=False)
    rows = {r["metric"]: r for r in paired_comparison(base, tuned, labels=None, **BOOT)}
    assert set(rows) == {"token_f1", "exact_match"}
    assert rows["token_f1"]["base"] == pytest.approx(base["metrics"]["token_f1"]["value"], abs=1e-6)
    assert rows["token_f1"]["finetuned"] == pytest.approx(tuned["metrics"]["token_f1"]["value"], abs=1e-6)
    gates = gate_score(base, tuned, gates={"default": {"relative_pct": 5}, "metrics": {}}, labels=None,
                       bootstrap=BOOT)
    assert {g["metric"] for g in gates} == set(METRICS) - {"aupr"}  # aupr: n/a on one side, no verdict
    assert next(g for g in gates if g["metric"] == "detection_f1")["test"].startswith("unpaired")
