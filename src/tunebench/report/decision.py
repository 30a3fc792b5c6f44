"""Which system to ship, per task: the Pareto frontier over quality, cost per query and p95 latency,
what beats each dominated candidate on the same items, and one recommendation under the config's
`decision` constraints (summary.json `decision`, summary.md "Decision", the dashboard).

A candidate is one (system, prompting) cell, not a system's best condition: the prompting sets the
prompt's length, so cost and latency belong to the cell, and picking each system's best condition
by its own noisy score would flatter every system that was run under more conditions.

- Frontier: a candidate is dominated when another is at least as good on every axis and strictly
  better on one, on point estimates (a strict partial order, so every dominated candidate has a
  dominator on the frontier). Cost or latency that only one of the two has measured decides
  nothing: neither dominates the other through it. A candidate without a measured axis is listed
  with that axis under `not_comparable`.
- What beats a dominated candidate is said by a paired test on the items both were scored on
  (tunebench.compare.paired: paired bootstrap of the difference; McNemar's exact test too for 0/1
  outcomes), never by overlapping intervals: `better` when the interval of the difference lies
  above 0, `worse` below, `within noise` when it contains 0.
- Recommendation: among the candidates that meet the constraints, the cheapest one that is not
  significantly worse than the best of them (by the same paired test). A tie in cost goes to the
  higher quality, then to the lower latency. When none qualifies, each candidate's failed
  constraints are named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from tunebench.compare.gate import mcnemar_exact
from tunebench.compare.paired import paired_comparison
from tunebench.core.records import TASK, record_source

CANDIDATES = "each (system, prompting) cell"
RULE = ("the cheapest candidate that meets the constraints and is not significantly worse (paired test on "
        "the same items) than the best candidate that meets them")
BETTER, WORSE, NOISE = "better", "worse", "within noise"
CONSTRAINTS = ("min_quality", "max_p95_latency_s", "max_usd_per_1k")


def candidate_name(row: Mapping[str, Any]) -> str:
    return f"{row['system']} {row['prompting']}"


def verdict(ci_low_pp: float, ci_high_pp: float) -> str:
    return BETTER if ci_low_pp > 0 else WORSE if ci_high_pp < 0 else NOISE


def _known(value: Any) -> bool:
    return value is not None


def _no_worse(a: float | None, b: float | None) -> bool | None:
    """a is at most b (lower is better); None when only one is measured (the axis decides nothing)."""
    if _known(a) != _known(b):
        return None
    return True if a is None else a <= b  # type: ignore[operator]


def dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """a is at least as good as b on quality, cost per query and p95 latency, and better on one."""
    if a["value"] is None or b["value"] is None or a["value"] < b["value"]:
        return False
    cheaper = _no_worse(a["cost_per_query_usd"], b["cost_per_query_usd"])
    faster = _no_worse(a["latency_p95_s"], b["latency_p95_s"])
    if cheaper is None or faster is None or not (cheaper and faster):
        return False
    strictly = a["value"] > b["value"]
    for axis in ("cost_per_query_usd", "latency_p95_s"):
        if a[axis] is not None and a[axis] < b[axis]:
            strictly = True
    return strictly


def _primary_only(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its primary metric only: the paired bootstrap then resamples just that."""
    primary = record["primary_metric"]
    return {**record, "metrics": {primary: record["metrics"][primary]}}


def _binary(record: Mapping[str, Any], ids: list[str]) -> np.ndarray | None:
    if record["primary_metric"] not in ("accuracy", "exact_match"):
        return None
    by_id = {str(it["id"]): it["score"] for it in record["items"]}
    scores = [by_id[i] for i in ids]
    return np.array(scores, dtype=int) if all(s in (0, 1) for s in scores) else None


def paired_difference(a: Mapping[str, Any], b: Mapping[str, Any], *, labels: list[str] | None,
                      bootstrap: Mapping[str, Any]) -> dict[str, Any] | None:
    """a minus b on the primary metric over the items both scored: the paired-bootstrap interval,
    its verdict, and McNemar's exact p for 0/1 outcomes. None when they share no item or the
    primary metric is no sum over items (it cannot be paired)."""
    rows = paired_comparison(_primary_only(b), _primary_only(a), labels=labels, **bootstrap)
    row = next((r for r in rows if r["primary"]), None)
    if row is None:
        return None
    out = {"delta_pp": row["delta_pp"], "ci_low_pp": row["ci_low_pp"], "ci_high_pp": row["ci_high_pp"],
           "p_value": row["p_value"], "confidence": row["confidence"], "n_paired": row["n_paired"],
           "verdict": verdict(row["ci_low_pp"], row["ci_high_pp"]), "test": row["test"], "mcnemar_p": None}
    a_ids = {str(it["id"]) for it in a["items"]}
    ids = [str(it["id"]) for it in b["items"] if str(it["id"]) in a_ids]
    xa, xb = _binary(a, ids), _binary(b, ids)
    if xa is not None and xb is not None:
        p, _, _ = mcnemar_exact(xb, xa)
        out["mcnemar_p"] = round(p, 5)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return float(f"{a / b:.4g}")


def ratio_phrase(ratio: float | None) -> str:
    """How a's cost per query compares with b's, for a sentence."""
    if ratio is None:
        return "a cost per query that cannot be compared (one of them is not priced)"
    if ratio == 1:
        return "the same cost per query"
    if ratio == 0:
        return "no measurable cost per query"
    if ratio <= 0.5:  # two significant figures, never in exponent form: 1/170, 1/40, 1/2.5
        return f"1/{float(f'{1 / ratio:.2g}'):g} of the cost per query"
    if ratio < 1:
        return f"{ratio:.0%} of the cost per query"
    return f"{ratio:.2g}x the cost per query"


def constraint_failures(c: Mapping[str, Any], constraints: Mapping[str, Any]) -> list[str]:
    """Each constraint the candidate fails, said with its numbers; an unmeasured axis fails a set
    constraint on it (an unknown latency is no evidence of meeting a latency bound). The quality
    floor applies to the point estimate: an interval's lower bound would fail every small test set."""
    failed = []
    floor, latency, budget = (constraints.get(k) for k in CONSTRAINTS)
    if c["value"] is None:
        failed.append("no value of the primary metric")
    elif floor is not None and c["value"] < floor:
        failed.append(f"quality {c['value']:.3f} < min_quality {floor:g}")
    if latency is not None:
        if c["latency_p95_s"] is None:
            failed.append("p95 latency not measured (max_p95_latency_s is set)")
        elif c["latency_p95_s"] > latency:
            failed.append(f"p95 latency {c['latency_p95_s']:.3g} s > max_p95_latency_s {latency:g}")
    if budget is not None:
        if c["usd_per_1k"] is None:
            failed.append(f"no cost per query ({c['why_no_cost'] or 'not priced'}; max_usd_per_1k is set)")
        elif c["usd_per_1k"] > budget:
            failed.append(f"{c['usd_per_1k']:.3g} per 1k queries > max_usd_per_1k {budget:g}")
    return failed


def _candidates(cells: Sequence[Mapping[str, Any]], task: str, cost_rows: Mapping[tuple, Mapping]) -> list[dict]:
    out = []
    for cell in cells:
        if not cell["primary"] or cell["task"] != task or record_source(cell) != TASK:
            continue
        cost_row = cost_rows.get((cell["system"], cell["task"], cell["prompting"]), {})
        cost = cost_row.get("cost_per_query_usd", cell.get("cost_per_query_usd"))
        row = {"system": cell["system"], "prompting": cell["prompting"], "value": cell["value"],
               "ci_low": cell["ci_low"], "ci_high": cell["ci_high"], "n": cell["n"],
               "cost_per_query_usd": cost, "usd_per_1k": None if cost is None else float(f"{cost * 1000:.6g}"),
               "why_no_cost": None if cost is not None else (cost_row.get("why_missing") or "not priced"),
               "latency_p95_s": cell.get("latency_p95_s")}
        row["not_comparable"] = [axis for axis, key in (("quality", "value"), ("cost", "cost_per_query_usd"),
                                                         ("latency", "latency_p95_s")) if row[key] is None]
        out.append(row)
    return sorted(out, key=lambda r: (r["system"], r["prompting"]))


def _cheapest_first(c: Mapping[str, Any]) -> tuple:
    return (c["cost_per_query_usd"] is None, c["cost_per_query_usd"] or 0.0, -(c["value"] or 0.0),
            c["latency_p95_s"] is None, c["latency_p95_s"] or 0.0, candidate_name(c))


def task_decision(task: str, metric: str, candidates: list[dict], records: Mapping[tuple, Mapping],
                  constraints: Mapping[str, Any], *, labels: list[str] | None,
                  bootstrap: Mapping[str, Any]) -> dict[str, Any]:
    """The frontier, each dominated candidate's frontier dominator, and the recommendation for one
    task. `records`: per (system, prompting) its score record (the per-item outcomes)."""

    def paired(a: Mapping, b: Mapping) -> dict[str, Any] | None:
        ra, rb = records.get((a["system"], a["prompting"])), records.get((b["system"], b["prompting"]))
        if ra is None or rb is None:
            return None
        return paired_difference(ra, rb, labels=labels, bootstrap=bootstrap)

    for c in candidates:
        c["frontier"] = c["value"] is not None and not any(dominates(o, c) for o in candidates if o is not c)
    frontier = [c for c in candidates if c["frontier"]]
    for c in candidates:
        c["dominated_by"] = None
        beaters = [f for f in frontier if dominates(f, c)]
        if not c["frontier"] and beaters:
            top = min(beaters, key=_cheapest_first)
            c["dominated_by"] = {"system": top["system"], "prompting": top["prompting"],
                                 "cost_ratio": _ratio(top["cost_per_query_usd"], c["cost_per_query_usd"]),
                                 "paired": paired(top, c)}
        c["failed"] = constraint_failures(c, constraints)
        c["qualifies"] = not c["failed"]
        c["vs_best"] = None
    qualifying = [c for c in candidates if c["qualifies"]]
    out: dict[str, Any] = {"task": task, "metric": metric, "candidates": candidates, "best": None,
                           "recommended": None, "cost_ratio": None, "why_none": None}
    if not qualifying:
        out["why_none"] = "; ".join(f"{candidate_name(c)}: {', '.join(c['failed'])}" for c in candidates) or \
            "no candidate has been scored"
        out["sentence"] = (f"No system meets the constraints on {task}: {out['why_none']}." if candidates
                           else f"No system has been scored on {task} yet.")
        return out
    best = min(qualifying, key=lambda c: (-c["value"], *_cheapest_first(c)))
    for c in qualifying:
        if c is not best:
            c["vs_best"] = paired(c, best)
    pool = [best] + [c for c in qualifying if c["vs_best"] is not None and c["vs_best"]["verdict"] != WORSE]
    pick = min(pool, key=_cheapest_first)
    out["best"] = {"system": best["system"], "prompting": best["prompting"]}
    out["recommended"] = {"system": pick["system"], "prompting": pick["prompting"]}
    out["cost_ratio"] = _ratio(pick["cost_per_query_usd"], best["cost_per_query_usd"])
    out["sentence"] = _sentence(task, metric, pick, best, qualifying, candidates, constraints)
    return out


def _interval(d: Mapping[str, Any]) -> str:
    return f"Δ {d['delta_pp']:+.1f} pp [{d['ci_low_pp']:+.1f}, {d['ci_high_pp']:+.1f}]"


def _sentence(task: str, metric: str, pick: dict, best: dict, qualifying: list[dict], candidates: list[dict],
              constraints: Mapping[str, Any]) -> str:
    name = candidate_name(pick)
    left_out = len(candidates) - len(qualifying)
    tail = f" {left_out} of {len(candidates)} candidates fail the constraints." if left_out else ""
    if pick is not best:
        d = pick["vs_best"]
        relation = "within noise of" if d["verdict"] == NOISE else "better than"
        return (f"{name} is {relation} {candidate_name(best)} on {task} ({_interval(d)}) at "
                f"{ratio_phrase(_ratio(pick['cost_per_query_usd'], best['cost_per_query_usd']))}.{tail}")
    shown = f"{pick['value']:.3f} [{pick['ci_low']:.3f}, {pick['ci_high']:.3f}]"
    if len(qualifying) == 1:
        alone = "the only candidate" if len(candidates) == 1 else "the only candidate that meets the constraints"
        return f"{name} is {alone} on {task} ({metric} {shown}).{tail}"
    others = [c for c in qualifying if c is not pick]
    cost = pick["cost_per_query_usd"]
    if cost is None:  # nothing is known to be cheaper: every other candidate is the comparison
        cheaper, which = others, "every other candidate"
    else:
        cheaper = [c for c in others if c["cost_per_query_usd"] is not None and c["cost_per_query_usd"] < cost]
        which = "every cheaper candidate"
    if not cheaper:
        priced = "" if all(c["cost_per_query_usd"] is not None for c in others) else " of those priced"
        return f"{name} has the best {metric} on {task} ({shown}) at the lowest cost per query{priced}.{tail}"
    closest = max(cheaper, key=lambda c: c["value"])
    d = closest["vs_best"]
    said = (f"{candidate_name(closest)} {_interval(d)}" if d is not None
            else f"{candidate_name(closest)} shares no items with it to compare")
    unpaired = "" if all(c["vs_best"] is not None for c in cheaper) else " or cannot be paired"
    return (f"{name} has the best {metric} on {task} ({shown}); {which} is significantly worse{unpaired} "
            f"(closest: {said}).{tail}")


def decision_report(scores: Sequence[Mapping[str, Any]], cells: Sequence[Mapping[str, Any]],
                    constraints: Mapping[str, Any] | None = None, *, costs: Mapping[str, Any] | None = None,
                    labels: Mapping[str, list[str] | None] | None = None,
                    bootstrap: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """summary.json's `decision`: per task with scored cells, the frontier and the recommendation.
    `scores`: the score records as written (dicts, with their items); `cells`: the summary's cells;
    `costs`: the summary's cost table (its rows say why a cell has no cost)."""
    constraints = {k: (constraints or {}).get(k) for k in CONSTRAINTS}
    labels = labels or {}
    bootstrap = dict(bootstrap or {})
    cost_rows = {(r["system"], r["task"], r["prompting"]): r for r in (costs or {}).get("rows", [])}
    records: dict[str, dict[tuple, Mapping]] = {}
    for s in scores:
        if record_source(s) == TASK:
            records.setdefault(s["task"], {})[(s["system"], s["prompting"])] = s
    tasks = []
    for task in sorted(records):
        candidates = _candidates(cells, task, cost_rows)
        if not candidates:
            continue
        metric = next(c["metric"] for c in cells if c["primary"] and c["task"] == task)
        tasks.append(task_decision(task, metric, candidates, records[task], constraints,
                                   labels=labels.get(task), bootstrap=bootstrap))
    return {"candidates": CANDIDATES, "rule": RULE, "constraints": constraints,
            "currency": (costs or {}).get("currency", "USD"), "tasks": tasks}


def decision_markdown(summary: Mapping[str, Any], markdown_table: Callable[[pl.DataFrame], str]) -> list[str]:
    """The "Decision" section of summary.md: the rule, then per task its sentence and candidates.
    `markdown_table` is summary.md's own table renderer, passed in: markdown.py imports this module."""
    decision = summary.get("decision")
    if not decision or not decision["tasks"]:
        return []
    set_ = {k: v for k, v in decision["constraints"].items() if v is not None}
    lines = ["## Decision: which system to ship", "",
             f"Candidates: {decision['candidates']}. Frontier: not beaten on quality (the primary metric), cost "
             "per query and p95 latency at once; an axis only one of two candidates has measured decides nothing "
             f"between them. Recommended: {decision['rule']}. Constraints: "
             + (", ".join(f"{k} {v:g}" for k, v in set_.items()) if set_ else "none (set `decision:` in the config)")
             + ". Δ: the paired-bootstrap difference on the same items, in percentage points.", ""]
    cur = decision["currency"]
    for t in decision["tasks"]:
        lines += [f"### {t['task']}", "", f"**{t['sentence']}**", ""]
        frame = pl.DataFrame([{
            "candidate": candidate_name(c), t["metric"]: f"{c['value']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]"
            if c["value"] is not None else "n/a",
            f"{cur}/1k": "-" if c["usd_per_1k"] is None else f"{c['usd_per_1k']:.3g}",
            "p95 s": "-" if c["latency_p95_s"] is None else f"{c['latency_p95_s']:.3g}",
            "frontier": "yes" if c["frontier"] else "no",
            "beaten by": _beaten(c), "constraints": "met" if c["qualifies"] else "; ".join(c["failed"]),
            "not comparable on": ", ".join(c["not_comparable"]) or "-",
        } for c in t["candidates"]])
        lines += [markdown_table(frame), ""]
    return lines


def _beaten(c: Mapping[str, Any]) -> str:
    by = c["dominated_by"]
    if by is None:
        return "-"
    d = by["paired"]
    said = f"{d['verdict']}, {_interval(d)}" if d is not None else "not paired"
    return f"{candidate_name(by)} ({said}; at {ratio_phrase(by['cost_ratio'])})"
