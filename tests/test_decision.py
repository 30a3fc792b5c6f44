"""The decision report: frontier, paired verdicts, constraints (synthetic records, no workflow), and
the Decision section of the demo run's summary.json, summary.md and dashboard."""

from __future__ import annotations

import numpy as np
import pytest

from tunebench.core.atomic import read_json
from tunebench.core.schema import load_schema
from tunebench.report.decision import decision_markdown, decision_report, dominates, ratio_phrase
from tunebench.report.markdown import markdown_table

BOOT = {"resamples": 1000, "confidence": 0.95, "seed": 0}
N = 200


def cell(system: str, outcomes: np.ndarray, *, cost: float | None, p95: float | None,
         prompting: str = "0shot", task: str = "routing") -> tuple[dict, dict]:
    """A score record and its primary cell: accuracy over 0/1 outcomes, with its own (unpaired)
    normal interval as a cell carries one."""
    acc = float(outcomes.mean())
    half = 1.96 * float(np.sqrt(acc * (1 - acc) / len(outcomes)))
    metrics = {"accuracy": {"value": acc, "ci_low": acc - half, "ci_high": acc + half, "confidence": 0.95}}
    record = {"source": "task", "system": system, "task": task, "prompting": prompting,
              "primary_metric": "accuracy", "metrics": metrics,
              "items": [{"id": str(i), "score": int(o), "target": "a", "parsed": "a" if o else "b"}
                        for i, o in enumerate(outcomes)]}
    primary = {"system": system, "task": task, "prompting": prompting, "metric": "accuracy", "primary": True,
               "source": "task", "n": len(outcomes), "latency_p95_s": p95, "cost_per_query_usd": cost,
               **metrics["accuracy"]}
    return record, primary


def outcomes(correct: int, *, start: int = 0) -> np.ndarray:
    """N items, `correct` of them right from item `start` on (wrapping): overlapping sets pair up."""
    out = np.zeros(N, dtype=int)
    out[(start + np.arange(correct)) % N] = 1
    return out


def report(pairs: list[tuple[dict, dict]], constraints: dict | None = None, costs: dict | None = None) -> dict:
    return decision_report([p[0] for p in pairs], [p[1] for p in pairs], constraints, costs=costs, bootstrap=BOOT)


@pytest.fixture
def three() -> list[tuple[dict, dict]]:
    """An API model, a LoRA within noise of it at 1/40 of the cost, and the base model that the LoRA
    beats on the same items although their own intervals overlap."""
    return [
        cell("api", outcomes(140), cost=0.004, p95=1.5),  # 0.70
        # 0.68: 10 items the API gets right wrong, 6 others right (within noise)
        cell("m+routing-500", outcomes(136, start=10), cost=0.0001, p95=0.4, prompting="5shot"),
        cell("m", outcomes(120, start=10), cost=0.0001, p95=0.5),  # 0.60: a subset of the LoRA's right items
    ]


def test_frontier_dominance_and_paired_verdicts(three):
    task = report(three)["tasks"][0]
    by = {c["system"]: c for c in task["candidates"]}
    assert {s for s, c in by.items() if c["frontier"]} == {"api", "m+routing-500"}
    base, lora = by["m"], by["m+routing-500"]
    # the two cells' own intervals overlap, yet the paired test on the same items says better
    assert base["ci_high"] > lora["ci_low"]
    beaten = base["dominated_by"]
    assert (beaten["system"], beaten["prompting"]) == ("m+routing-500", "5shot")
    assert beaten["paired"]["verdict"] == "better" and beaten["paired"]["ci_low_pp"] > 0
    assert beaten["paired"]["delta_pp"] == pytest.approx(8.0) and beaten["paired"]["mcnemar_p"] < 0.001
    assert beaten["cost_ratio"] == 1.0
    # no constraints: the cheapest candidate within noise of the best is recommended
    assert task["best"] == {"system": "api", "prompting": "0shot"}
    assert task["recommended"] == {"system": "m+routing-500", "prompting": "5shot"}
    assert lora["vs_best"]["verdict"] == "within noise" and lora["vs_best"]["ci_low_pp"] < 0 < lora["vs_best"]["ci_high_pp"]
    assert task["sentence"].startswith("m+routing-500 5shot is within noise of api 0shot on routing (Δ -2.0 pp [")
    assert task["sentence"].endswith("at 1/40 of the cost per query.")
    assert task["cost_ratio"] == pytest.approx(0.025)


def test_a_significantly_worse_cheaper_candidate_is_not_recommended():
    pairs = [cell("api", outcomes(150), cost=0.004, p95=1.5), cell("m", outcomes(120), cost=0.0001, p95=0.5)]
    task = report(pairs)["tasks"][0]
    assert task["recommended"] == {"system": "api", "prompting": "0shot"}
    assert {c["system"] for c in task["candidates"] if c["frontier"]} == {"api", "m"}  # cheaper, but worse
    assert "every cheaper candidate is significantly worse" in task["sentence"] and "m 0shot Δ -15.0 pp" in task["sentence"]


def test_constraints_pick_a_qualifying_candidate_or_say_why_none_does(three):
    # the budget rules out the API; the floor rules out the base model: the LoRA is the best left
    task = report(three, {"min_quality": 0.65, "max_usd_per_1k": 1.0})["tasks"][0]
    by = {c["system"]: c for c in task["candidates"]}
    assert [s for s, c in by.items() if c["qualifies"]] == ["m+routing-500"]
    assert by["api"]["failed"] == ["4 per 1k queries > max_usd_per_1k 1"]
    assert by["m"]["failed"] == ["quality 0.600 < min_quality 0.65"]
    assert task["recommended"] == task["best"] == {"system": "m+routing-500", "prompting": "5shot"}
    assert task["sentence"] == ("m+routing-500 5shot is the only candidate that meets the constraints on routing "
                                "(accuracy 0.680 [0.615, 0.745]). 2 of 3 candidates fail the constraints.")

    none = report(three, {"min_quality": 0.69, "max_p95_latency_s": 1.0})["tasks"][0]
    assert none["recommended"] is None and none["best"] is None
    assert none["why_none"] == ("api 0shot: p95 latency 1.5 s > max_p95_latency_s 1; "
                                "m 0shot: quality 0.600 < min_quality 0.69; "
                                "m+routing-500 5shot: quality 0.680 < min_quality 0.69")
    assert none["sentence"] == f"No system meets the constraints on routing: {none['why_none']}."


def test_a_candidate_without_cost_is_listed_not_comparable_and_never_beaten_through_it(three):
    api_record, api_cell = three[0]
    unpriced = (api_record, {**api_cell, "cost_per_query_usd": None})
    costs = {"currency": "USD", "rows": [{"system": "api", "task": "routing", "prompting": "0shot",
                                          "cost_per_query_usd": None, "why_missing": "no api.api price"}]}
    task = report([unpriced, *three[1:]], costs=costs)["tasks"][0]
    api = next(c for c in task["candidates"] if c["system"] == "api")
    assert api["not_comparable"] == ["cost"] and api["why_no_cost"] == "no api.api price" and api["frontier"]
    # the LoRA (priced, within noise) is still picked: an unknown cost never sorts first
    assert task["recommended"]["system"] == "m+routing-500"
    assert task["sentence"].endswith("a cost per query that cannot be compared (one of them is not priced).")
    # neither dominates through an axis only one has: a better, faster unpriced cell beats no priced one
    assert not dominates({"value": 0.9, "cost_per_query_usd": None, "latency_p95_s": 0.1},
                         {"value": 0.5, "cost_per_query_usd": 0.01, "latency_p95_s": 1.0})
    failed = report([unpriced, *three[1:]], {"max_usd_per_1k": 10}, costs=costs)["tasks"][0]["candidates"][0]
    assert failed["failed"] == ["no cost per query (no api.api price; max_usd_per_1k is set)"]


def test_the_report_validates_against_the_summary_schema_and_renders(three, repo_root):
    import jsonschema

    schema = load_schema(repo_root, "summary.schema.json")
    decision = report(three, {"min_quality": 0.65})
    jsonschema.validate({"decision": decision}, {**schema, "required": []})
    text = "\n".join(decision_markdown({"decision": decision}, markdown_table))
    assert "## Decision: which system to ship" in text and "min_quality 0.65" in text
    assert f"**{decision['tasks'][0]['sentence']}**" in text
    assert "| m 0shot | 0.600 [0.532, 0.668] | 0.1 | 0.5 | no | m+routing-500 5shot (better, Δ +8.0 pp [+4.5, +12.0]; at the same cost per query)" in text
    assert [ratio_phrase(r) for r in (0.025, 0.00587, 0.4, 0.6, 1.0, 2.5)] == [
        "1/40 of the cost per query", "1/170 of the cost per query", "1/2.5 of the cost per query",
        "60% of the cost per query", "the same cost per query", "2.5x the cost per query"]


def test_the_demo_run_has_a_decision_per_task_in_json_and_markdown(demo_run):
    summary = read_json(demo_run / "results/test/summary.json")
    tasks = {c["task"] for c in summary["cells"] if c["primary"] and c["source"] == "task"}
    decision = summary["decision"]
    assert {t["task"] for t in decision["tasks"]} == tasks and tasks
    for t in decision["tasks"]:
        assert t["recommended"] is not None  # the test suite sets no constraint
        assert any(c["frontier"] for c in t["candidates"])
        candidates = {(c["system"], c["prompting"]) for c in t["candidates"]}
        assert candidates == {(c["system"], c["prompting"]) for c in summary["cells"]
                              if c["primary"] and c["task"] == t["task"]}
        for c in t["candidates"]:
            assert c["frontier"] or c["dominated_by"] is not None
    text = (demo_run / "results/test/summary.md").read_text()
    assert "## Decision: which system to ship" in text
    assert all(f"**{t['sentence']}**" in text for t in decision["tasks"])


def test_a_candidate_scored_on_other_items_is_not_paired_and_not_picked():
    api = cell("api", outcomes(150), cost=0.004, p95=1.5)
    other_record, other_cell = cell("m", outcomes(148), cost=0.0001, p95=0.5)
    for k, item in enumerate(other_record["items"]):
        item["id"] = f"other-{k}"  # another test sample: nothing to pair with
    task = report([api, (other_record, other_cell)])["tasks"][0]
    m = next(c for c in task["candidates"] if c["system"] == "m")
    assert m["vs_best"] is None and m["frontier"]  # cheaper and faster, so not dominated either
    assert task["recommended"] == {"system": "api", "prompting": "0shot"}
    assert task["sentence"].endswith("(closest: m 0shot shares no items with it to compare).")


def test_a_constraint_out_of_bounds_is_one_config_error(repo_root):
    from tunebench.config.loader import load_project_from_file
    from tunebench.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_project_from_file(repo_root, overrides={"decision": {"min_quality": 70}})  # a percentage, not a share
    assert err.value.field == "decision.min_quality" and "<= 1" in err.value.fix
    # rules/summary.smk reads config["decision"]: every constraint is there, null unless set
    from tunebench.core.schema import fill_defaults

    filled = fill_defaults({"decision": {"max_usd_per_1k": 0.5}}, load_schema(repo_root, "config.schema.yaml"))
    assert filled["decision"] == {"min_quality": None, "max_p95_latency_s": None, "max_usd_per_1k": 0.5}
