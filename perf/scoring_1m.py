"""Scoring and summary at a million: perf/scoring_100k.py's two cells with 1,000,000 predictions
each (goal: <= 20 s in all, every stage <= 2 GB peak RSS).

    python perf/scoring_1m.py [--out perf/results/scoring_1m.json]

Each stage runs in its own interpreter (its peak RSS is its own); `CPU s` is the stage's own CPU
time, the number to read on shared cores, where the wall time also counts waiting for a core.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scoring_100k  # noqa: E402

if __name__ == "__main__":
    scoring_100k.main(["--n", "1000000", "--goal-s", "20", "--goal-mb", "2048",
                       "--out", str(scoring_100k.ROOT / "perf" / "results" / "scoring_1m.json"), *sys.argv[1:]])
