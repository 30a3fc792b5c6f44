"""Compare two runs of the workflow value by value, timings and timestamps excepted.

    python tests/compare_runs.py REFERENCE_ROOT NEW_ROOT [--results results]

Used to show that a refactoring changed no prediction, score, comparison or summary value: run the
demo on the old and the new code (two checkouts), then compare. Every JSON/JSONL file under
data/prepared/ and the results folder is read on both sides; values that measure time (keys ending
in `_s` or `_at`, throughput, timing blocks) and what derives from them (the cost of a local model is
its hardware's price times its measured time), run identity (git commit, config hash) and the
files' own locations are left out. Record fields renamed on purpose are mapped (RENAMED).
Exit status 0 when everything else is equal; otherwise each difference is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

TIMING_KEYS = {"timing", "timings", "items_per_s", "tokens_per_s", "run_window", "hardware", "throughput",
               "costs", "cost", "tco", "cost_per_query_usd", "tco_usd", "git_commit", "git_dirty", "config_hash",
               "artifacts", "duration", "train_runtime", "train_samples_per_second", "train_steps_per_second",
               "log_history", "plots", "site", "date", "start_time", "end_time", "peak_rss_mb", "peak_gpu_mb",
               # lm-eval's record of the environment and of the code that scored (not a value)
               "pretty_env_info", "git_hash", "upper_git_hash", "process_results"}
# Lists that serialise a set (PEFT writes target_modules in hash order): compared as sets.
UNORDERED = {"target_modules"}
# lm-eval names its raw files by the time they were written: results_<time>.json, samples_<task>_<time>.jsonl
STAMPED = re.compile(r"_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d+(?=\.json)")
# Fields a redesign renamed on purpose: (old key, old value) -> dropped on both sides, with the new
# key that says the same thing.
RENAMED = {("method", "lm-eval"): "source"}
SKIP_DIRS = {"logs", "timings", "benchmarks", ".work", ".resume", ".cache", "site", "plots", "summary"}


def _timing_key(key: str) -> bool:
    return (key in TIMING_KEYS or key.endswith(("_s", "_at", "seconds")) or "per_s" in key
            or key.startswith("total_evaluation_time"))


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        renamed_to = {new for (key, old), new in RENAMED.items() if value.get(key) == old}
        for key, item in value.items():
            if _timing_key(key) or key in renamed_to or (isinstance(item, str) and (key, item) in RENAMED):
                continue
            if key in {new for new in RENAMED.values()} and item in ("task", "benchmark"):
                continue
            out[key] = sorted(item) if key in UNORDERED and isinstance(item, list) else normalise(item)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def load(path: Path) -> Any:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


def files(root: Path, folders: list[str]) -> dict[str, Path]:
    out = {}
    for folder in folders:
        base = root / folder
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root)
            if path.suffix not in (".json", ".jsonl") or set(rel.parts) & SKIP_DIRS:
                continue
            out[STAMPED.sub("", rel.as_posix())] = path
    return out


def diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'new' if key in b else 'reference'}")
            else:
                out += diff(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {repr(a)[:200]} != {repr(b)[:200]}"]


def _relocated(value: Any, root: Path) -> Any:
    """Absolute paths under a checkout, written as relative to it (the two runs live in two folders)."""
    text = json.dumps(value).replace(str(root.resolve()) + "/", "<root>/")
    return json.loads(text)


def compare(ref_root: Path, new_root: Path, results: str = "results") -> tuple[int, list[str]]:
    folders = ["data/prepared", results]
    ref, new = files(ref_root, folders), files(new_root, folders)
    problems = [f"{name}: only in {'new' if name in new else 'reference'}" for name in sorted(set(ref) ^ set(new))]
    for name in sorted(set(ref) & set(new)):
        a = normalise(_relocated(load(ref[name]), ref_root))
        b = normalise(_relocated(load(new[name]), new_root))
        problems += [f"{name}{d}" for d in diff(a, b)]
    return len(set(ref) & set(new)), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    compared, problems = compare(args.reference, args.new, args.results)
    for line in problems[:200]:
        print(line)
    print(f"{compared} files compared, {len(problems)} difference(s)")
    return 1 if problems or not compared else 0


if __name__ == "__main__":
    sys.exit(main())
