"""results/summary.md: the tables a person reads, rendered from the summary's data
(tunebench.report.summary) and nothing else: per task its cells, then what fine-tuning changed, cost
and latency, backend agreement, regression gates and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tunebench.compare.gate import format_p
from tunebench.core.records import BENCHMARK, record_source
from tunebench.report.decision import decision_markdown

BENCHMARK_METHOD = "lm-eval"  # a benchmark's cells name how they were run in the method column


def _plot(summary: dict, name: str, alt: str) -> list[str]:
    """The markdown embedding plots/<name> when that plot was drawn."""
    for path in summary.get("artifacts", {}).get("plots", []):
        if Path(path).name == name:
            return [f"![{alt}]({path})", ""]
    return []


def _shown_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """A cell as its task's table shows it: a benchmark's method is how it was run (lm-eval)."""
    return {**cell, "method": BENCHMARK_METHOD} if record_source(cell) == BENCHMARK else cell


def _fmt(cell: dict) -> str:
    if cell["value"] is None:  # a metric the outputs cannot give (the score record says why)
        return "n/a"
    return f"{cell['value']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"


def markdown(summary: dict) -> str:
    lines = [f"# tunebench summary (suite `{summary['suite']}`)", ""]
    if summary.get("artifacts"):
        lines += [f"Dashboard: [{summary['artifacts']['site']}]({summary['artifacts']['site']}) (opens offline).", ""]
    cells = pl.DataFrame([_shown_cell(c) for c in summary["cells"]]) if summary["cells"] else None
    for task, info in summary["tasks"].items():
        lines += [f"## {task}", "",
                  f"{info['type']}; primary metric **{info['primary_metric']}**; "
                  + (f"parser `{info['parser']}`; " if info.get("parser") else "") +
                  f"splits {', '.join(f'{k} {v}' for k, v in info['splits'].items())}. "
                  "Values with bootstrap confidence intervals over test items.", ""]
        lines += _coverage(info)
        if info.get("chat_template") is not None:
            limit = info.get("limit")
            shown = ("all items" if not limit else f"{limit:.0%} of the items" if limit < 1
                     else f"the first {limit} items")
            lines += [f"Run through lm-evaluation-harness; chat template "
                      f"{'on' if info['chat_template'] else 'off'}; {shown}.", ""]
        if info.get("partial"):
            lines += [f"**PARTIAL**: {info['partial']['message']}. Only the "
                      f"{info['partial']['documents_kept']} complete item(s) are scored; to finish: "
                      f"{info['partial']['resume']}.", ""]
        if info.get("unscored") and info["unscored"]["count"]:
            lines += [f"{info['unscored']['count']} prompt(s) unscored, not counted as failures: "
                      f"{'; '.join(info['unscored']['reasons'])}.", ""]
        if cells is None or cells.filter(pl.col("task") == task).is_empty():
            lines += ["_no results yet_", ""]
            continue
        lines += _plot(summary, f"task_{task}.png", f"{task}: primary metric with confidence intervals")
        part = cells.filter(pl.col("task") == task).with_columns(
            pl.struct("value", "ci_low", "ci_high").map_elements(_fmt, return_dtype=pl.String).alias("shown"))
        wide = part.pivot(on="metric", index=["system", "prompting", "shots"], values="shown")
        extra = part.filter(pl.col("primary")).select(
            "system", "prompting", "method", "n", "parse_failures", "latency_p50_s", "latency_p95_s",
            "tokens_in_mean", "tokens_out_mean")
        table = wide.join(extra, on=["system", "prompting"]).sort("system", "shots").drop("shots")
        ordered = ["system", "prompting"] + [m for m in info["metrics"] if m in table.columns] + [
            "method", "n", "parse_failures", "latency_p50_s", "latency_p95_s", "tokens_in_mean", "tokens_out_mean"]
        lines += [markdown_table(table.select(ordered)), ""]
        lines += errors_markdown(summary, task)
        missing = [c for c in summary["cells"] if c["task"] == task and c.get("unavailable")]
        lines += [f"n/a: {c['metric']} of {c['system']} {c['prompting']}: {c['unavailable']}." for c in missing]
        lines += [""] if missing else []
    lines += methods_markdown(summary)
    lines += comparison_markdown(summary)
    if summary.get("comparisons"):
        lines += _plot(summary, "forgetting.png", "fine-tuned minus base, percentage points")
    lines += cost_markdown(summary)
    lines += decision_markdown(summary, markdown_table)
    lines += agreement_markdown(summary)
    lines += leakage_markdown(summary)
    lines += gate_markdown(summary)
    prov = summary["provenance"]
    hw = prov["hardware"]
    versions = ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v)
    lines += [
        "## Provenance", "",
        f"- commit: `{prov['git_commit'] or 'not a git checkout'}`" + (" (uncommitted changes)" if prov["git_dirty"] else ""),
        f"- config hash: `{prov['config_hash'][:16]}`",
        f"- run: {prov['started_at']} to {prov['finished_at']}",
        f"- hardware: {hw['cpu']} ({hw['logical_cpus']} CPUs, {hw['memory_gb']} GB){', GPU ' + hw['gpu'] if hw.get('gpu') else ''}",
        f"- packages: {versions}",
        "",
    ]
    return "\n".join(lines)


def _coverage(info: dict) -> list[str]:
    """How many labels the task has and how much of its test split the cells evaluate."""
    parts = []
    if info.get("labels"):
        absent = info.get("labels_absent") or []
        parts.append(f"{len(info['labels'])} labels" + (f", {len(absent)} of them absent from the evaluated items"
                                                         if absent else ", every one among the evaluated items"))
    if info.get("test_of") is not None:
        n, of = info["evaluated"], info["test_of"]
        parts.append(f"n = {n} of {of} test items" + (" (the whole test split)" if n == of else " (a subset)"))
    return [f"{'; '.join(parts)}.", ""] if parts else []


def errors_markdown(summary: dict, task: str) -> list[str]:
    """Wrong items per error class for each cell of a task, and its most frequent confusions."""
    rows = [r for r in summary.get("errors") or [] if r["task"] == task]
    if not rows or not any(r["wrong"] for r in rows):
        return []
    classes = sorted({k for r in rows for k in r["errors"]}, key=lambda k: -sum(r["errors"].get(k, 0) for r in rows))
    table = pl.DataFrame([{"system": r["system"], "prompting": r["prompting"], "wrong of n": f"{r['wrong']} of {r['n']}",
                           **{k: r["errors"].get(k, 0) for k in classes}} for r in rows])
    lines = ["Errors by class:", "", markdown_table(table), ""]
    confused = [(r, c) for r in rows for c in r["confusions"][:3]]
    if confused:
        lines += ["Top confusions (target -> answer, count): " + "; ".join(
            f"{r['system']} {r['prompting']}: {c['target']} -> {c['answer']} ({c['count']})" for r, c in confused), ""]
    return lines


def methods_markdown(summary: dict) -> list[str]:
    """Methods side by side on the same items: the other method minus the task's own."""
    rows = [r for r in summary.get("methods") or [] if r["primary"]]
    if not rows:
        return []
    table = pl.DataFrame([{
        "system": r["system"], "task": r["task"], "shots": r["shots"],
        "methods": f"{r['method']} -> {r['other_method']}", "metric": r["metric"],
        "values": f"{r['base']:.3f} -> {r['finetuned']:.3f}",
        "delta (pp)": f"{r['delta_pp']:+.1f} [{r['ci_low_pp']:+.1f}, {r['ci_high_pp']:+.1f}] {r['direction']}",
        "items/s": f"{_speed(r['items_per_s'])} -> {_speed(r['other_items_per_s'])}",
    } for r in rows])
    return ["## Methods side by side", "",
            "Each condition under another method against the task's own method on the same items and "
            "in-context examples (paired bootstrap).", "", markdown_table(table), ""]


def _speed(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def comparison_markdown(summary: dict) -> list[str]:
    """Did fine-tuning help (the target task) and what did it break (general benchmarks)."""
    lines = []
    for report in summary.get("comparisons", []):
        train = summary.get("adapters", {}).get(report["system"], {})
        lines += [f"## Fine-tuned: {report['system']}", "",
                  f"LoRA adapter `{report['adapter']}` on {report['base_system']}"
                  + (f": {train['n_train']} training examples, {train['steps']} steps, "
                     f"{train['train_tokens_per_s']} tokens/s, peak RSS {train['peak_rss_mb']:.0f} MB"
                     if train else "") + ". Paired on the same items: Δ in percentage points with its "
                  "bootstrap interval; ↗/↘ when the interval excludes 0, → when the change is within noise.", ""]
        rows = [r for r in report["rows"] if r["primary"] or r["role"] == "target"]
        if not rows:
            lines += ["_no comparable results yet_", ""]
            continue
        frame = pl.DataFrame([{
            "role": r["role"], "task": r["task"], "metric": r["metric"],
            "base": f"{r['base']:.3f} ({r['base_prompting']})", "fine-tuned": f"{r['finetuned']:.3f}",
            "Δ pp": f"{r['delta_pp']:+.1f} [{r['ci_low_pp']:+.1f}, {r['ci_high_pp']:+.1f}]",
            "Δ %": f"{r['delta_rel_pct']:+.1f}" if r["delta_rel_pct"] is not None else "-",
            "": r["direction"], "p": format_p(r["p_value"]), "n": r["n_paired"],
        } for r in rows])
        general = report["general"]
        lines += [markdown_table(frame), "",
                  f"General benchmarks (primary metrics): {general['improved']} improved, {general['regressed']} "
                  f"regressed, {general['unchanged']} within noise; mean change "
                  + (f"{general['mean_delta_pp']:+.2f} pp." if general["mean_delta_pp"] is not None else "-."), ""]
    return lines


def _money(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v >= 1 else f"{v:.2g}"


def cost_markdown(summary: dict) -> list[str]:
    """Is it worth it: accuracy next to latency, cost per query and TCO, per task."""
    costs = summary.get("costs")
    if not costs or not costs["rows"]:
        return []
    tco = costs["tco"]
    cur = costs["currency"]
    lines = ["## Cost and latency", "",
             f"Cost per query from the measured tokens (API) or generation wall time (self-hosted) and "
             f"the prices in the pricing file; TCO over {tco['months']} months at {tco['queries_per_day']:,g} "
             f"queries/day ({cur}): the API bills each query, self-hosted pays enough dedicated machines to "
             f"carry the volume at {costs['utilization']:.0%} of the measured throughput, plus adapter "
             f"training x {tco['trainings']}. Latency: per item (a batch's wall time for batched backends); "
             "TTFT where the backend streams.", ""]
    for task in dict.fromkeys(r["task"] for r in costs["rows"]):
        frame = pl.DataFrame([{
            "system": r["system"], "prompting": r["prompting"], "backend": r["backend"] or "-",
            r["metric"]: round(r["value"], 3), "p50 s": r["latency_p50_s"], "p95 s": r["latency_p95_s"],
            "TTFT p50 s": r["ttft_p50_s"], "tokens in/out": f"{r['tokens_in_mean'] or 0:.0f}/{r['tokens_out_mean'] or 0:.0f}",
            "items/s": r["items_per_s"],
            f"{cur}/query": _money(r["cost_per_query_usd"]),
            f"{cur}/1k": _money(None if r["cost_per_query_usd"] is None else r["cost_per_query_usd"] * 1000),
            f"TCO {tco['months']} mo": _money(r["tco_usd"]) if r["tco_usd"] is not None else f"- ({r['why_missing']})",
            "machines": r.get("machines") or "-",
        } for r in costs["rows"] if r["task"] == task])
        lines += [f"### {task}", "", markdown_table(frame), ""]
    lines += _plot(summary, "cost_accuracy.png", "quality against cost per query")
    lines += _plot(summary, "tco.png", "total cost of ownership")
    return lines


def agreement_markdown(summary: dict) -> list[str]:
    """The same model on two backends: do they answer alike?"""
    lines = []
    for report in summary.get("agreement", []):
        a, b = report["systems"]
        lines += [f"## Backend agreement: {a} vs {b}", "",
                  f"The same items through {report['backends'][0]} and {report['backends'][1]}: the share of "
                  f"items with the same parsed answer (flagged below {report['min_rate']:.0%}) and the paired "
                  "score difference (b - a) with its bootstrap interval.", ""]
        if report["flagged"]:
            lines += [f"**FLAGGED**: {'; '.join(report['flags'])}.", ""]
        frame = pl.DataFrame([{
            "task": r["task"], "prompting": r["prompting"], "n": r["n"],
            "same answer": f"{r['agreement_rate']:.1%}", "same output": f"{r['exact_output_rate']:.1%}",
            "a": round(r["score_a"], 3), "b": round(r["score_b"], 3),
            "Δ pp": f"{r['delta_pp']:+.1f} [{r['ci_low_pp']:+.1f}, {r['ci_high_pp']:+.1f}]",
            "flag": "⚠" if r["flagged"] else "",
        } for r in report["rows"]])
        lines += [markdown_table(frame), ""]
    return lines


def leakage_markdown(summary: dict) -> list[str]:
    """Train/test overlap beside the fine-tuned systems trained on each set."""
    rows = summary.get("leakage") or []
    if not rows:
        return []
    frame = pl.DataFrame([{
        "training set": r["train_set"], "systems": ", ".join(r["systems"]) or "(few-shot source)",
        "evaluated on": r["eval_set"], "n": r["n"], "exact": r["exact"], "13-gram": r["ngram"],
        "touched": f"{r['touched_share']:.1%}" if r["checked"] else r.get("note") or "not checked",
    } for r in rows], schema_overrides={"n": pl.Int64, "exact": pl.Int64, "13-gram": pl.Int64})
    return ["## Leakage", "", "Test items (and benchmark documents) whose normalised text is in a training set "
            "(exact) or shares a word 13-gram with it; `<task>-full` is the task's whole train split, where "
            "in-context examples come from.", "", markdown_table(frame), ""]


def gate_markdown(summary: dict) -> list[str]:
    """Regression gates: every metric against the stored baseline, with the verdict and why."""
    lines = []
    for report in summary.get("gates", []):
        for leak in report.get("leakage", []):
            lines += [f"## Regression gate: {report['system']}", "", f"**FAIL** (leakage): {leak['message']}.", ""]
        if report["baseline"] is None:
            continue
        base = report["baseline"]
        counts = report["counts"]
        verdict = (f"**{report['gate']}**: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['IMPROVED']} IMPROVED. "
                   if report["rows"] else "**NOT COMPARED**: no score of this run is in the baseline (a gate "
                   "that compared nothing passes nothing). ")
        lines += [f"## Regression gate: {report['system']} vs {base['file']}", "",
                  f"Baseline run `{base['run_id']}` ({base['created_at']}, suite `{base['suite']}`). " + verdict +
                  "FAIL and IMPROVED need the threshold and a paired test; MDE: the smallest change this n can detect.",
                  ""]
        if report["rows"]:
            frame = pl.DataFrame([{
                "task": r["task"], "prompting": r["prompting"], "metric": r["metric"],
                "baseline": f"{r['baseline']:.3f}", "current": f"{r['current']:.3f}", "Δ pp": f"{r['delta_pp']:+.1f}",
                "verdict": r["verdict"], "p": format_p(r["p_value"]), "MDE pp": r["mde_pp"], "why": r["why"],
            } for r in report["rows"] if r["primary"] or r["verdict"] != "PASS"])
            lines += [markdown_table(frame), ""]
        if report.get("not_in_baseline"):
            lines += [f"Not in the baseline (no verdict): {', '.join(report['not_in_baseline'])}.", ""]
    return lines


def markdown_table(frame: pl.DataFrame) -> str:
    def show(v):
        if v is None:
            return "-"
        return f"{v:g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(show(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([head, rule, *body])


