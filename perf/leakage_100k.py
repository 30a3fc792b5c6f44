"""The leakage check at scale: a 100k-item training file against a 10k-item test split (goal: < 30 s),
the same call the leakage_check rule makes (read both files, normalise, hash the 13-grams, match).

    python perf/leakage_100k.py [--train 100000] [--test 10000] [--out perf/results/leakage_100k.json]

The texts are synthetic and deterministic (numpy seed 0): 40-word tickets over a Zipf-distributed
20k-word vocabulary with punctuation and mixed case, 100 test items planted in the training file
verbatim and 100 with three words changed. The check must find exactly those 200; the result
records the time of each stage and the peak RSS. Generating the files is not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 30.0
WORDS_PER_ITEM = 40
PLANTED = 100  # of each kind


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(folder: Path, n_train: int, n_test: int) -> tuple[Path, Path, dict[str, str]]:
    import numpy as np

    from tunebench.core.atomic import write_jsonl

    rng = np.random.default_rng(0)
    vocab = np.array([f"word{i}" for i in range(20_000)])
    marks = np.array(["", "", "", "", ",", ".", "!", "?"])

    def texts(n: int) -> list[str]:
        ids = np.minimum(rng.zipf(1.2, size=(n, WORDS_PER_ITEM)) - 1, len(vocab) - 1)
        # a random offset per item, so that the frequent words do not make every item alike
        ids = (ids + rng.integers(0, len(vocab), size=(n, 1))) % len(vocab)
        punct = marks[rng.integers(0, len(marks), size=(n, WORDS_PER_ITEM))]
        return [" ".join(w + p for w, p in zip(vocab[row], punct[k])) for k, row in enumerate(ids)]

    test = [{"id": f"test-{i:06d}", "input": t, "target": "a"} for i, t in enumerate(texts(n_test))]
    train = [{"id": f"train-{i:06d}", "input": t, "target": "a"} for i, t in enumerate(texts(n_train))]
    expected = {}
    for k in range(PLANTED):
        exact, changed = test[k], test[PLANTED + k]
        train[2 * k]["input"] = exact["input"].upper()
        words = changed["input"].split()
        for j in (1, 20, 38):
            words[j] = "different"
        train[2 * k + 1]["input"] = " ".join(words)
        expected[exact["id"]], expected[changed["id"]] = "exact", "ngram"
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "test.jsonl", test)
    return folder / "train.jsonl", folder / "test.jsonl", expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=100_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "perf/results/leakage_100k.json"))
    args = parser.parse_args()

    from tunebench.compare.leakage import leakage_report, read_rows
    from tunebench.core.atomic import write_json

    with tempfile.TemporaryDirectory() as tmp:
        train, test, expected = generate(Path(tmp), args.train, args.test)
        started = time.perf_counter()
        rows = read_rows(test)
        read_s = time.perf_counter() - started
        report = leakage_report(train_set="synthetic-full", train_path=train, eval_set="synthetic",
                                eval_kind="task", documents=([r["id"] for r in rows], [r["input"] for r in rows]))
        total_s = time.perf_counter() - started
    found = {it["id"]: it["kind"] for it in report["items"]}
    result = {
        "train_items": args.train, "test_items": args.test, "words_per_item": WORDS_PER_ITEM,
        "seconds": round(total_s, 2), "read_test_s": round(read_s, 2), "goal_s": GOAL_S,
        "met": total_s < GOAL_S, "peak_rss_mb": round(_peak_rss_mb(), 1),
        "found": report["counts"], "planted": {"exact": PLANTED, "ngram": PLANTED},
        "found_exactly_the_planted": found == expected,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0 if result["met"] and result["found_exactly_the_planted"] else 1


if __name__ == "__main__":
    sys.exit(main())
