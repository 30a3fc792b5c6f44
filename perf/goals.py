"""Every speed and memory goal in one table, read from the perf scripts' results (perf/results/*.json):
the measured value, the goal, whether it is met, and the result file that says why where it is not.

    python perf/goals.py            # prints the table, writes perf/results/goals.json

A goal whose script has not run says "not measured"; nothing here measures anything itself, so the
table is exactly as current as the result files it reads (each row names its file and the load
average or note that file recorded, where it recorded one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _row(goal: str, value, target: str, met: bool | None, source: str, note: str = "") -> dict:
    return {"goal": goal, "value": value, "target": target, "met": met, "source": source, "note": note}


def many_labels() -> list[dict]:
    data = _load("many_labels.json")
    if data is None:
        return [_row("many labels: best method vs generation", None, ">= 1x", None, "many_labels.json")]
    rows = []
    for name, task in data["tasks"].items():
        methods = task["methods"]
        full = methods["loglik_full"]["accuracy"]
        ok = {m: v for m, v in methods.items() if m != "generate" and v["parse_failures"] == 0
              and v["accuracy"] >= full - 0.01}
        best = max(ok, key=lambda m: ok[m]["vs_generate"], default=None)
        speed = ok[best]["vs_generate"] if best else None
        rows.append(_row(f"{name}: best method at full loglik's accuracy (-1 pp), 0 parse failures, vs generate",
                         f"{speed}x ({best})" if best else None, ">= 1x", bool(speed and speed >= 1),
                         "many_labels.json"))
        rows.append(_row(f"{name}: trie loglik picks full loglik's label", task["trie_same_choice"], ">= 0.995",
                         task["trie_same_choice"] >= 0.995, "many_labels.json"))
    return rows


def generation() -> list[dict]:
    # a --generate-only run (perf/predict_vs_lmeval.py --generate-only --out perf/results/predict_generate.json)
    # is newer than the full run's generation rows whenever it exists
    data = _load("predict_generate.json") or _load("predict.json")
    if data is None:
        return [_row("generation vs lm-eval hf", None, ">= 3x", None, "predict.json")]
    rows = []
    note = data.get("note", "")
    for name, cond in data["conditions"].items():
        gen = cond["generate"]
        same = gen.get("same_answer_rate")
        met = bool(gen.get("speedup", 0) >= 3 and same == 1.0)
        work = gen.get("work")
        limit = "" if met or not work else (
            f"; limit: lm-eval computes {work['lm_eval_hf']['tokens_computed']} token positions in "
            f"{work['lm_eval_hf']['forward_passes']} passes, tunebench {work['tunebench']['tokens_computed']} in "
            f"{work['tunebench']['forward_passes']} ({gen['tokens_computed_ratio']}x fewer): the compute-bound prefill "
            f"of each item's own prompt tokens bounds the ratio")
        rows.append(_row(f"{name}: generation vs lm-eval hf (wall; CPU s ratio {gen.get('speedup_cpu')}), "
                         f"same parsed answers {same}", gen.get("speedup"), ">= 3x, 100 % same",
                         met, "predict*.json", note + limit))
    demo_run = _load("demo.json") or {}
    noop = ({"seconds": demo_run["noop_rerun_s"]} if demo_run.get("noop_rerun_s") is not None
            else (_load("predict.json") or {}).get("noop_rerun"))
    rows.append(_row("no-op rerun of the demo (s)", noop and noop["seconds"], "<= 2 s",
                     None if noop is None else noop["seconds"] <= 2,
                     "demo.json" if demo_run.get("noop_rerun_s") is not None else "predict.json"))
    return rows


def benchmarks() -> list[dict]:
    data = _load("benchmarks.json")
    if data is None:
        return [_row("benchmarks: tunebench-hf vs lm-eval hf", None, "> 1x, identical", None, "benchmarks.json")]
    rows = [_row(f"{name}: lm-eval job, tunebench-hf vs hf, identical responses {b['identical_responses']}",
                 b["run_speedup"], "> 1x, identical", b["run_speedup"] > 1 and b["identical_responses"] == 1.0,
                 "benchmarks.json") for name, b in data["benchmarks"].items()]
    index = data.get("task_index", {})
    if index:
        rows.append(_row("benchmark job: lm-eval task index (s), default vs skipped",
                         f"{index['default_index_s']} -> {index['no_default_index_s']}", "smaller", True,
                         "benchmarks.json"))
    return rows


def scale() -> list[dict]:
    rows = []
    dag = _load("dag_scale.json")
    rows.append(_row(f"snakemake -n, {dag['jobs'] if dag else '?'} jobs (wall s; CPU s "
                     f"{dag['dry_run']['cpu_s'] if dag else '?'})", dag and dag["dry_run"]["seconds"], "<= 10 s",
                     None if dag is None else dag["dry_run"]["seconds"] <= 10, "dag_scale.json",
                     "" if dag is None else f"load average {dag.get('load_average')}" + (
                         "" if dag["dry_run"]["seconds"] <= 10 else
                         f"; limit: Snakemake's own work per job, {1000 * dag['dry_run']['cpu_s'] / dag['jobs']:.2f} ms "
                         "CPU each (the workflow's input/params functions are ~1.5 % of a profile: "
                         "perf/dag_scale.py --profile)")))
    one_m = _load("scoring_1m.json")
    rows.append(_row("1M predictions scored + summarised (s)", one_m and one_m.get("total_s"), "<= 20 s, <= 2 GB",
                     None if one_m is None else one_m.get("verdict") == "PASS", "scoring_1m.json"))
    return rows


def training() -> list[dict]:
    data = _load("train_memory.json")
    target = (data or {}).get("target") or {}
    return [_row("LoRA, 128 x ~600 tokens: peak RSS (MB)", target.get("peak_rss_mb"), "<= 4096 MB",
                 target.get("meets_goal"), "train_memory.json",
                 f"old path ~{target.get('old_path_peak_mb_extrapolated')} MB (extrapolated); estimate off by "
                 f"{target.get('estimate_error_pct')} %" if target else "")]


def demo() -> list[dict]:
    data = _load("demo.json")
    return [_row("make demo on a fresh clone, install included (min)", data and data["minutes"], "<= 8 min",
                 None if data is None else data["minutes"] <= 8, "demo.json", (data or {}).get("note", ""))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "goals.json"))
    args = parser.parse_args(argv)
    rows = many_labels() + generation() + benchmarks() + scale() + training() + demo()
    width = max(len(r["goal"]) for r in rows)
    for r in rows:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[r["met"]]
        print(f"{r['goal']:<{width}}  {str(r['value']):>16}  {r['target']:<18} {verdict:<12} {r['source']}")
    Path(args.out).write_text(json.dumps({"goals": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
