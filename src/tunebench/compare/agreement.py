"""Backend agreement: the same model through two backends (e.g. transformers and llama.cpp, or
transformers and a served endpoint) over the same items.

Per task cell: the share of items whose parsed answers are equal, the share whose raw outputs are
identical, and the paired score difference with its bootstrap interval. A pair is flagged when
answers agree on fewer than `min_rate` of the items or the score difference is not noise (its
interval excludes 0): numbers from one backend would then not stand for the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tunebench.compare.paired import paired_comparison
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.integrity import read_record, verify_rows

log = logging.getLogger(__name__)


def read_checked_rows(rows_path: str) -> list[dict]:
    """A cell's prediction rows, after checking them against the digest in their meta (beside them,
    <prompting>.meta.json), so that a file edited since it was written is never compared."""
    meta_path = Path(rows_path).with_suffix(".meta.json")
    if meta_path.is_file():
        verify_rows(rows_path, read_record(meta_path).get("rows_file"), rule="predictions_generate",
                    recorded_in=meta_path)
    return read_jsonl(rows_path)


def agreement_report(*, systems: tuple[str, str], cells: list[dict], labels: dict[str, list[str] | None],
                     min_rate: float, bootstrap: dict) -> dict:
    """`cells`: one dict per shared (task, prompting) with the two score files and prediction files."""
    rows, flags = [], []
    backends = [None, None]
    for cell in cells:
        score_a, score_b = read_json(cell["score_a"]), read_json(cell["score_b"])
        backends = [score_a.get("backend"), score_b.get("backend")]
        out_a = {r["id"]: r["output"] for r in read_checked_rows(cell["rows_a"])}
        out_b = {r["id"]: r["output"] for r in read_checked_rows(cell["rows_b"])}
        parsed_b = {it["id"]: it["parsed"] for it in score_b["items"]}
        ids = [it["id"] for it in score_a["items"] if it["id"] in parsed_b]
        parsed_a = {it["id"]: it["parsed"] for it in score_a["items"]}
        same = sum(parsed_a[i] == parsed_b[i] for i in ids)
        identical = sum(out_a.get(i) is not None and out_a.get(i) == out_b.get(i) for i in ids)
        primary = next(r for r in paired_comparison(score_a, score_b, labels=labels.get(cell["task"]), **bootstrap)
                       if r["primary"])
        rate = same / len(ids) if ids else 0.0
        reasons = []
        if rate < min_rate:
            reasons.append(f"{cell['task']}/{cell['prompting']}: answers agree on {rate:.1%} of {len(ids)} items "
                           f"(< {min_rate:.0%})")
        if primary["direction"] != "→":
            reasons.append(f"{cell['task']}/{cell['prompting']}: {primary['metric']} differs by "
                           f"{primary['delta_pp']:+.1f} pp [{primary['ci_low_pp']:+.1f}, {primary['ci_high_pp']:+.1f}]")
        flags += reasons
        rows.append({
            "task": cell["task"], "prompting": cell["prompting"], "n": len(ids),
            "agreement_rate": round(rate, 6), "exact_output_rate": round(identical / len(ids), 6) if ids else 0.0,
            "metric": primary["metric"], "score_a": primary["base"], "score_b": primary["finetuned"],
            "delta_pp": primary["delta_pp"], "ci_low_pp": primary["ci_low_pp"], "ci_high_pp": primary["ci_high_pp"],
            "p_value": primary["p_value"], "flagged": bool(reasons),
        })
        log.info("%s vs %s on %s/%s: same answer %.1f%%, identical output %.1f%%, delta %+.1f pp",
                 *systems, cell["task"], cell["prompting"], 100 * rate, 100 * rows[-1]["exact_output_rate"],
                 primary["delta_pp"])
    n = sum(r["n"] for r in rows)
    return {
        "systems": list(systems), "backends": backends, "min_rate": min_rate, "rows": rows,
        "agreement_rate": round(sum(r["agreement_rate"] * r["n"] for r in rows) / n, 6) if n else None,
        "flagged": bool(flags), "flags": flags,
    }
