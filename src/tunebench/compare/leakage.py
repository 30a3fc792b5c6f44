"""Did the adapter see the test? Exact duplicates and 13-gram overlap between a training set and an
evaluation set (the decontamination rule of GPT-3 and lm-eval; the definition and its fast hashing
live in tunebench.data.overlap, which the data stage also uses to decontaminate training splits).

A training set's items and their answers count (an adapter learns both); an evaluation item is
`exact` when its normalised text equals a training item's, else `ngram` when one of its 13-grams
occurs in the training set. 100k training items x 10k evaluation items take a few seconds
(perf/leakage_100k.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from tunebench.core.errors import DataError
from tunebench.core.integrity import sha256_of
from tunebench.data.overlap import EXACT, NGRAM, NGRAM_KIND, TrainingIndex, item_text

__all__ = ["EXACT", "NGRAM", "NGRAM_KIND", "NOT_AVAILABLE", "TrainingIndex", "benchmark_documents", "item_text",
           "leakage_gate", "leakage_report", "read_rows", "touched_ids"]

NOT_AVAILABLE = "not checked: documents not available offline"


def read_rows(path: str | Path) -> list[dict]:
    """A prepared split (JSON lines), read with polars: 100k rows in a fraction of a second."""
    try:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"cannot read the rows: {err}", file=str(path), field="(row)",
                        fix="rerun the split_prepare rule to rewrite the split") from None
    return frame.to_dicts()


def benchmark_documents(name: str, spec: dict) -> tuple[list[str], list[str]] | None:
    """A benchmark's documents as (ids, texts), or None when they are not available offline (lm-eval's
    own tasks load them from the Hub)."""
    kind = spec["kind"]
    if kind == "ifbench":
        from tunebench.benchmarks.ifbench import load_prompts

        docs = load_prompts()
        return [str(d["key"]) for d in docs], [d["prompt"] for d in docs]
    if kind == "humaneval":
        import gzip
        import json

        from tunebench.benchmarks.tasks import humaneval_problems_file

        with gzip.open(humaneval_problems_file(), "rt", encoding="utf-8") as fh:
            docs = [json.loads(line) for line in fh if line.strip()]
        return [d["task_id"] for d in docs], [d["prompt"] for d in docs]
    if kind == "local":
        from tunebench.benchmarks.tasks import read_local_rows

        fields = spec["fields"]
        rows = read_local_rows(Path(spec["path"]), spec, f"configs/benchmarks/{name}.yaml", "path")
        texts = ["\n".join([str(r[fields["input"]]), *map(str, r.get(fields.get("choices") or "", None) or [])])
                 for r in rows]
        return [str(r.get("id", i)) for i, r in enumerate(rows)], texts
    return None


def leakage_report(*, train_set: str, train_path: str | Path, eval_set: str, eval_kind: str,
                   documents: tuple[list[str], list[str]] | None, eval_file: str | None = None) -> dict[str, Any]:
    """One (training set, evaluation set) pair's report (results/<suite>/leakage/<train>/<eval>.json)."""
    report: dict[str, Any] = {"train_set": train_set, "train_file": str(train_path),
                              "train_sha256": sha256_of(train_path), "eval_set": eval_set,
                              "eval_kind": eval_kind, "eval_file": eval_file, "ngram": NGRAM}
    if documents is None:
        return {**report, "checked": False, "note": NOT_AVAILABLE, "n": None, "counts": None,
                "touched_share": None, "items": []}
    rows = read_rows(train_path)
    index = TrainingIndex([item_text(r) for r in rows], [str(r.get("target") or "") for r in rows])
    ids, texts = documents
    touched = index.check(ids, texts)
    counts = {EXACT: sum(k == EXACT for k in touched.values()), NGRAM_KIND: sum(k == NGRAM_KIND for k in touched.values())}
    return {**report, "checked": True, "n_train": index.n, "n": len(ids), "counts": counts,
            "touched_share": round(len(touched) / len(ids), 6) if ids else 0.0,
            "items": [{"id": i, "kind": k} for i, k in touched.items()]}


def touched_ids(reports: Iterable[dict]) -> dict[str, list[str]]:
    """Evaluation item id -> the training sets that touched it, over several reports."""
    out: dict[str, list[str]] = {}
    for report in reports:
        for item in report.get("items", []):
            out.setdefault(item["id"], []).append(report["train_set"])
    return out


def leakage_gate(gate: dict, reports: Iterable[dict]) -> dict:
    """A fine-tuned system whose training data holds exact test items of a task FAILs, with or
    without a stored baseline: its scores there measure memory, not skill."""
    found = [r for r in reports if r.get("checked") and r["counts"][EXACT]]
    if not found:
        return gate
    rows = []
    for r in found:
        ids = [it["id"] for it in r["items"] if it["kind"] == EXACT]
        rows.append({"train_set": r["train_set"], "eval_set": r["eval_set"], "exact": len(ids), "ids": ids,
                     "message": f"{len(ids)} test item(s) of {r['eval_set']} are in the training data "
                                f"{r['train_file']} verbatim: {', '.join(ids[:20])}"
                                + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")})
    return {**gate, "gate": "FAIL", "leakage": rows}
