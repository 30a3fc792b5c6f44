"""Scoring and summary at a million: perf/scoring_100k.py's two cells with 1,000,000 predictions
each (goal: <= 20 s in all, every stage <= 2 GB peak RSS).

    python perf/scoring_1m.py [--out perf/results/scoring_1m.json] [--baseline-src DIR]

Each stage runs in its own interpreter (its peak RSS is its own); `CPU s` is the stage's own CPU
time, the number to read on shared cores, where the wall time also counts waiting for a core (the
JSON keeps the load average at the start and the end). At this size the bootstrap of every metric
of outcome counts draws Multinomial counts instead of item positions (tunebench.scoring.metrics,
MULTINOMIAL_ABOVE): each metric's record says `bootstrap_method`.

--baseline-src: the src/ folder of another tunebench (e.g. `git archive <rev> src | tar -x -C
/tmp/old`, then /tmp/old/src): the goal stages then also run on it and on this tree alternately,
back to back on the same cells (`back_to_back` in the JSON: their CPU seconds are the comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scoring_100k  # noqa: E402

OUT = scoring_100k.ROOT / "perf" / "results" / "scoring_1m.json"
N = 1_000_000


def stage_with(src: str | None, name: str, folder: Path) -> dict:
    """One stage in a fresh interpreter, importing tunebench from `src` (None: this tree)."""
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    out = subprocess.run([sys.executable, scoring_100k.__file__, "--stage", name, "--dir", str(folder)], check=True,
                         capture_output=True, text=True, cwd=scoring_100k.ROOT, env=env)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: row[k] for k in ("stage", "n", "seconds", "cpu_s", "peak_rss_mb")}


def back_to_back(src: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="scoring_1m.") as tmp:
        folder = Path(tmp)
        scoring_100k.generate(folder, N)
        rows = []
        for name in (*scoring_100k.GOAL_CELLS, "summary"):  # old first: the summary reads the new scores
            old, new = stage_with(src, name, folder), stage_with(None, name, folder)
            rows.append({"stage": name, "baseline": old, "this_tree": new,
                         "cpu_ratio": round(old["cpu_s"] / new["cpu_s"], 2) if new["cpu_s"] else None})
            print(f"{name:<16} baseline {old['cpu_s']:>8.3f} CPU s  this tree {new['cpu_s']:>8.3f} CPU s  "
                  f"({rows[-1]['cpu_ratio']}x)")
    return {"baseline_src": src, "stages": rows, "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--baseline-src")
    args, rest = parser.parse_known_args()
    scoring_100k.main(["--n", str(N), "--goal-s", "20", "--goal-mb", "2048", "--out", args.out, *rest])
    if args.baseline_src:
        result = json.loads(Path(args.out).read_text())
        result["back_to_back"] = back_to_back(args.baseline_src)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
