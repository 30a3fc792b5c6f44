"""Score one cell's predictions against the test split: metric values, bootstrap CIs, per-item
outcomes (kept for paired tests later) and latency / token statistics."""

from __future__ import annotations

import logging

import numpy as np

from tunebench.atomic import read_json, read_jsonl, write_json
from tunebench.config import Task
from tunebench.errors import DataError
from tunebench.metrics import bootstrap_ci, exact_match, token_f1
from tunebench.predict import eval_items

log = logging.getLogger(__name__)


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def score_predictions(*, task: Task, predictions_path: str, meta_path: str, test_path: str,
                      max_items: int | None, bootstrap: dict, out_path: str) -> dict:
    preds = read_jsonl(predictions_path)
    meta = read_json(meta_path)
    items = eval_items(test_path, max_items)
    by_id = {p["id"]: p for p in preds}
    missing = [it["id"] for it in items if it["id"] not in by_id]
    if missing or len(preds) != len(items):
        raise DataError(f"{len(missing)} test item(s) have no prediction (e.g. {missing[:3]}) and "
                        f"{len(preds)} predictions exist for {len(items)} items", file=predictions_path,
                        field="id", fix="delete the predictions file and rerun to regenerate it")
    targets = [it["target"] for it in items]
    parsed = [by_id[it["id"]]["parsed"] for it in items]
    cis = bootstrap_ci(targets, parsed, task.metrics, labels=task.labels,
                       resamples=bootstrap["resamples"], confidence=bootstrap["confidence"],
                       seed=bootstrap["seed"])
    per_item = []
    for it, p in zip(items, parsed):
        if task.type == "classification":
            score = float(p == it["target"])
        else:
            score = token_f1(p, it["target"]) if task.primary_metric == "token_f1" else exact_match(p, it["target"])
        per_item.append({"id": it["id"], "target": it["target"], "parsed": p, "score": round(score, 6)})
    latencies = [by_id[it["id"]]["latency_s"] for it in items]
    # an endpoint may not report usage: count what is known
    tokens_in = [t for it in items if (t := by_id[it["id"]]["tokens_in"]) is not None]
    tokens_out = [t for it in items if (t := by_id[it["id"]]["tokens_out"]) is not None]
    ttfts = [t for it in items if (t := by_id[it["id"]].get("ttft_s")) is not None]  # streamed answers only
    record = {
        "system": meta["system"], "model": meta["model"], "adapter": meta["adapter"],
        "task": task.name, "task_type": task.type, "prompting": meta["prompting"],
        "shots": meta["shots"], "method": meta["method"], "parser": task.parser,
        "backend": meta.get("backend"), "device": meta.get("device"),
        "n": len(items), "primary_metric": task.primary_metric, "metrics": cis,
        "parse_failures": sum(p is None for p in parsed),
        "items": per_item,
        "timing": {
            "latency_p50_s": _percentile(latencies, 50),
            "latency_p95_s": _percentile(latencies, 95),
            "tokens_in_mean": round(float(np.mean(tokens_in)), 2) if tokens_in else None,
            "tokens_out_mean": round(float(np.mean(tokens_out)), 2) if tokens_out else None,
            "ttft_p50_s": _percentile(ttfts, 50),
            "ttft_p95_s": _percentile(ttfts, 95),
            "items_per_s": meta.get("items_per_s"),
            "tokens_out_per_s": meta.get("tokens_out_per_s"),
            "started_at": meta["started_at"], "finished_at": meta["finished_at"],
        },
    }
    write_json(out_path, record)
    primary = cis[task.primary_metric]
    log.info("%s %s %s: %s = %.3f [%.3f, %.3f] (n=%d)", meta["system"], task.name, meta["prompting"],
             task.primary_metric, primary["value"], primary["ci_low"], primary["ci_high"], len(items))
    return record
