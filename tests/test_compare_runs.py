"""tests/compare_runs.py (the before/after check of a refactoring) finds value changes and ignores
timings, timestamps and the renamed `method: lm-eval` -> `source: benchmark`."""

import json

from compare_runs import compare


def _write(root, rel, obj):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_value_changes_are_found_and_timings_are_not(tmp_path):
    ref, new = tmp_path / "ref", tmp_path / "new"
    score = {"metrics": {"accuracy": {"value": 0.5}}, "timing": {"started_at": "a", "items_per_s": 3.0},
             "method": "lm-eval", "latency_p50_s": 1.0}
    _write(ref, "results/scores/m/t/0shot.json", score)
    renamed = {k: v for k, v in score.items() if k != "method"}
    _write(new, "results/scores/m/t/0shot.json", {**renamed, "timing": {"started_at": "b", "items_per_s": 9.0},
                                                  "latency_p50_s": 2.0, "source": "benchmark"})
    _write(ref, "data/prepared/t/test.jsonl", {"id": "1"})
    _write(new, "data/prepared/t/test.jsonl", {"id": "1"})
    compared, problems = compare(ref, new)
    assert compared == 2
    assert problems == []
    _write(new, "results/scores/m/t/0shot.json", {**score, "metrics": {"accuracy": {"value": 0.6}}})
    compared, problems = compare(ref, new)
    assert problems == ["results/scores/m/t/0shot.json.metrics.accuracy.value: 0.5 != 0.6"]
    (new / "data/prepared/t/test.jsonl").unlink()
    assert "data/prepared/t/test.jsonl: only in reference" in compare(ref, new)[1]
