"""results/summary.json: every cell, the comparisons, gates, costs and agreement, with provenance;
validated against its schema. Data only: tunebench.report.markdown renders results/summary.md from
it.

`SummaryInputs` is everything a summary is made of, read once (`SummaryInputs.read`): the score
records, the tasks with their prepared splits, the models' manifests, the fine-tuned systems with
their training records, the gate and agreement reports, and the prices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema

import tunebench
from tunebench.compare.paired import forgetting_report, method_report
from tunebench.core.atomic import read_json, write_json, write_text
from tunebench.core.provenance import git_state, hardware, package_versions
from tunebench.core.records import BENCHMARK, SCORE_SCHEMA, ScoreRecord, read_score
from tunebench.core.schema import load_schema
from tunebench.core.spec import System, Task
from tunebench.data.models import MODEL_MANIFEST
from tunebench.report.cost import cell_cost
from tunebench.report.decision import decision_report
from tunebench.report.markdown import markdown
from tunebench.train.lora import TRAINING_RECORD

log = logging.getLogger(__name__)

CELL_TIMING = ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "tokens_in_mean", "tokens_out_mean", "items_per_s")
DEFAULT_BOOTSTRAP = {"resamples": 1000, "confidence": 0.95, "seed": 0}


@dataclass(frozen=True)
class Costs:
    """What pricing the task cells needs: the prices and which models are billed per token."""

    pricing: dict[str, Any]
    api_models: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SummaryInputs:
    suite: str
    config_hash: str
    root: Path  # the project (its git state goes into the provenance)
    schema: dict[str, Any]  # of summary.json
    scores: list[ScoreRecord]
    tasks: Mapping[str, Task]
    splits: dict[str, dict[str, int]]  # per task with a prepared split: the rows of each split
    models: dict[str, dict[str, Any]]  # per model: its folder's manifest
    systems: Mapping[str, System] = field(default_factory=dict)
    trainings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per fine-tuned system: its training record
    bootstrap: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_BOOTSTRAP))
    gates: list[dict[str, Any]] = field(default_factory=list)
    agreement: list[dict[str, Any]] = field(default_factory=list)
    costs: Costs | None = None
    decision: dict[str, Any] = field(default_factory=dict)  # config `decision`: the constraints on a pick
    leakage: list[dict[str, Any]] = field(default_factory=list)  # tunebench.compare.leakage reports

    @classmethod
    def read(cls, *, score_paths: list[str], prepared_manifests: Mapping[str, str], model_dirs: Mapping[str, str],
             tasks: Mapping[str, Task], suite: str, config_hash: str, root: str | Path,
             schema: dict[str, Any] | None = None, systems: Mapping[str, System] | None = None,
             adapter_records: Mapping[str, str] | None = None, bootstrap: dict[str, Any] | None = None,
             gate_paths: list[str] | None = None, pricing: dict[str, Any] | None = None,
             api_models: list[str] | None = None, agreement_paths: list[str] | None = None,
             decision: dict[str, Any] | None = None,
             leakage_paths: list[str] | None = None) -> SummaryInputs:
        """The inputs from their files: each mapping is keyed by name (task, model, fine-tuned
        system) to its file or folder. Every score is checked against the score schema."""
        root = Path(root)
        score_schema = load_schema(root, SCORE_SCHEMA)
        manifests = {name: read_json(path) for name, path in prepared_manifests.items()}
        tasks = {name: task.with_labels(manifests.get(name, {})) for name, task in tasks.items()}  # labels: auto
        return cls(
            suite=suite, config_hash=config_hash, root=root,
            schema=schema if schema is not None else load_schema(root, "summary.schema.json"),
            scores=[read_score(p, score_schema) for p in score_paths], tasks=tasks,
            splits={name: {k: v["rows"] for k, v in manifest["splits"].items()}
                    for name, manifest in manifests.items()},
            models={name: read_json(Path(d) / MODEL_MANIFEST) for name, d in model_dirs.items()},
            systems=systems or {},
            trainings={name: read_json(Path(d) / TRAINING_RECORD) for name, d in (adapter_records or {}).items()},
            bootstrap=bootstrap or dict(DEFAULT_BOOTSTRAP),
            gates=[read_json(p) for p in gate_paths or []],
            agreement=[read_json(p) for p in agreement_paths or []],
            costs=Costs(pricing, frozenset(api_models or [])) if pricing is not None else None,
            decision=decision or {},
            leakage=[read_json(p) for p in leakage_paths or []],
        )


def cells_from_score(score: ScoreRecord) -> list[dict[str, Any]]:
    cells = []
    for metric, stats in score.metrics.items():
        cell = {
            "system": score.system, "model": score.model, "adapter": score.adapter,
            "task": score.task, "prompting": score.prompting, "shots": score.shots,
            "metric": metric, "primary": metric == score.primary_metric,
            "value": stats["value"], "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
            "confidence": stats["confidence"], "n": score.n, "source": score.source,
            **({} if score.is_benchmark else {"method": score.method}),
            "parse_failures": score.parse_failures, "parser": score.parser,
        }
        cell.update({k: score.timing.get(k) for k in CELL_TIMING})
        if "stderr" in stats:
            cell["stderr"] = stats["stderr"]
        if "unavailable" in stats:  # value None: the outputs cannot give it (aupr without log-probs)
            cell["unavailable"] = stats["unavailable"]
        if score.is_benchmark:
            cell.update(unscored=score.unscored_count, filter=stats.get("filter"), ci_method=stats.get("ci_method"),
                        partial=bool(score.partial))
        cells.append(cell)
    return cells


def _task_info(task: Task, splits: dict[str, int]) -> dict[str, Any]:
    return {"type": task.type, "primary_metric": task.primary_metric, "metrics": list(task.metrics),
            "labels": list(task.labels) if task.labels else None, "parser": task.parser, "splits": splits}


def _benchmark_info(score: ScoreRecord) -> dict[str, Any]:
    """A benchmark has no prepared split: it is described from its score."""
    return {"type": score.task_type, "primary_metric": score.primary_metric, "metrics": list(score.metrics),
            "labels": None, "splits": {"test": score.n + score.unscored_count},
            "unscored": score.unscored if score.is_benchmark else None, "chat_template": score.chat_template,
            "limit": score.limit, "lm_eval_task": score.lm_eval_task, "partial": score.partial}


def build_summary(inputs: SummaryInputs) -> dict[str, Any]:
    scores = inputs.scores
    cells = [c for s in scores for c in cells_from_score(s)]
    cells.sort(key=lambda c: (c["task"], c["system"], c["shots"], not c["primary"], c["metric"]))
    task_info = {name: _task_info(inputs.tasks[name], splits) for name, splits in inputs.splits.items()}
    for score in scores:
        if score.task not in task_info:
            task_info[score.task] = _benchmark_info(score)
        elif not score.is_benchmark and score.n_of is not None:  # what the cells evaluate of the test split
            task_info[score.task].update(evaluated=score.n, test_of=score.n_of, labels_absent=score.labels_absent)
    commit, dirty = git_state(inputs.root)
    # the run window covers every timed job that fed the summary: predictions, lm-eval runs, training
    trainings = list(inputs.trainings.values())
    starts = [s.timing["started_at"] for s in scores] + [t["started_at"] for t in trainings if t.get("started_at")]
    ends = [s.timing["finished_at"] for s in scores] + [t["finished_at"] for t in trainings if t.get("finished_at")]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "schema_version": 1,
        "suite": inputs.suite,
        "cells": cells,
        "tasks": task_info,
        "provenance": {
            "git_commit": commit, "git_dirty": dirty,
            "tunebench_version": tunebench.__version__,
            "packages": package_versions(),
            "config_hash": inputs.config_hash,
            "hardware": hardware(),
            "models": inputs.models,
            "benchmarks": {
                s.task: {"kind": s.kind, "lm_eval_task": s.lm_eval_task, "chat_template": s.chat_template,
                         "limit": s.limit, "shots": s.shots, "partial": bool(s.partial)}
                for s in scores if s.is_benchmark
            },
            "started_at": min(starts) if starts else now,
            "finished_at": max(ends) if ends else now,
            "summarized_at": now,
        },
    }
    labels = {name: list(t.labels) if t.labels else None for name, t in inputs.tasks.items()}
    summary["comparisons"] = forgetting_report(
        [s.to_dict() for s in scores],
        # the classic baseline has no base model to have forgotten anything against
        {n: {"model": s.model, "adapter": s.adapter, "task": s.task} for n, s in inputs.systems.items()
         if not s.is_classic},
        labels, inputs.bootstrap)
    summary["methods"] = method_report([s.to_dict() for s in scores], labels, inputs.bootstrap)
    speed = {(c["system"], c["task"], c["prompting"]): c.get("items_per_s") for c in cells if c["primary"]}
    for row in summary["methods"]:
        row["items_per_s"] = speed.get((row["system"], row["task"], row["prompting"]))
        row["other_items_per_s"] = speed.get((row["system"], row["task"], row["other_prompting"]))
    summary["adapters"] = {name: _training_summary(record) for name, record in inputs.trainings.items()}
    summary["gates"] = inputs.gates
    if inputs.costs is not None:
        summary["costs"] = cost_report(scores, inputs.costs, summary["adapters"])
        per_cell = {(r["system"], r["task"], r["prompting"]): r["cost_per_query_usd"] for r in summary["costs"]["rows"]}
        for cell in cells:
            if cell["source"] != BENCHMARK:
                cell["cost_per_query_usd"] = per_cell.get((cell["system"], cell["task"], cell["prompting"]))
    summary["decision"] = decision_report([s.to_dict() for s in scores if not s.is_benchmark], cells,
                                          inputs.decision, costs=summary.get("costs"), labels=labels,
                                          bootstrap=inputs.bootstrap)
    summary["agreement"] = inputs.agreement
    summary["errors"] = error_rows(scores)
    if inputs.leakage:
        summary["leakage"] = leakage_rows(inputs.leakage, inputs.systems)
    jsonschema.validate(summary, inputs.schema)
    return summary


def leakage_rows(reports: list[dict[str, Any]], systems: Mapping[str, System]) -> list[dict[str, Any]]:
    """Per (training set, evaluation set): the overlap counts, beside the fine-tuned systems trained on
    that set (a task's own train split, `<task>-full`, also feeds every system's in-context examples)."""
    rows = []
    for r in reports:
        trained = sorted(n for n, s in systems.items() if s.adapter == r["train_set"])
        counts = r.get("counts") or {}
        rows.append({"train_set": r["train_set"], "systems": trained, "eval_set": r["eval_set"],
                     "eval_kind": r["eval_kind"], "checked": r["checked"], "n": r["n"],
                     "exact": counts.get("exact"), "ngram": counts.get("ngram"), "touched_share": r["touched_share"],
                     "ids": [it["id"] for it in r["items"]][:50], "train_sha256": r["train_sha256"],
                     "note": r.get("note")})
    return sorted(rows, key=lambda r: (r["train_set"], r["eval_set"]))


def error_rows(scores: list[ScoreRecord]) -> list[dict[str, Any]]:
    """Per task cell: how many items were wrong, by error class, and the top confusions."""
    rows = [{"system": s.system, "task": s.task, "prompting": s.prompting, "method": s.method, "n": s.n,
             "wrong": sum(s.errors.values()), "errors": s.errors, "confusions": s.confusions[:5]}
            for s in scores if not s.is_benchmark]
    return sorted(rows, key=lambda r: (r["task"], r["system"], r["prompting"]))


def cost_report(scores: list[ScoreRecord], costs: Costs, adapters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Latency, tokens, cost per query and TCO for every task cell (benchmarks are not priced: they
    measure forgetting, not a served workload)."""
    pricing = costs.pricing
    rows = []
    for s in scores:
        if s.is_benchmark:
            continue
        t = s.timing
        row = {"system": s.system, "model": s.model, "task": s.task, "prompting": s.prompting,
               "backend": s.backend, "metric": s.primary_metric,
               "value": s.metrics[s.primary_metric]["value"], "n": s.n,
               **{k: t.get(k) for k in ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s",
                                        "tokens_in_mean", "tokens_out_mean", "items_per_s", "tokens_out_per_s")}}
        row.update(cell_cost(model=s.model, is_api=s.model in costs.api_models, device=s.device,
                             tokens_in_mean=t.get("tokens_in_mean"), tokens_out_mean=t.get("tokens_out_mean"),
                             items_per_s=t.get("items_per_s"), pricing=pricing,
                             training=adapters.get(s.system), backend=s.backend))
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


def _training_summary(record: dict[str, Any]) -> dict[str, Any]:
    keep = ("task", "trainer", "device", "n_train", "n_val", "steps", "best_checkpoint", "best_eval_loss",
            "train_loss", "train_seconds", "train_tokens", "train_tokens_per_s", "peak_rss_mb", "peak_gpu_mb",
            "resumed_from", "loss_curve", "eval_curve")
    return {k: record.get(k) for k in keep}


def write_summary(summary: dict, json_path: str, md_path: str) -> None:
    write_json(json_path, summary)
    write_text(md_path, markdown(summary))
    log.info("summary: %d cells -> %s, %s", len(summary["cells"]), json_path, md_path)
