"""The README's first command on a fresh clone, timed: `git clone` of this checkout's HEAD into a
scratch folder, then `make demo` there (its own virtualenv, install included), then a no-op rerun.

    python perf/demo_clock.py [--dir /tmp/tunebench-demo-clock] [--keep]

Writes perf/results/demo.json: minutes in all, the install's and the workflow's share (from the
make log's phases), the load average before and after (the goal, <= 8 min, is for a quiet 2-core
machine: a busy one says so here), and the no-op rerun's seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tunebench-demo-clock"))
    parser.add_argument("--keep", action="store_true", help="keep the clone (its results and virtualenv)")
    parser.add_argument("--out", type=Path, default=ROOT / "perf" / "results" / "demo.json")
    args = parser.parse_args(argv)
    shutil.rmtree(args.dir, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(args.dir)], check=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    install = subprocess.run(["make", "install"], cwd=args.dir, env=ENV, capture_output=True, text=True)
    t1 = time.perf_counter()
    if install.returncode:
        raise SystemExit(f"make install failed:\n{install.stderr[-3000:]}")
    demo = subprocess.run(["make", "demo"], cwd=args.dir, env=ENV, capture_output=True, text=True)
    t2 = time.perf_counter()
    if demo.returncode:
        raise SystemExit(f"make demo failed:\n{demo.stderr[-3000:]}")
    noop = subprocess.run(["make", "demo"], cwd=args.dir, env=ENV, capture_output=True, text=True)
    t3 = time.perf_counter()
    jobs = demo.stdout.count("Finished job") + demo.stderr.count("Finished job")
    result = {"what": "make demo on a fresh clone of HEAD, install included", "minutes": round((t2 - t0) / 60, 2),
              "install_s": round(t1 - t0, 1), "workflow_s": round(t2 - t1, 1), "jobs": jobs,
              "noop_rerun_s": round(t3 - t2, 2) if noop.returncode == 0 else None, "goal_minutes": 8,
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
              "note": "the goal is for a quiet 2-core machine; see the load averages"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
