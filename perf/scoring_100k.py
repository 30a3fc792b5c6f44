"""Scoring and summary at scale: one 100k-prediction classification cell (10 labels) and one 100k
extraction cell, scored with the configured bootstrap, then summarised (goal: <= 5 s in all).

    python perf/scoring_100k.py [--n 100000] [--out perf/results/scoring_100k.json]

The cells are synthetic and deterministic (numpy seed 0). Every stage runs in a fresh interpreter,
so its peak RSS is its own; its time excludes the imports. Not counted in the
goal: a fine-tuned system's classification cell and the summary that pairs it with the base
(paired bootstrap over the same 100k items). The peer reads the same predictions with json per
line (tunebench.core.atomic.read_jsonl) and with polars.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 5.0
BOOTSTRAP = {"resamples": 1000, "confidence": 0.95, "seed": 0}
CELLS = {"classification": "ticket_routing", "extraction": "ticket_product", "classification_ft": "ticket_routing"}
PRODUCTS = ["wireless earbuds", "usb-c charger", "yoga mat", "water bottle", "smart watch", "blender",
            "laptop stand", "desk lamp", "running shoes", "coffee grinder", "the phone case", "none"]
SYSTEM = "synthetic-model"
GOAL_CELLS = ["classification", "extraction"]  # scored and summarised: the goal's stages
SYSTEMS = {"classification": SYSTEM, "extraction": SYSTEM, "classification_ft": f"{SYSTEM}+ticket_routing-full"}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _project():
    from tunebench.config.loader import load_project_from_file

    return load_project_from_file(ROOT)


def generate(folder: Path, n: int) -> None:
    """Test split + predictions + meta for both cells, and a prepared manifest per task."""
    import numpy as np
    import polars as pl

    from tunebench.core.atomic import write_json
    from tunebench.core.spec import System

    project = _project()
    rng = np.random.default_rng(0)
    labels = list(project.tasks["ticket_routing"].labels)
    routing = [labels[k] for k in rng.integers(0, len(labels), n)]  # both systems answer the same items
    for kind, task_name in CELLS.items():
        task = project.tasks[task_name]
        ids = [f"{kind[0]}{i:06d}" for i in range(n)]
        draw, latency = rng.random(n), np.round(rng.lognormal(-1.0, 0.5, n), 4)
        tokens_in, tokens_out = rng.integers(60, 400, n), rng.integers(1, 12, n)
        if task.labels:
            targets = routing
            other = [labels[k] for k in rng.integers(0, len(labels), n)]
            right = 0.6 if kind == "classification" else 0.65
            parsed = [t if d < right else o if d < 0.9 else None for t, o, d in zip(targets, other, draw)]
            outputs = [p or "I am not sure which team handles this." for p in parsed]
        else:
            targets = [PRODUCTS[k] for k in rng.integers(0, len(PRODUCTS), n)]
            other = [PRODUCTS[k] for k in rng.integers(0, len(PRODUCTS), n)]
            parsed = [t if d < 0.45 else f"The {t.upper()}." if d < 0.55 else t.split()[-1] if d < 0.7
                      else o if d < 0.9 else None for t, o, d in zip(targets, other, draw)]
            outputs = [p or "" for p in parsed]
        # columns written by polars: a million rows of json.dumps took minutes on shared cores
        pl.DataFrame({"id": ids, "input": [f"ticket {i} about my order" for i in ids], "target": targets}
                     ).write_ndjson(folder / f"{kind}.test.jsonl")
        pl.DataFrame({"id": ids, "prompt_hash": [f"{k:016x}" for k in range(n)], "output": outputs, "parsed": parsed,
                      "latency_s": latency, "tokens_in": tokens_in, "tokens_out": tokens_out,
                      "batch_size": np.full(n, 8)}, schema_overrides={"parsed": pl.String}
                     ).write_ndjson(folder / f"{kind}.jsonl")
        write_json(folder / f"{kind}.meta.json", {
            "system": SYSTEMS[kind], "model": SYSTEM, "adapter": System.parse(SYSTEMS[kind]).adapter, "task": task_name,
            "prompting": "0shot", "shots": 0, "shot_ids": [], "backend": "transformers", "device": "cpu",
            "method": "generate", "parser": task.parser, "n": n, "items_per_s": 10.0, "tokens_out_per_s": 60.0,
            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T03:00:00+00:00",
        })
        write_json(folder / f"{task_name}.manifest.json", {"splits": {"test": {"rows": n}}})


def stage(name: str, folder: Path) -> dict:
    """Run one stage in this (fresh) interpreter: its seconds and the process's peak RSS."""
    import numpy as np  # noqa: F401  (imported before the clock starts, like the job would)
    import polars as pl

    from tunebench.core.atomic import read_json, read_jsonl
    from tunebench.core.spec import System
    from tunebench.predict.score import score_predictions
    from tunebench.report.summary import SummaryInputs, build_summary

    project = _project()
    extra: dict = {}
    t0, c0 = time.perf_counter(), time.process_time()
    if name in CELLS:
        record = score_predictions(task=project.tasks[CELLS[name]], predictions_path=str(folder / f"{name}.jsonl"),
                                   meta_path=str(folder / f"{name}.meta.json"),
                                   test_path=str(folder / f"{name}.test.jsonl"), max_items=None,
                                   bootstrap=BOOTSTRAP, out_path=str(folder / f"{name}.score.json"))
        n = record["n"]
        extra["metrics"] = record["metrics"]
    elif name in ("summary", "summary_paired"):
        kinds = GOAL_CELLS if name == "summary" else list(CELLS)
        summary = build_summary(SummaryInputs.read(
            score_paths=[str(folder / f"{kind}.score.json") for kind in kinds],
            prepared_manifests={CELLS[kind]: str(folder / f"{CELLS[kind]}.manifest.json") for kind in kinds},
            model_dirs={}, tasks=project.tasks, suite="benchmark", config_hash="0" * 64, root=ROOT,
            schema=read_json(ROOT / "configs" / "schema" / "summary.schema.json"), bootstrap=BOOTSTRAP,
            systems={SYSTEMS[kind]: System.parse(SYSTEMS[kind]) for kind in kinds}))
        n = sum(c["n"] for c in summary["cells"] if c["primary"])
        extra["cells"] = len(summary["cells"])
        extra["comparisons"] = [{k: r[k] for k in ("metric", "base", "finetuned", "delta_pp", "ci_low_pp", "ci_high_pp",
                                                   "p_value", "n_paired")}
                                for report in summary["comparisons"] for r in report["rows"]]
    elif name == "read_json_lines":
        n = len(read_jsonl(folder / "classification.jsonl"))
    elif name == "read_polars":
        n = pl.read_ndjson(folder / "classification.jsonl").height
    else:
        raise SystemExit(f"unknown stage {name!r}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"stage": name, "n": n, "seconds": round(seconds, 3), "cpu_s": round(cpu, 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1), **extra}


def run_stage(name: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--stage", name, "--dir", str(folder)], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def host() -> dict:
    from importlib.metadata import version

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "polars": version("polars"), "numpy": version("numpy"),
            # shared cores: the wall times count waiting for a core, the CPU seconds do not
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="predictions per cell")
    parser.add_argument("--out", default=str(ROOT / "perf" / "results" / "scoring_100k.json"))
    parser.add_argument("--goal-s", type=float, default=GOAL_S, help="scoring + summary, seconds")
    parser.add_argument("--goal-mb", type=float, default=None, help="peak RSS of any goal stage, MB")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(stage(args.stage, Path(args.dir))))
        return
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="scoring_100k.") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        generate(folder, args.n)
        print(f"generated {len(CELLS)} cells x {args.n} predictions in {time.perf_counter() - t0:.1f} s ({folder})")
        stages = [run_stage(name, folder) for name in (*GOAL_CELLS, "summary")]
        extra = [run_stage(name, folder) for name in ("classification_ft", "summary_paired")]
        peer = [run_stage(name, folder) for name in ("read_json_lines", "read_polars")]
    total = round(sum(s["seconds"] for s in stages), 3)
    cpu = round(sum(s["cpu_s"] for s in stages), 3)
    peak = max(s["peak_rss_mb"] for s in stages)
    ratio = round(peer[0]["seconds"] / peer[1]["seconds"], 1) if peer[1]["seconds"] else None
    verdict = "PASS" if total <= args.goal_s and (args.goal_mb is None or peak <= args.goal_mb) else "FAIL"
    print(f"\n{'stage':<20}{'n':>9}{'seconds':>10}{'CPU s':>9}{'peak RSS MB':>14}")
    for group, rows in (("goal", stages), ("not in the goal", extra), ("peer: read predictions", peer)):
        print(f"-- {group}")
        for s in rows:
            print(f"{s['stage']:<20}{s['n']:>9}{s['seconds']:>10.3f}{s['cpu_s']:>9.3f}{s['peak_rss_mb']:>14.1f}")
    goal_mb = f", peak <= {args.goal_mb:g} MB" if args.goal_mb else ""
    print(f"\nscoring + summary: {total:.3f} s ({cpu:.3f} s CPU), peak RSS {peak:.0f} MB for 2 x {args.n} predictions "
          f"-> {verdict} (goal <= {args.goal_s:g} s{goal_mb})")
    print(f"peer: json per line {peer[0]['seconds']:.3f} s vs polars {peer[1]['seconds']:.3f} s ({ratio}x)")
    result = {"n": args.n, "bootstrap": BOOTSTRAP, "goal_s": args.goal_s, "goal_peak_mb": args.goal_mb,
              "total_s": total, "total_cpu_s": cpu, "peak_rss_mb": peak, "verdict": verdict,
              "stages": stages, "not_in_goal": extra, "peer": {"stages": peer, "json_lines_over_polars": ratio},
              "load_average_at_start": load_at_start, "host": host()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
