"""The backend agreement check on two systems' score and prediction files."""

from __future__ import annotations

from tunebench.compare.agreement import agreement_report
from tunebench.core.atomic import write_json, write_jsonl

LABELS = ["billing", "shipping"]
BOOT = {"resamples": 200, "confidence": 0.95, "seed": 0}


def cell(tmp_path, side: str, parsed: list[str | None], outputs: list[str], backend: str) -> dict:
    targets = ["billing"] * len(parsed)
    items = [{"id": f"i{k}", "target": t, "parsed": p, "score": float(p == t)}
             for k, (t, p) in enumerate(zip(targets, parsed))]
    score = {"method": "generate", "primary_metric": "accuracy", "metrics": {"accuracy": {}}, "items": items,
             "backend": backend}
    write_json(tmp_path / f"score_{side}.json", score)
    write_jsonl(tmp_path / f"rows_{side}.jsonl", [{"id": f"i{k}", "output": o} for k, o in enumerate(outputs)])
    return {f"score_{side}": str(tmp_path / f"score_{side}.json"), f"rows_{side}": str(tmp_path / f"rows_{side}.jsonl")}


def report(tmp_path, parsed_a, parsed_b, outputs_a, outputs_b):
    files = {**cell(tmp_path, "a", parsed_a, outputs_a, "transformers"),
             **cell(tmp_path, "b", parsed_b, outputs_b, "llamacpp")}
    return agreement_report(systems=("hf", "gguf"), cells=[{"task": "t", "prompting": "0shot", **files}],
                            labels={"t": LABELS}, min_rate=0.9, bootstrap=BOOT)


def test_identical_answers_agree_fully_and_are_not_flagged(tmp_path):
    parsed = ["billing", "shipping"] * 10
    r = report(tmp_path, parsed, parsed, ["billing."] * 20, ["billing"] * 20)
    (row,) = r["rows"]
    assert row["agreement_rate"] == 1.0 and row["exact_output_rate"] == 0.0  # same answers, different text
    assert row["delta_pp"] == 0.0 and not r["flagged"] and r["backends"] == ["transformers", "llamacpp"]


def test_disagreeing_backends_are_flagged_with_the_reason(tmp_path):
    a = ["billing"] * 20
    b = ["billing"] * 8 + ["shipping"] * 12
    r = report(tmp_path, a, b, a, b)
    (row,) = r["rows"]
    assert row["agreement_rate"] == 0.4 and row["exact_output_rate"] == 0.4
    assert row["score_a"] == 1.0 and row["score_b"] == 0.4 and row["delta_pp"] == -60.0 and row["ci_high_pp"] < 0
    assert r["flagged"] and any("agree on 40.0%" in f for f in r["flags"]) and any("differs" in f for f in r["flags"])
