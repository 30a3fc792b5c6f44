"""results/summary.json (every cell, with provenance; validated against its schema) and
results/summary.md (the tables a person reads)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import polars as pl

import tunebench
from tunebench.compare.gate import format_p
from tunebench.compare.paired import forgetting_report
from tunebench.core.atomic import read_json, write_json, write_text
from tunebench.core.provenance import git_state, hardware, package_versions
from tunebench.data.models import MODEL_MANIFEST
from tunebench.report.cost import cell_cost
from tunebench.train.lora import TRAINING_RECORD

log = logging.getLogger(__name__)

CELL_TIMING = ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "tokens_in_mean", "tokens_out_mean", "items_per_s")


def cells_from_score(score: dict) -> list[dict]:
    cells = []
    for metric, stats in score["metrics"].items():
        cell = {
            "system": score["system"], "model": score["model"], "adapter": score["adapter"],
            "task": score["task"], "prompting": score["prompting"], "shots": score["shots"],
            "metric": metric, "primary": metric == score["primary_metric"],
            "value": stats["value"], "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
            "confidence": stats["confidence"], "n": score["n"], "method": score["method"],
            "parse_failures": score["parse_failures"], "parser": score.get("parser"),
        }
        cell.update({k: score["timing"].get(k) for k in CELL_TIMING})
        if "stderr" in stats:
            cell["stderr"] = stats["stderr"]
        if "unscored" in score:
            cell["unscored"] = score["unscored"]["count"]
        if score["method"] == "lm-eval":
            cell.update(filter=stats.get("filter"), ci_method=stats.get("ci_method"),
                        partial=bool(score.get("partial")))
        cells.append(cell)
    return cells


def build_summary(*, score_paths: list[str], prepared_manifests: dict[str, str],
                  model_dirs: dict[str, str], tasks: dict, suite: str, config_hash: str,
                  root: str | Path, schema: dict, systems: dict | None = None,
                  adapter_records: dict[str, str] | None = None, bootstrap: dict | None = None,
                  gate_paths: list[str] | None = None, pricing: dict | None = None,
                  api_models: list[str] | None = None, agreement_paths: list[str] | None = None) -> dict:
    scores = [read_json(p) for p in score_paths]
    cells = [c for s in scores for c in cells_from_score(s)]
    cells.sort(key=lambda c: (c["task"], c["system"], c["shots"], not c["primary"], c["metric"]))
    task_info = {}
    for name, path in prepared_manifests.items():
        manifest = read_json(path)
        task = tasks[name]
        task_info[name] = {
            "type": task.type, "primary_metric": task.primary_metric, "metrics": list(task.metrics),
            "labels": list(task.labels) if task.labels else None, "parser": task.parser,
            "splits": {k: v["rows"] for k, v in manifest["splits"].items()},
        }
    for score in scores:  # benchmarks have no prepared split: describe them from their score
        if score["task"] not in task_info:
            task_info[score["task"]] = {
                "type": score["task_type"], "primary_metric": score["primary_metric"],
                "metrics": list(score["metrics"]), "labels": None,
                "splits": {"test": score["n"] + score.get("unscored", {}).get("count", 0)},
                "unscored": score.get("unscored"),
                "chat_template": score.get("chat_template"),
                "limit": score.get("limit"),
                "lm_eval_task": score.get("lm_eval_task"),
                "partial": score.get("partial"),
            }
    commit, dirty = git_state(root)
    # the run window covers every timed job that fed the summary: predictions, lm-eval runs, training
    trainings = [read_json(Path(d) / TRAINING_RECORD) for d in (adapter_records or {}).values()]
    starts = [s["timing"]["started_at"] for s in scores] + [t["started_at"] for t in trainings if t.get("started_at")]
    ends = [s["timing"]["finished_at"] for s in scores] + [t["finished_at"] for t in trainings if t.get("finished_at")]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary = {
        "schema_version": 1,
        "suite": suite,
        "cells": cells,
        "tasks": task_info,
        "provenance": {
            "git_commit": commit, "git_dirty": dirty,
            "tunebench_version": tunebench.__version__,
            "packages": package_versions(),
            "config_hash": config_hash,
            "hardware": hardware(),
            "models": {name: read_json(Path(d) / MODEL_MANIFEST) for name, d in model_dirs.items()},
            "benchmarks": {
                s["task"]: {"kind": s["kind"], "lm_eval_task": s["lm_eval_task"],
                            "chat_template": s["chat_template"], "limit": s["limit"], "shots": s["shots"],
                            "partial": bool(s.get("partial"))}
                for s in scores if s["method"] == "lm-eval"
            },
            "started_at": min(starts) if starts else now,
            "finished_at": max(ends) if ends else now,
            "summarized_at": now,
        },
    }
    systems = systems or {}
    labels = {name: list(t.labels) if t.labels else None for name, t in tasks.items()}
    summary["comparisons"] = forgetting_report(
        scores, {n: {"model": s.model, "adapter": s.adapter, "task": s.task} for n, s in systems.items()},
        labels, bootstrap or {"resamples": 1000, "confidence": 0.95, "seed": 0})
    summary["adapters"] = {name: _training_summary(record)
                           for name, record in zip(adapter_records or {}, trainings)}
    summary["gates"] = [read_json(p) for p in gate_paths or []]
    if pricing is not None:
        summary["costs"] = cost_report(scores, pricing, set(api_models or []), summary["adapters"])
        per_cell = {(r["system"], r["task"], r["prompting"]): r["cost_per_query_usd"] for r in summary["costs"]["rows"]}
        for cell in cells:
            if cell["method"] != "lm-eval":
                cell["cost_per_query_usd"] = per_cell.get((cell["system"], cell["task"], cell["prompting"]))
    summary["agreement"] = [read_json(p) for p in agreement_paths or []]
    jsonschema.validate(summary, schema)
    return summary


def cost_report(scores: list[dict], pricing: dict, api_models: set[str], adapters: dict) -> dict:
    """Latency, tokens, cost per query and TCO for every task cell (benchmarks are not priced: they
    measure forgetting, not a served workload)."""
    rows = []
    for s in scores:
        if s["method"] == "lm-eval":
            continue
        t = s["timing"]
        row = {"system": s["system"], "model": s["model"], "task": s["task"], "prompting": s["prompting"],
               "backend": s.get("backend"), "metric": s["primary_metric"],
               "value": s["metrics"][s["primary_metric"]]["value"], "n": s["n"],
               **{k: t.get(k) for k in ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s",
                                        "tokens_in_mean", "tokens_out_mean", "items_per_s", "tokens_out_per_s")}}
        row.update(cell_cost(model=s["model"], is_api=s["model"] in api_models, device=s.get("device"),
                             tokens_in_mean=t.get("tokens_in_mean"), tokens_out_mean=t.get("tokens_out_mean"),
                             items_per_s=t.get("items_per_s"), pricing=pricing,
                             training=adapters.get(s["system"])))
        rows.append(row)
    rows.sort(key=lambda r: (r["task"], r["tco_usd"] is None, r["tco_usd"] or 0.0, r["system"], r["prompting"]))
    return {"currency": pricing.get("currency", "USD"), "tco": pricing["tco"],
            "utilization": pricing["self_hosted"]["utilization"], "rows": rows}


def with_artifacts(summary: dict, *, results_dir: str | Path, plots: list[str], site_dir: str | Path) -> dict:
    """The summary plus where its plots and dashboard are, relative to the summary itself."""
    results_dir = Path(results_dir)
    return {**summary, "artifacts": {
        "markdown": "summary.md",
        "plots": [str(Path(p).relative_to(results_dir)) for p in plots],
        "site": str((Path(site_dir) / "index.html").relative_to(results_dir)),
    }}


def _plot(summary: dict, name: str, alt: str) -> list[str]:
    """The markdown embedding plots/<name> when that plot was drawn."""
    for path in summary.get("artifacts", {}).get("plots", []):
        if Path(path).name == name:
            return [f"![{alt}]({path})", ""]
    return []


def _training_summary(record: dict) -> dict:
    keep = ("task", "trainer", "device", "n_train", "n_val", "steps", "best_checkpoint", "best_eval_loss",
            "train_loss", "train_seconds", "train_tokens", "train_tokens_per_s", "peak_rss_mb", "peak_gpu_mb",
            "resumed_from", "loss_curve", "eval_curve")
    return {k: record.get(k) for k in keep}


def _fmt(cell: dict) -> str:
    return f"{cell['value']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"


def markdown(summary: dict) -> str:
    lines = [f"# tunebench summary (suite `{summary['suite']}`)", ""]
    if summary.get("artifacts"):
        lines += [f"Dashboard: [{summary['artifacts']['site']}]({summary['artifacts']['site']}) (opens offline).", ""]
    cells = pl.DataFrame(summary["cells"]) if summary["cells"] else None
    for task, info in summary["tasks"].items():
        lines += [f"## {task}", "",
                  f"{info['type']}; primary metric **{info['primary_metric']}**; "
                  + (f"parser `{info['parser']}`; " if info.get("parser") else "") +
                  f"splits {', '.join(f'{k} {v}' for k, v in info['splits'].items())}. "
                  "Values with bootstrap confidence intervals over test items.", ""]
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
    lines += comparison_markdown(summary)
    if summary.get("comparisons"):
        lines += _plot(summary, "forgetting.png", "fine-tuned minus base, percentage points")
    lines += cost_markdown(summary)
    lines += agreement_markdown(summary)
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


def gate_markdown(summary: dict) -> list[str]:
    """Regression gates: every metric against the stored baseline, with the verdict and why."""
    lines = []
    for report in summary.get("gates", []):
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


def write_summary(summary: dict, json_path: str, md_path: str) -> None:
    write_json(json_path, summary)
    write_text(md_path, markdown(summary))
    log.info("summary: %d cells -> %s, %s", len(summary["cells"]), json_path, md_path)
