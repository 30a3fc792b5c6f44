"""The workflow's own scale: `snakemake -n` of a 20 models x 12 tasks x 4 conditions + 10 benchmarks
grid (goal: <= 10 s), and the parse of the project with and without its load cache.

    python perf/dag_scale.py [--peer HEAD] [--profile] [--dir /tmp/tunebench-dag-scale] [--out perf/results/dag_scale.json]

The grid is a scratch copy of the project (no data, results or venv) with 20 model files (the
embedded model's package source, so every model's weights rule, adapters and benchmark runs are in
the DAG), 12 tasks (8 generated, 4 local JSONL files of 400 rows), the conditions 0-shot, 5-shot and
LoRA adapters on 64 and 128 training examples, and 10 benchmarks (the 6 configured + 4 local JSONL
ones), chosen by a --configfile of its own suite `scale`. Every timing is a fresh `snakemake`
process, with its wall time and its CPU time (user + system: on shared cores the number to compare).
The goal is for the plain `snakemake -n` users type (every job's summary printed; here into a pipe,
a terminal costs more): it is timed, and so are `-n --quiet rules` (the table of jobs per rule only)
and `-n --quiet` (nothing per job), to show what printing costs.
`--peer REV` times the same grid with the Snakefile and rules/*.smk as of git REV, back to back; `--profile`
writes a cProfile of one dry run (perf/results/dag_scale.prof), prints its top functions and splits
its time into the phases of Snakemake's dry run (profile_phases: shares of the profiled run, which
cProfile slows about 2.5x, evenly enough for shares).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 10.0
N_MODELS, N_GENERATED, N_LOCAL, N_LOCAL_BENCH = 20, 8, 4, 4
TRAIN_SIZES = [64, 128]
SKIP = {".git", ".venv", "data", "resources", "results", "logs", ".snakemake", ".pytest_cache", ".ruff_cache",
        "__pycache__", "node_modules", "build"}
LABELS = ["billing", "refund", "cancellation", "shipping_delay", "damaged_item", "wrong_item", "login_problem",
          "address_change", "product_question", "technical_issue"]


def _write_yaml(path: Path, doc: dict) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def build(dest: Path) -> Path:
    """The scratch project and its config file (returned)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    if (ROOT / "site/node_modules").is_dir():
        (dest / "site/node_modules").symlink_to(ROOT / "site/node_modules", target_is_directory=True)
    base_model = yaml.safe_load((ROOT / "configs/models/smollm2-135m-instruct.yaml").read_text())
    models = [f"scale-m{i:02d}" for i in range(N_MODELS)]
    for name in models:
        _write_yaml(dest / "configs/models" / f"{name}.yaml", {**base_model, "name": name})
    routing = yaml.safe_load((ROOT / "configs/tasks/ticket_routing.yaml").read_text())
    product = yaml.safe_load((ROOT / "configs/tasks/ticket_product.yaml").read_text())
    tasks = []
    for i in range(N_GENERATED):
        doc = dict(routing if i % 2 == 0 else product)
        name = f"scale-gen{i:02d}"
        doc.update(name=name, source={**doc["source"], "params": {"n_rows": 600, "seed": 100 + i}},
                   expected_rows=600, split={k: v for k, v in doc["split"].items() if k != "decontaminate_against"})
        _write_yaml(dest / "configs/tasks" / f"{name}.yaml", doc)
        tasks.append(name)
    data = dest / "scale-data"
    data.mkdir()
    for i in range(N_LOCAL):
        name = f"scale-local{i:02d}"
        rows = [{"id": f"r{j}", "text": f"ticket {j} of set {i}: my order number {j * 7 + i} has a problem",
                 "intent": LABELS[(j * 3 + i) % len(LABELS)]} for j in range(400)]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        doc = {k: v for k, v in routing.items() if k not in ("expected_rows", "description")}
        doc.update(name=name, source={"kind": "local", "path": f"scale-data/{name}.jsonl"},
                   split={"val": 0.1, "test": 0.2, "seed": 7, "stratify": True})
        _write_yaml(dest / "configs/tasks" / f"{name}.yaml", doc)
        tasks.append(name)
    benchmarks = ["ifbench", "humaneval", "ifeval", "gsm8k", "hellaswag", "mmlu"]
    for i in range(N_LOCAL_BENCH):
        name = f"scale-quiz{i:02d}"
        rows = [{"question": f"quiz {i} question {j}: which is larger?", "options": [str(j), str(j + 1)],
                 "answer": 1} for j in range(50)]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        _write_yaml(dest / "configs/benchmarks" / f"{name}.yaml", {
            "name": name, "kind": "local", "path": f"scale-data/{name}.jsonl", "output_type": "multiple_choice",
            "fields": {"input": "question", "choices": "options", "target": "answer"}})
        benchmarks.append(name)
    config = {
        "benchmarks": benchmarks,
        "suite": "scale",
        "suites": {"scale": {
            "description": "perf/dag_scale.py: 20 models x 12 tasks x 4 conditions + 10 benchmarks",
            "results_dir": "results/scale", "models": models, "tasks": tasks,
            "finetune": {"tasks": tasks, "training": "cpu-lora"}, "train_sizes": TRAIN_SIZES,
            "max_eval_items": 50, "benchmarks": benchmarks, "benchmark_limit": 5}},
    }
    path = dest / "scale.yaml"
    _write_yaml(path, config)
    return path


def snakemake(dest: Path, args: list[str], profile: Path | None = None) -> dict:
    """One fresh `snakemake` process in `dest`: its wall time, exit status and output."""
    exe = [str(ROOT / ".venv/bin/snakemake")]
    if profile is not None:
        exe = [sys.executable, "-m", "cProfile", "-o", str(profile), exe[0]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([*exe, *args], cwd=dest, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "stdout": out.stdout, "stderr": out.stderr}


def job_count(text: str) -> int:
    """The dry run's job total (Snakemake's table ends with `total  N`)."""
    found = re.findall(r"^total\s+(\d+)", text, flags=re.M)
    if not found:
        raise SystemExit("no job table in the dry run's output")
    return int(found[-1])


def clear_cache(dest: Path) -> None:
    for folder in (dest / ".snakemake" / "tunebench",):
        shutil.rmtree(folder, ignore_errors=True)


def top_functions(profile: Path, n: int = 25) -> list[dict]:
    import pstats

    stats = pstats.Stats(str(profile))
    rows = []
    for (file, line, func), (_cc, calls, _tt, cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}:{func}", "calls": calls, "cumulative_s": round(cum, 3),
                     "own_s": round(_tt, 3)})
    return sorted(rows, key=lambda r: -r["own_s"])[:n]


# Snakemake 9's dry run, phase by phase: (label, file, function); a function's largest cumulative
# time counts (update_needrun is both the pass over the DAG and the per-job step inside it)
PHASES = [
    ("DAG: jobs from files (input/output functions, producer matching)", "snakemake/dag.py", "update"),
    ("DAG: which jobs need to run (mtimes, metadata)", "snakemake/dag.py", "update_needrun"),
    ("DAG: conda env specs (params evaluated here first)", "snakemake/dag.py", "update_conda_envs"),
    ("DAG: directory outputs check", "snakemake/dag.py", "check_directory_outputs"),
    ("DAG: postprocess (per-job script check, job checks)", "snakemake/dag.py", "postprocess"),
    ("dry run: the scheduler's pass (job summaries, resources)", "snakemake/scheduling/job_scheduler.py",
     "schedule"),
]


def profile_phases(profile: Path) -> dict:
    """Seconds of the profiled run in each phase, and each phase's share of it."""
    import pstats

    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    total = max(v[3] for v in stats.values())
    out = {"profiled_total_s": round(total, 2)}
    for label, file, func in PHASES:
        cums = [v[3] for (f, _line, name), v in stats.items() if f.endswith(file) and name == func]
        seconds = max(cums, default=0.0)
        out[label] = {"seconds": round(seconds, 2), "share": round(seconds / total, 3)}
    # the workflow's own functions as Snakemake calls them per job (input, params, resources, conda)
    own = sum(c[3] for (f, _l, _n), v in stats.items() if f.endswith(".smk")
              for (cf, _cl, cn), c in v[4].items() if cf.endswith("snakemake/rules.py") and cn == "apply_func")
    out["the workflow's own input/params/resources functions (rules/*.smk)"] = {
        "seconds": round(own, 2), "share": round(own / total, 3)}
    return out


def peer_project(dest: Path, peer: Path, rev: str) -> None:
    """`dest` with the Snakefile and rules/*.smk as of git `rev` (the peer: the same grid, the old
    workflow; tunebench's package is the installed one, shared by both)."""
    if peer.exists():
        shutil.rmtree(peer)
    shutil.copytree(dest, peer, symlinks=True, ignore=lambda d, names: [n for n in names if n == ".snakemake"])
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "rules/"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in ["Snakefile", *(n for n in names if n.endswith(".smk"))]:
        old = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout
        (peer / name).write_text(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tunebench-dag-scale"))
    parser.add_argument("--out", type=Path, default=ROOT / "perf/results/dag_scale.json")
    parser.add_argument("--profile", action="store_true", help="also a cProfile of one dry run")
    parser.add_argument("--peer", default=None, metavar="GIT_REV",
                        help="also time the Snakefile and rules/*.smk of this revision on the same grid, back to back")
    args = parser.parse_args()

    configfile = build(args.dir)
    dry = ["-n", "--configfile", str(configfile), "--cores", "2"]  # the goal: what users type
    quiet_rules = ["-n", "--quiet", "rules", "--configfile", str(configfile), "--cores", "2"]
    quiet = ["-n", "--quiet", "--configfile", str(configfile), "--cores", "2"]
    listing = ["--list-rules", "--configfile", str(configfile)]
    clear_cache(args.dir)
    parse_cold = snakemake(args.dir, listing)  # the parse alone (no DAG): the project load, then cached
    parse_warm = snakemake(args.dir, listing)
    dry_run = snakemake(args.dir, dry)
    jobs = job_count(dry_run["stdout"] + dry_run["stderr"])
    dry_quiet_rules = snakemake(args.dir, quiet_rules)
    dry_quiet = snakemake(args.dir, quiet)
    result: dict = {
        "grid": {"models": N_MODELS, "tasks": N_GENERATED + N_LOCAL, "conditions": ["0shot", "5shot",
                 *(f"lora-{n}" for n in TRAIN_SIZES)], "benchmarks": 6 + N_LOCAL_BENCH},
        "jobs": jobs,
        "dry_run": {k: dry_run[k] for k in ("seconds", "cpu_s")},
        "dry_run_output_mb": round(len(dry_run["stdout"] + dry_run["stderr"]) / 1e6, 1),
        "dry_run_quiet_rules": {k: dry_quiet_rules[k] for k in ("seconds", "cpu_s")},
        "dry_run_quiet": {k: dry_quiet[k] for k in ("seconds", "cpu_s")},
        "parse": {"no_cache": {k: parse_cold[k] for k in ("seconds", "cpu_s")},
                  "cached": {k: parse_warm[k] for k in ("seconds", "cpu_s")}},
        "goal_s": GOAL_S,
        "meets_goal": dry_run["seconds"] <= GOAL_S,
        "load_average": os.getloadavg(),
        "host": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    rows = [(f"snakemake -n, {jobs} jobs (project load cached)", dry_run),
            ("snakemake -n --quiet rules", dry_quiet_rules), ("snakemake -n --quiet", dry_quiet),
            ("parse only (--list-rules), no cache", parse_cold), ("parse only (--list-rules), cached", parse_warm)]
    if args.peer:
        peer = args.dir.with_name(args.dir.name + "-peer")
        peer_project(args.dir, peer, args.peer)
        peer_parse = snakemake(peer, listing)
        peer_dry = snakemake(peer, dry)
        result["peer"] = {"rev": args.peer, "dry_run": {k: peer_dry[k] for k in ("seconds", "cpu_s")},
                          "parse": {k: peer_parse[k] for k in ("seconds", "cpu_s")},
                          "dry_run_cpu_ratio": round(peer_dry["cpu_s"] / dry_run["cpu_s"], 2),
                          "parse_cpu_ratio": round(peer_parse["cpu_s"] / parse_warm["cpu_s"], 2)}
        rows += [(f"peer {args.peer}: snakemake -n", peer_dry), (f"peer {args.peer}: parse only", peer_parse)]
        if args.profile:  # the same phases, before
            peer_prof = args.out.with_name(args.out.stem + "-peer.prof")
            snakemake(peer, dry, profile=peer_prof)
            result["peer"]["profile_phases"] = profile_phases(peer_prof)
            peer_prof.unlink()
        shutil.rmtree(peer, ignore_errors=True)
    if args.profile:
        prof = args.out.with_suffix(".prof")
        snakemake(args.dir, dry, profile=prof)
        result["profile_top_own_time"] = top_functions(prof)
        result["profile_phases"] = profile_phases(prof)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'measure':<52} {'wall s':>8} {'CPU s':>8}")
    for label, r in rows:
        print(f"{label:<52} {r['seconds']:>8.2f} {r['cpu_s']:>8.2f}")
    if "peer" in result:
        print(f"CPU ratio peer/now: dry run {result['peer']['dry_run_cpu_ratio']}x, "
              f"parse {result['peer']['parse_cpu_ratio']}x")
    print(f"goal: snakemake -n <= {GOAL_S:g} s wall -> {'PASS' if result['meets_goal'] else 'FAIL'} "
          f"(load average {result['load_average'][0]:.1f} on {os.cpu_count()} cores)")
    before = result.get("peer", {}).get("profile_phases", {})
    if result.get("profile_phases"):
        print(f"  profiled s (share) now{'  | peer ' + args.peer if before else ''}")
    for label, row in result.get("profile_phases", {}).items():
        if isinstance(row, dict):
            old = before.get(label)
            peer_col = f"  | {old['seconds']:>6.2f} ({old['share']:>5.1%})" if old else ""
            print(f"  {row['seconds']:>7.2f} ({row['share']:>5.1%}){peer_col}  {label}")
    for row in result.get("profile_top_own_time", [])[:15]:
        print(f"  {row['own_s']:>7.3f} own {row['cumulative_s']:>7.3f} cum {row['calls']:>8}  {row['function']}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
