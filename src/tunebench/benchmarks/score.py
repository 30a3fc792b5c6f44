"""A benchmark's lm-eval files -> its score record (tunebench.core.records, source benchmark).

`score_lm_eval` reads lm-eval's results_*.json and samples_*.jsonl: per metric the value, lm-eval's
stderr, a bootstrap CI over items where the per-item values allow one (a normal interval from
lm-eval's stderr otherwise), n, the filter, and how many items were unscored and why.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from tunebench.benchmarks.tasks import TASK_TYPES, primary_metric
from tunebench.core.atomic import read_json, read_jsonl, write_json
from tunebench.core.errors import TunebenchError
from tunebench.core.records import BENCHMARK, ScoreRecord
from tunebench.scoring.metrics import ratio_bootstrap

log = logging.getLogger(__name__)


def _normal(value: float, stderr: float | None, confidence: float) -> dict:
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * (stderr or 0.0)
    return {"value": round(value, 6), "ci_low": round(max(0.0, value - half), 6),
            "ci_high": round(min(1.0, value + half), 6) if value <= 1 else round(value + half, 6),
            "stderr": stderr, "confidence": confidence, "resamples": None, "ci_method": "normal (lm-eval stderr)"}


def _per_item(samples: list[dict], metric: str, filt: str) -> tuple[np.ndarray, np.ndarray, list] | None:
    """(numerators, denominators, scored samples) when every scored item has a number or a list of
    booleans for `metric` (lists: instruction-level ratios), else None."""
    rows = [s for s in samples if s.get("filter", "none") == filt and metric in s]
    scored = [s for s in rows if s[metric] is not None]
    if not scored:
        return None
    values = [s[metric] for s in scored]
    if all(isinstance(v, bool | int | float) for v in values):
        return np.array(values, dtype=float), np.ones(len(values)), scored
    if all(isinstance(v, list) for v in values):
        return (np.array([float(sum(v)) for v in values]), np.array([float(len(v)) for v in values]), scored)
    return None


def _stderr(raw) -> float | None:
    return float(raw) if isinstance(raw, int | float) and not math.isnan(raw) else None


def score_lm_eval(*, run_dir: str, out_path: str, system: str, model: str, benchmark: str,
                  bootstrap: dict, adapter: str | None = None) -> dict:
    """lm-eval's files for one run -> its score record (source benchmark; see tunebench.core.records)."""
    run = Path(run_dir)
    meta = read_json(run / "tunebench_meta.json")
    results = read_json(sorted(run.rglob("results_*.json"))[-1])
    task = meta["lm_eval_task"]
    reported = results["results"][task]
    leaf = task in results.get("configs", {}) and task not in results.get("groups", {})
    samples = read_jsonl(sorted(run.rglob(f"samples_{task}_*.jsonl"))[-1]) if leaf else []
    metrics: dict[str, dict] = {}
    per_item: dict[str, tuple[dict[Any, tuple[float, float]], int]] = {}  # label -> (doc -> (num, den), total)
    for key, raw in reported.items():
        if "," not in key or key.split(",")[0].endswith("_stderr") or not isinstance(raw, int | float):
            continue
        metric, filt = key.split(",", 1)
        if isinstance(raw, float) and math.isnan(raw):
            continue
        label = metric if filt == "none" else f"{metric},{filt}"
        stderr = _stderr(reported.get(f"{metric}_stderr,{filt}"))
        columns = _per_item(samples, metric, filt) if leaf else None
        stats = None
        if columns is not None:
            num, den, scored = columns
            stats = ratio_bootstrap(num, den, resamples=bootstrap["resamples"], confidence=bootstrap["confidence"],
                                    seed=bootstrap["seed"])
            if abs(stats["value"] - raw) > 1e-6:  # not a mean over items (e.g. a corpus-level F1)
                log.warning("%s: %s is not a per-item mean (%.6f vs %.6f): normal interval",
                            benchmark, label, raw, stats["value"])
                stats = None
            else:
                stats["stderr"] = stderr if stderr is not None else stats["stderr"]
                total = sum(1 for s in samples if s.get("filter", "none") == filt)
                per_item[label] = ({s["doc_id"]: (float(num[i]), float(den[i])) for i, s in enumerate(scored)},
                                   total)
        if stats is None:
            stats = _normal(float(raw), stderr, bootstrap["confidence"])
        stats.update(metric=metric, filter=filt, lm_eval_value=raw)
        metrics[label] = stats
    if not metrics:
        raise TunebenchError(f"lm-eval reported no numeric metric for {task!r} in {run}",
                             fix="check the benchmark's task and metric_list")
    primary = primary_metric(meta["spec"], list(metrics))
    primary_values, n_total = per_item.get(primary, (None, None))
    # per item: the primary metric's score, and numerator/denominator of every per-item metric
    # (kept for paired comparisons, item by item, against another system)
    items = [{"id": str(doc), "score": num / den if den else 0.0,
              "values": {label: list(values[doc]) for label, (values, _) in per_item.items() if doc in values}}
             for doc, (num, den) in (primary_values or {}).items()]
    n_samples = results.get("n-samples", {}).get(task, {})
    n = len(items) if primary_values is not None else int(n_samples.get("effective", 0))
    unscored = (n_total - n) if n_total is not None else 0
    shots = results.get("n-shot", {}).get(task, 0) or 0
    spec = meta["spec"]
    record = ScoreRecord(
        source=BENCHMARK, system=system, model=model, adapter=adapter, task=benchmark, kind=spec["kind"],
        task_type=TASK_TYPES[spec["kind"]], prompting=f"{shots}shot", shots=shots,
        method=None, parser=f"lm-eval:{spec['kind']}", n=n,
        chat_template=meta["chat_template"], limit=meta["limit"], lm_eval_task=task,
        primary_metric=primary, metrics=metrics, parse_failures=0,
        unscored={"count": unscored, "reasons": sorted(set(meta["unscored"].values()))},
        partial=meta["partial"],
        items=items,
        timing={"latency_p50_s": None, "latency_p95_s": None, "tokens_in_mean": None,
                "tokens_out_mean": None, "items_per_s": round((n + unscored) / meta["seconds"], 3)
                if meta["seconds"] else None,
                "started_at": meta["started_at"], "finished_at": meta["finished_at"]},
    ).to_dict()
    write_json(out_path, record)
    return record
