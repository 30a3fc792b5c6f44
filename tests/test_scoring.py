"""Vectorised scoring keeps every number, message and byte of the record: score_predictions and the
paired comparison against plain reference computations and values from the implementation before
(no model, no timing)."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from tunebench.compare.paired import paired_comparison
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_jsonl, write_json, write_jsonl
from tunebench.core.errors import DataError
from tunebench.predict.score import record_json, score_predictions
from tunebench.scoring.metrics import bootstrap_ci, exact_match, normalize_answer, token_f1

BOOT = {"resamples": 200, "confidence": 0.95, "seed": 0}
PRODUCTS = ["wireless earbuds", "USB-C charger", "the yoga mat", "none", "a Blender!", 'say "café"']


@pytest.fixture(scope="module")
def tasks(repo_root):
    project = load_project_from_file(repo_root)
    return project.tasks["ticket_routing"], project.tasks["ticket_product"]


def write_cell(folder, task, n, seed=0, *, api=False, shuffle=True, drop=0, extra=0):
    """A test split and predictions as split_prepare and generate_predictions write them: some
    answers unparsable (None) or outside the label set, some usage unknown, rows out of order."""
    rng = random.Random(seed)
    labels = list(task.labels or [])
    items, preds = [], []
    for i in range(n):
        target = rng.choice(labels[:7]) if labels else rng.choice(PRODUCTS)
        items.append({"id": f"t-{i:04d}", "input": f"ticket {i}", "target": target, "meta": {"product": "x"}})
        if labels:
            parsed = rng.choice([target, target, None, "not_a_label", *labels])
        else:
            parsed = rng.choice([target, target.upper() + ".", target.split()[-1], rng.choice(PRODUCTS), None])
        row = {"id": f"t-{i:04d}", "prompt_hash": "0" * 16, "output": str(parsed), "parsed": parsed,
               "latency_s": round(rng.uniform(0.1, 3), 4), "tokens_in": rng.choice([None, rng.randint(20, 400)]),
               "tokens_out": rng.randint(1, 8), "batch_size": 4}
        if api:
            row.update(ttft_s=rng.choice([None, round(rng.random(), 4)]), cached=False)
        preds.append(row)
    preds = preds[drop:] + [dict(preds[0], id=f"x-{k}") for k in range(extra)]
    if shuffle:
        rng.shuffle(preds)
    paths = {k: str(folder / f"{task.name}.{k}") for k in ("test.jsonl", "jsonl", "meta.json", "score.json")}
    write_jsonl(paths["test.jsonl"], items)
    write_jsonl(paths["jsonl"], preds)
    write_json(paths["meta.json"], {"system": "m", "model": "m", "adapter": None, "prompting": "0shot", "shots": 0,
                                    "method": "generate", "backend": "openai" if api else "transformers",
                                    "device": "remote" if api else "cpu", "items_per_s": 2.5,
                                    "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00"})
    return paths


def score(task, paths, max_items=None, bootstrap=BOOT):
    return score_predictions(task=task, predictions_path=paths["jsonl"], meta_path=paths["meta.json"],
                             test_path=paths["test.jsonl"], max_items=max_items, bootstrap=bootstrap,
                             out_path=paths["score.json"])


def reference_record(task, paths, max_items=None, bootstrap=BOOT):
    """What scoring means, written plainly: items in test order, the prediction of each by id."""
    items = read_jsonl(paths["test.jsonl"])[:max_items] if max_items else read_jsonl(paths["test.jsonl"])
    by_id = {p["id"]: p for p in read_jsonl(paths["jsonl"])}
    preds = [by_id[it["id"]] for it in items]
    targets, parsed = [it["target"] for it in items], [p["parsed"] for p in preds]
    if task.labels:
        scores = [float(p == t) for p, t in zip(parsed, targets)]
    else:
        scores = [token_f1(p, t) for p, t in zip(parsed, targets)]

    def pct(values, q):
        return round(float(np.percentile(values, q)), 4) if values else None

    def mean(values):
        return round(float(np.mean(values)), 2) if values else None

    cap = task.generation["max_new_tokens"]

    def error(t, p, pred):  # the error classes, written plainly
        if (p == t) if task.labels else (normalize_answer(p or "") == normalize_answer(t) and p is not None):
            return None
        if pred["tokens_out"] >= cap:
            return "truncated"
        if p is None:
            return "no_answer"
        if task.labels:
            return "other_label"
        return "partial" if set(normalize_answer(p).split()) & set(normalize_answer(t).split()) else "wrong"

    errors = [error(t, p, pred) for t, p, pred in zip(targets, parsed, preds)]
    known = {k: [p[k] for p in preds if p.get(k) is not None] for k in ("tokens_in", "tokens_out", "ttft_s")}
    latencies = [p["latency_s"] for p in preds]
    return {
        "metrics": bootstrap_ci(targets, parsed, task.metrics, labels=task.labels, **bootstrap),
        "parse_failures": sum(p is None for p in parsed), "n": len(items),
        "items": [{"id": it["id"], "target": t, "parsed": p, "score": round(s, 6), "error": e}
                  for it, t, p, s, e in zip(items, targets, parsed, scores, errors)],
        "errors": dict(sorted(Counter(e for e in errors if e).items(), key=lambda kv: (-kv[1], kv[0]))),
        "timing": {"latency_p50_s": pct(latencies, 50), "latency_p95_s": pct(latencies, 95),
                   "tokens_in_mean": mean(known["tokens_in"]), "tokens_out_mean": mean(known["tokens_out"]),
                   "ttft_p50_s": pct(known["ttft_s"], 50), "ttft_p95_s": pct(known["ttft_s"], 95)},
    }


RECORD_KEYS = ["source", "system", "model", "adapter", "task", "task_type", "prompting", "shots", "method", "parser",
               "backend", "device", "n", "n_of", "labels", "labels_absent", "primary_metric", "metrics", "parse_failures",
               "errors", "confusions", "items", "timing"]
TIMING_KEYS = ["latency_p50_s", "latency_p95_s", "tokens_in_mean", "tokens_out_mean", "ttft_p50_s", "ttft_p95_s",
               "items_per_s", "tokens_out_per_s", "started_at", "finished_at"]
# computed by the implementation before vectorisation, on write_cell(..., 120, seed=4, api=True)
OLD_ROUTING = {
    "accuracy": {"value": 0.2, "ci_low": 0.141667, "ci_high": 0.275208, "confidence": 0.95, "resamples": 200},
    "macro_f1": {"value": 0.15917, "ci_low": 0.112477, "ci_high": 0.219076, "confidence": 0.95, "resamples": 200},
    "weighted_f1": {"value": 0.241012, "ci_low": 0.167012, "ci_high": 0.327764, "confidence": 0.95, "resamples": 200},
}
OLD_ROUTING_TIMING = {"latency_p50_s": 1.4204, "latency_p95_s": 2.8495, "tokens_in_mean": 215.7,
                      "tokens_out_mean": 4.26, "ttft_p50_s": 0.5728, "ttft_p95_s": 0.911}
OLD_PRODUCT = {
    "token_f1": {"value": 0.691667, "ci_low": 0.611042, "ci_high": 0.76125, "confidence": 0.95, "resamples": 200},
    "exact_match": {"value": 0.608333, "ci_low": 0.516667, "ci_high": 0.683333, "confidence": 0.95, "resamples": 200},
}


@pytest.mark.parametrize("kind", ["classification", "extraction"])
def test_score_equals_the_plain_reference_and_the_old_values(tasks, tmp_path, kind):
    task = tasks[0] if kind == "classification" else tasks[1]
    paths = write_cell(tmp_path, task, 120, seed=4, api=True)
    record = score(task, paths)
    assert list(record) == RECORD_KEYS and list(record["timing"]) == TIMING_KEYS
    expected = reference_record(task, paths)
    assert {k: record[k] for k in expected if k != "timing"} == {k: v for k, v in expected.items() if k != "timing"}
    assert {k: record["timing"][k] for k in expected["timing"]} == expected["timing"]
    assert record["metrics"] == (OLD_ROUTING if kind == "classification" else OLD_PRODUCT)
    if kind == "classification":
        assert {k: record["timing"][k] for k in OLD_ROUTING_TIMING} == OLD_ROUTING_TIMING
    # the file is what write_json writes: indent 2, non-ASCII kept, one newline
    text = (tmp_path / f"{task.name}.score.json").read_text(encoding="utf-8")
    assert text == json.dumps(record, indent=2, ensure_ascii=False) + "\n"


def test_extraction_items_carry_the_primary_metric(tasks, tmp_path):
    task = tasks[1]
    paths = write_cell(tmp_path, task, 60, seed=2)
    record = score(task, paths)
    assert [it["score"] for it in record["items"]] == [round(token_f1(it["parsed"], it["target"]), 6)
                                                        for it in record["items"]]
    assert record["metrics"]["exact_match"]["value"] == round(
        np.mean([exact_match(it["parsed"], it["target"]) for it in record["items"]]), 6)


def test_max_items_scores_the_first_items_of_the_split(tasks, tmp_path):
    task = tasks[0]
    paths = write_cell(tmp_path, task, 50, seed=1, drop=0)
    rows = read_jsonl(paths["jsonl"])
    write_jsonl(paths["jsonl"], [r for r in rows if int(r["id"][2:]) < 20])  # what a max_items=20 run writes
    record = score(task, paths, max_items=20)
    assert record["n"] == 20 and [it["id"] for it in record["items"]] == [f"t-{i:04d}" for i in range(20)]
    expected = reference_record(task, paths, 20)
    assert {k: record[k] for k in ("metrics", "items", "n")} == {k: expected[k] for k in ("metrics", "items", "n")}


def test_an_empty_cell_scores_zero_with_no_timing(tasks, tmp_path):
    task = tasks[0]
    paths = write_cell(tmp_path, task, 0)
    record = score(task, paths)
    assert record["n"] == 0 and record["items"] == [] and record["parse_failures"] == 0
    assert all(m["value"] == m["ci_low"] == m["ci_high"] == 0.0 for m in record["metrics"].values())
    assert record["timing"]["latency_p50_s"] is None and record["timing"]["tokens_in_mean"] is None


@pytest.mark.parametrize(("drop", "extra", "message"), [
    (3, 0, "3 test item(s) have no prediction (e.g. ['t-0000', 't-0001', 't-0002']) and 27 predictions exist for 30 items"),
    (0, 2, "0 test item(s) have no prediction (e.g. []) and 32 predictions exist for 30 items"),
    (1, 1, "1 test item(s) have no prediction (e.g. ['t-0000']) and 30 predictions exist for 30 items"),
])
def test_missing_predictions_name_file_field_and_fix(tasks, tmp_path, drop, extra, message):
    task = tasks[0]
    paths = write_cell(tmp_path, task, 30, drop=drop, extra=extra)
    with pytest.raises(DataError) as info:
        score(task, paths)
    err = info.value
    assert err.problem == message and err.file == paths["jsonl"] and err.field == "id"
    assert err.fix == "delete the predictions file and rerun to regenerate it"
    assert not (tmp_path / f"{task.name}.score.json").exists()


def test_a_repeated_prediction_does_not_stand_in_for_a_missing_one(tasks, tmp_path):
    task = tasks[0]
    paths = write_cell(tmp_path, task, 10, shuffle=False)
    rows = read_jsonl(paths["jsonl"])
    rows[1] = dict(rows[0], parsed=task.labels[9])  # t-0000 twice, t-0001 missing
    write_jsonl(paths["jsonl"], rows)
    with pytest.raises(DataError, match="1 test item"):
        score(task, paths)


def test_unreadable_predictions_are_a_data_error(tasks, tmp_path):
    task = tasks[0]
    paths = write_cell(tmp_path, task, 5)
    with open(paths["jsonl"], "a") as fh:
        fh.write('{"id": "t-9", "parsed": "refund", "latency_s": "slow"}\n')
    with pytest.raises(DataError) as info:
        score(task, paths)
    assert info.value.file == paths["jsonl"] and "latency_s" in info.value.problem


def test_record_json_is_json_dumps():
    texts = ["plain", 'quo"te', "back\\slash", "new\nline", "nul\0", "tab\t", "café ☕ 😀", "\u2028", "%s %d", ""]
    items = [{"id": t, "target": texts[-1 - k], "parsed": None if k % 3 == 0 else t, "score": k / 7}
             for k, t in enumerate(texts)]
    record = {"system": "s", "metrics": {"accuracy": {"value": 0.5}}, "items": items, "timing": {"x": None}}
    assert record_json(record) == json.dumps(record, indent=2, ensure_ascii=False)
    assert record_json({**record, "items": []}) == json.dumps({**record, "items": []}, indent=2, ensure_ascii=False)


def reference_paired(base_items, tuned_items, metric_fn, resamples, confidence, seed):
    """One (resamples x n) draw and a loop: the paired bootstrap as the implementation before did it."""
    tuned = {it["id"]: it for it in tuned_items}
    ids = [it["id"] for it in base_items if it["id"] in tuned]
    a = [it for it in base_items if it["id"] in tuned]
    b = [tuned[i] for i in ids]
    index = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    deltas = np.array([metric_fn([b[i] for i in row]) - metric_fn([a[i] for i in row]) for row in index])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(deltas, [alpha, 1 - alpha])
    return round(100 * float(lo), 3), round(100 * float(hi), 3), round(100 * float(deltas.std(ddof=1)), 3)


@pytest.mark.parametrize("chunk_elements", [None, 1, 500])
def test_paired_comparison_equals_the_plain_loop_in_any_block_size(monkeypatch, chunk_elements):
    if chunk_elements:
        monkeypatch.setattr("tunebench.scoring.metrics.CHUNK_ELEMENTS", chunk_elements)
    rng = random.Random(3)
    labels = ["a", "b", "c", "d"]

    def cell(seed, source="task"):
        g = random.Random(seed)
        items = []
        for k in range(90):
            t = g.choice(labels[:3])
            item = {"id": f"i{k}", "target": t, "parsed": g.choice([t, t, None, "zz", *labels]), "score": 0.0}
            if source == "benchmark":
                item["values"] = {"acc": [g.choice([0.0, 0.5, 1.0]), g.choice([1.0, 2.0])]}
            items.append(item)
        items = [it for it in items if rng.random() < 0.95]
        return {"source": source, "primary_metric": "accuracy", "items": items,
                "metrics": {"acc": {}} if source == "benchmark" else {"accuracy": {}, "macro_f1": {}}}

    def accuracy(rows):
        return sum(r["parsed"] == r["target"] for r in rows) / len(rows)

    def macro_f1(rows):  # labels seen in targets or predictions; fewer than 8, so sums agree with numpy's
        pairs = [(r["target"], r["parsed"]) for r in rows]
        f1 = []
        for label in labels:
            n_true, n_pred = sum(t == label for t, _ in pairs), sum(p == label for _, p in pairs)
            if n_true + n_pred:
                f1.append(2 * sum(t == p == label for t, p in pairs) / (n_true + n_pred))
        return sum(f1) / len(f1)

    def ratio(rows):
        return float(np.array([r["values"]["acc"][0] for r in rows]).sum()
                     / max(np.array([r["values"]["acc"][1] for r in rows]).sum(), 1e-12))

    boot = {"resamples": 300, "confidence": 0.9, "seed": 4}
    base, tuned = cell(1), cell(2)
    rows = {r["metric"]: r for r in paired_comparison(base, tuned, labels=labels, **boot)}
    assert (rows["accuracy"]["ci_low_pp"], rows["accuracy"]["ci_high_pp"], rows["accuracy"]["delta_sd_pp"]) == \
        reference_paired(base["items"], tuned["items"], accuracy, **boot)
    assert (rows["macro_f1"]["ci_low_pp"], rows["macro_f1"]["ci_high_pp"], rows["macro_f1"]["delta_sd_pp"]) == \
        reference_paired(base["items"], tuned["items"], macro_f1, **boot)
    base, tuned = cell(1, "benchmark"), cell(2, "benchmark")
    (row,) = paired_comparison(base, tuned, labels=None, **boot)
    assert (row["ci_low_pp"], row["ci_high_pp"], row["delta_sd_pp"]) == \
        reference_paired(base["items"], tuned["items"], ratio, **boot)


@pytest.mark.parametrize("max_items", [None, 0, 3, 100])
def test_the_scored_items_are_those_predict_evaluates(tasks, tmp_path, max_items):
    from tunebench.predict.generate import eval_items
    from tunebench.predict.score import read_items

    paths = write_cell(tmp_path, tasks[0], 12)
    expected = [(r["id"], r["target"]) for r in eval_items(paths["test.jsonl"], max_items)]
    assert read_items(paths["test.jsonl"], max_items).rows() == expected
