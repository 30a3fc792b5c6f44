"""The demo's lm-eval benchmarks through lm-eval's `hf` model vs `tunebench-hf`, in one process.

    python perf/benchmarks_vs_hf.py [--suite demo] [--threads 1] [--model-dir DIR] [--limit N]
                                    [--out perf/results/benchmarks.json]

For each benchmark of the suite (the demo: ifbench and humaneval, at their configured limit and
max_gen_toks), lm-eval's `simple_evaluate` runs the same task twice on one loaded model, as the
workflow's worker runs it (chat template, log_samples, bootstrap_iters 100000): once with HFLM's own
generate_until (`hf`), once with tunebench's (`tunebench-hf`, tunebench.benchmarks.lm_model), in
alternating order. Reported per benchmark: the wall time of each run and of its generate_until
alone (the ratio is the speedup), the rest of the run (building requests, scoring: humaneval runs
each completion in the sandbox), whether every response and metric is identical, and the one-off
costs of a job (importing lm-eval, loading the model), so what dominates a demo job is on record: among them lm-eval's default TaskManager, which indexes
every task file lm-eval ships on each simple_evaluate, against the worker's (include_defaults=False),
timed once on the first benchmark with fixed answers.

Speeds are ratios between peers measured in this run, never absolute timings across machines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_model(model: str, cores: int) -> Path:
    """The materialized model comes from the workflow's own rule."""
    target = ROOT / "resources" / "models" / model / "model.safetensors"
    if not target.exists():
        print(f"building {target.relative_to(ROOT)} with snakemake", flush=True)
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), str(target.parent.relative_to(ROOT))],
                       cwd=ROOT, check=True)
    return target.parent


def evaluate(lm, task, spec: dict, limit, manager):
    import lm_eval

    return lm_eval.simple_evaluate(model=lm, tasks=[task], limit=limit, log_samples=True,
                                   apply_chat_template=spec["chat_template"], batch_size=spec["batch_size"],
                                   device="cpu", bootstrap_iters=100000, task_manager=manager)


def summary(results) -> tuple[list, list, dict]:
    """Per document (in order): the prompt and the response; and the metrics."""
    (name,) = results["samples"]
    samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
    metrics = {k: v for k, v in results["results"][name].items() if k != "alias"}
    return [s["arguments"] for s in samples], [s["resps"][0][0] for s in samples], metrics


def task_index_cost(lm, task, spec: dict, limit) -> dict:
    """simple_evaluate with lm-eval's default TaskManager (it indexes every task file lm-eval ships)
    vs the worker's (include_defaults=False, for a task given as its config), on the same task with
    fixed answers (no generation): the seconds of each, and whether prompts and metrics agree."""
    from lm_eval.tasks import TaskManager

    fixed = lambda requests, *a, **k: ["def f():\n    return 1\n```" for _ in requests]  # noqa: E731
    lm.generate_until = fixed
    out = {}
    try:
        for label, make in (("default_index", TaskManager), ("no_default_index", lambda: TaskManager(include_defaults=False))):
            t0 = time.perf_counter()
            out[label] = (evaluate(lm, task, spec, limit, make()), time.perf_counter() - t0)
    finally:
        del lm.generate_until
    a, b = summary(out["default_index"][0]), summary(out["no_default_index"][0])
    return {"default_index_s": round(out["default_index"][1], 2),
            "no_default_index_s": round(out["no_default_index"][1], 2),
            "saved_s": round(out["default_index"][1] - out["no_default_index"][1], 2),
            "same_prompts_and_metrics": a == b}


def run_once(lm, generate_until, task, spec: dict, limit) -> dict:
    """One simple_evaluate as the worker makes it, with `generate_until` answering; its responses,
    metrics and timings."""
    from lm_eval.tasks import TaskManager

    spent = {"generate_s": 0.0, "requests": 0}

    def timed(requests, *args, **kwargs):
        t0 = time.perf_counter()
        out = generate_until(requests, *args, **kwargs)
        spent["generate_s"] += time.perf_counter() - t0
        spent["requests"] += len(requests)
        return out

    lm.generate_until = timed
    t0 = time.perf_counter()
    try:
        results = evaluate(lm, task, spec, limit, TaskManager(include_defaults=False))
    finally:
        del lm.generate_until
    seconds = time.perf_counter() - t0
    _, responses, metrics = summary(results)
    return {"seconds": round(seconds, 2), "generate_s": round(spent["generate_s"], 2),
            "rest_s": round(seconds - spent["generate_s"], 2), "requests": spent["requests"],
            "responses": responses, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="demo")
    parser.add_argument("--threads", type=int, default=None, help="default: the config's threads.lm_eval")
    parser.add_argument("--model-dir", default=None, help="default: the suite's first model, materialized")
    parser.add_argument("--limit", type=int, default=None, help="documents per benchmark (default: the suite's)")
    parser.add_argument("--out", default=str(ROOT / "perf" / "results" / "benchmarks.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the worker: before torch is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from tunebench.config.loader import load_project_from_file

    project = load_project_from_file(ROOT, overrides={"suite": args.suite})
    threads = args.threads or project.config["threads"]["lm_eval"]
    model = next(iter(project.models.values()))  # the suite's first model (the demo's only one)
    model_dir = Path(args.model_dir) if args.model_dir else ensure_model(model.name, threads)

    t0 = time.perf_counter()
    import lm_eval  # noqa: F401
    import torch
    from lm_eval.models.huggingface import HFLM

    from tunebench.benchmarks.lm_model import TunebenchHFLM
    import_s = time.perf_counter() - t0
    torch.set_num_threads(threads)

    from tunebench.benchmarks.tasks import build_task
    from tunebench.core.atomic import write_json
    from tunebench.core.layout import NLTK

    names = list(project.suite.get("benchmarks") or [])
    first = project.benchmarks[names[0]]
    t0 = time.perf_counter()
    lm = TunebenchHFLM(pretrained=str(model_dir), dtype="float32", device="cpu", batch_size=first["batch_size"])
    load_s = time.perf_counter() - t0
    paths = {"hf": lambda requests, *a, **k: HFLM.generate_until(lm, requests, *a, **k),
             "tunebench-hf": lm.generate_until}
    out: dict = {
        "what": "the suite's lm-eval benchmarks: lm-eval's hf generate_until vs tunebench-hf's, same loaded "
                "model, task, threads and batch size, in one process",
        "suite": args.suite, "model": model.name, "threads": threads,
        "host": {"cpus": os.cpu_count(), "torch": torch.__version__, "lm_eval": lm_eval.__version__,
                 "python": sys.version.split()[0]},
        "job_one_off_s": {"import_lm_eval_torch": round(import_s, 2), "load_model": round(load_s, 2)},
        "benchmarks": {},
    }
    for number, name in enumerate(names):
        spec = dict(project.benchmarks[name])
        cap = project.suite.get("benchmark_max_gen_toks")
        if cap:
            spec["max_gen_toks"] = min(cap, spec["max_gen_toks"])
        limit = args.limit or project.benchmark_limit(name)
        lm.batch_size_per_gpu = spec["batch_size"]
        order = ["hf", "tunebench-hf"] if number % 2 == 0 else ["tunebench-hf", "hf"]  # drift hits both
        runs = {}
        if number == 0:  # a job's cost that does not depend on the benchmark: measured once
            print(f"{name}: lm-eval's task index (fixed answers, no generation)", flush=True)
            out["task_index"] = task_index_cost(lm, build_task(name, spec, nltk_dir=NLTK, sandbox={}), spec, limit)
            print(f"  {out['task_index']}", flush=True)
        for path in order:
            print(f"{name}: {path} (limit {limit}, max_gen_toks {spec['max_gen_toks']})", flush=True)
            task = build_task(name, spec, nltk_dir=NLTK, sandbox={})
            runs[path] = run_once(lm, paths[path], task, spec, limit)
            print(f"  {runs[path]['seconds']} s, of which generate_until {runs[path]['generate_s']} s", flush=True)
        hf, ours = runs["hf"], runs["tunebench-hf"]
        same = [a == b for a, b in zip(hf["responses"], ours["responses"])]
        out["benchmarks"][name] = {
            "limit": limit, "max_gen_toks": spec["max_gen_toks"], "batch_size": spec["batch_size"],
            "order": order,
            "hf": {k: hf[k] for k in ("seconds", "generate_s", "rest_s", "requests", "metrics")},
            "tunebench_hf": {k: ours[k] for k in ("seconds", "generate_s", "rest_s", "requests", "metrics")},
            "generate_speedup": round(hf["generate_s"] / max(ours["generate_s"], 1e-9), 2),
            "run_speedup": round(hf["seconds"] / max(ours["seconds"], 1e-9), 2),
            "identical_responses": round(sum(same) / max(len(same), 1), 4),
            "identical_metrics": hf["metrics"] == ours["metrics"],
            "differing_docs": [i for i, s in enumerate(same) if not s],
        }
    out["requests_answered_by"] = dict(lm.generated)  # tunebench-hf's path vs its fallback to HFLM
    total = {p: sum(b[p]["seconds"] for b in out["benchmarks"].values()) for p in ("hf", "tunebench_hf")}
    gen = {p: sum(b[p]["generate_s"] for b in out["benchmarks"].values()) for p in ("hf", "tunebench_hf")}
    out["totals"] = {"seconds": {p: round(v, 2) for p, v in total.items()},
                     "generate_s": {p: round(v, 2) for p, v in gen.items()},
                     "generate_speedup": round(gen["hf"] / max(gen["tunebench_hf"], 1e-9), 2),
                     "run_speedup": round(total["hf"] / max(total["tunebench_hf"], 1e-9), 2)}
    write_json(args.out, out)
    print(f"wrote {args.out}: generate_until {out['totals']['generate_speedup']}x, "
          f"whole runs {out['totals']['run_speedup']}x; identical responses "
          f"{[b['identical_responses'] for b in out['benchmarks'].values()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
