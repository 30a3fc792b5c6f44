"""Score one cell's predictions against the test split: metric values, bootstrap CIs, per-item
outcomes (kept for paired tests later) and latency / token statistics.

Both files are read with polars (only the fields scoring needs) and joined on id; the metrics are
vectorised (tunebench.scoring.metrics), so 100k predictions score in about a second and 1M in
about five (the bootstrap of a large cell draws outcome counts, not item positions)."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tunebench.core.atomic import read_json, write_text
from tunebench.core.errors import DataError
from tunebench.core.integrity import read_record, verify_rows, verify_split
from tunebench.core.records import TASK, ScoreRecord
from tunebench.core.spec import Task
from tunebench.scoring.metrics import bootstrap_ci
from tunebench.tasks import task_type

log = logging.getLogger(__name__)

TEST_FIELDS = {"id": pl.String, "target": pl.String}
PREDICTION_FIELDS = {"id": pl.String, "parsed": pl.String, "output": pl.String, "latency_s": pl.Float64,
                     "tokens_in": pl.Float64, "tokens_out": pl.Float64, "ttft_s": pl.Float64}
TOP_CONFUSIONS = 10  # (target, answer) pairs a classification cell lists
NOT_READ_BY_ERROR_CLASS = frozenset({"id", "output", "latency_s", "tokens_in", "ttft_s"})


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


def _mean(values: np.ndarray) -> float | None:
    return round(float(np.mean(values)), 2) if len(values) else None


def _read(path: str, fields: dict, n_rows: int | None, fix: str) -> pl.DataFrame:
    """The given fields of a JSON-lines file (a missing field reads as null)."""
    try:
        return pl.read_ndjson(path, schema=fields, n_rows=n_rows)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"cannot read the fields {', '.join(fields)}: {err}", file=path, field="(row)",
                        fix=fix) from None


def read_predictions(path: str, extra: dict | None = None) -> pl.DataFrame:
    """The fields scoring reads (and a task type's `prediction_fields`)."""
    return _read(path, {**PREDICTION_FIELDS, **(extra or {})}, None,
                 "delete the predictions file and rerun to regenerate it")


def read_items(test_path: str, max_items: int | None, extra: dict | None = None) -> pl.DataFrame:
    """The evaluated items: the first `max_items` of the test split (as predict.eval_items), with a
    task type's `item_fields`."""
    return _read(test_path, {**TEST_FIELDS, **(extra or {})}, max_items or None,
                 "rerun the split_prepare rule to rewrite the split")


def _error_classes(kind, task: Task, cell: pl.DataFrame, scores: list[float]
                   ) -> tuple[list[str | None], list[tuple[str, str | None, str | None, int]]]:
    """kind.error_class of every item, called once per distinct item (its fields and score): answers
    repeat (a label set, "none", the same wrong product), so 1M items are a few thousand calls. The
    fields left out of the key are what no error class reads: the item's id, its raw output, timing.
    Also per distinct item: (its error class, target, parsed answer, how many items)."""
    if not cell.height:
        return [], []
    keys = [c for c in cell.columns if c not in NOT_READ_BY_ERROR_CLASS and c != "score"]
    framed = cell.select(keys).with_columns(pl.Series("score", scores, dtype=pl.Float64),
                                            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"))
    groups = framed.group_by([*keys, "score"], maintain_order=True).agg(pl.col("_row"))
    classes = [kind.error_class(task, row) for row in groups.drop("_row").iter_rows(named=True)]
    sizes = groups["_row"].list.len().to_numpy()
    codes = np.empty(cell.height, dtype=np.int64)
    codes[groups["_row"].explode().to_numpy()] = np.repeat(np.arange(len(classes)), sizes)
    distinct = list(zip(classes, groups["target"].to_list(), groups["parsed"].to_list(), sizes.tolist()))
    return [classes[code] for code in codes.tolist()], distinct


def error_summary(kind, task: Task, cell: pl.DataFrame, scores: list[float]) -> tuple[list, dict, list]:
    """Each item's error class (None when right), the count per class, and for a labelled task the
    most frequent (target, answer) confusions (both counted over the distinct items)."""
    errors, distinct = _error_classes(kind, task, cell, scores)
    by_class: Counter = Counter()
    pairs: Counter = Counter()
    for error, target, answer, size in distinct:
        if error is not None:
            by_class[error] += size
            if answer is not None:
                pairs[(target, answer)] += size
    counts = dict(sorted(by_class.items(), key=lambda kv: (-kv[1], kv[0])))
    confusions: list[dict] = []
    if kind.labelled:
        confusions = [{"target": t, "answer": p, "count": c}
                      for (t, p), c in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CONFUSIONS]]
    return errors, counts, confusions


def join_predictions(items: pl.DataFrame, preds: pl.DataFrame, predictions_path: str) -> pl.DataFrame:
    """Each item with its prediction (the last one for a repeated id), in test order; a DataError
    when an item has none or the counts differ."""
    latest = preds.unique(subset="id", keep="last", maintain_order=True).with_columns(_found=pl.lit(True))
    cell = items.join(latest, on="id", how="left", maintain_order="left", nulls_equal=True)
    missing = cell.filter(pl.col("_found").is_null())["id"].to_list()
    if missing or preds.height != items.height:
        raise DataError(f"{len(missing)} test item(s) have no prediction (e.g. {missing[:3]}) and "
                        f"{preds.height} predictions exist for {items.height} items", file=predictions_path,
                        field="id", fix="delete the predictions file and rerun to regenerate it")
    return cell.drop("_found")


def _rounded(scores: list[float]) -> list[float]:
    """round(s, 6) of each score, computed once per distinct score (they repeat: 0/1, a few F1s;
    distinct by their bits, so -0.0 stays itself)."""
    if not scores:
        return []
    bits, code = np.unique(np.asarray(scores, dtype=np.float64).view(np.int64), return_inverse=True)
    rounded = np.array([round(s, 6) for s in bits.view(np.float64).tolist()], dtype=object)
    return rounded[code.reshape(-1)].tolist()


def _json_values(values: list) -> list[str]:
    """Each scalar as json.dumps writes it, in one call of the C encoder (JSON escapes every control
    character inside strings, so a raw NUL can separate them)."""
    return json.dumps(values, ensure_ascii=False, separators=("\0", ": "))[1:-1].split("\0") if values else []


def record_json(record: dict[str, Any], item_columns: dict[str, list] | None = None) -> str:
    """json.dumps(record, indent=2, ensure_ascii=False), the text write_json writes, with the per-item
    list (flat dicts with the same keys) encoded column by column: the indenting encoder is pure
    Python and takes about a second for 100k items. `item_columns`: the same items as columns (key
    -> values), when the caller has them, saves taking them apart again."""
    items = record["items"]
    if not items:
        return json.dumps(record, indent=2, ensure_ascii=False)
    marker = f"items-{uuid.uuid4().hex}"
    head = json.dumps({**record, "items": marker}, indent=2, ensure_ascii=False)
    keys = list(items[0])
    if item_columns is None or list(item_columns) != keys:
        item_columns = {k: [it[k] for it in items] for k in keys}
    columns = [_json_values(item_columns[k]) for k in keys]
    template = "    {\n" + ",\n".join(f"      {json.dumps(k, ensure_ascii=False).replace('%', '%%')}: %s"
                                      for k in keys) + "\n    }"
    body = ",\n".join([template % row for row in zip(*columns)])
    return head.replace(f'"{marker}"', f"[\n{body}\n  ]", 1)


def test_split_size(test_path: str, manifest_path: str | None) -> int:
    """How many items the whole test split has, before any cap (the prepared manifest's `of`)."""
    if manifest_path and Path(manifest_path).is_file():
        test = read_json(manifest_path).get("splits", {}).get("test", {})
        if "of" in test or "rows" in test:
            return int(test.get("of", test.get("rows")))
    with open(test_path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def score_predictions(*, task: Task, predictions_path: str, meta_path: str, test_path: str,
                      max_items: int | None, bootstrap: dict, out_path: str,
                      manifest_path: str | None = None, exclude: dict[str, list[str]] | None = None) -> dict:
    """The cell's score record (source task; see tunebench.core.records), written to out_path.
    `exclude`: test item id -> the training sets that touched it (tunebench.compare.leakage); those
    items are left out of every metric, and the record lists them."""
    kind = task_type(task.type)
    meta = read_record(meta_path)  # a predictions file edited since it was written is never scored
    verify_rows(predictions_path, meta.get("rows_file"), rule="predictions_generate", recorded_in=meta_path)
    if manifest_path and Path(manifest_path).is_file():
        verify_split(test_path, manifest_path, "test")
    preds = read_predictions(predictions_path, kind.prediction_fields)
    cell = join_predictions(read_items(test_path, max_items, kind.item_fields), preds, predictions_path)
    excluded = None
    if exclude is not None:
        left_out = cell.filter(pl.col("id").is_in(list(exclude)))["id"].to_list()
        excluded = {"count": len(left_out), "items": [{"id": i, "by": exclude[i]} for i in left_out]}
        cell = cell.filter(~pl.col("id").is_in(left_out))
        if cell.is_empty():
            raise DataError(f"every evaluated item of {task.name} is in a training set ({len(left_out)} items), "
                            "so no clean item is left to score", file=test_path, field="leakage.exclude",
                            fix="set leakage.exclude: false to score them all, or fix the overlap (the "
                                "results/<suite>/leakage/ reports list the items)")
    ids, targets, parsed = cell["id"].to_list(), cell["target"].to_list(), cell["parsed"].to_list()
    scores, values, statistics = kind.score_items(task, cell)
    cis = bootstrap_ci(targets, parsed, task.metrics, labels=task.labels if values is None else None,
                       resamples=bootstrap["resamples"], confidence=bootstrap["confidence"],
                       seed=bootstrap["seed"], item_values=values, statistics=statistics)
    errors, error_counts, confusions = error_summary(kind, task, cell, scores)
    n_of = test_split_size(test_path, manifest_path)
    labels_absent = sorted(set(task.labels) - set(targets)) if task.labels and kind.labelled else None
    item_columns = {"id": ids, "target": targets, "parsed": parsed, "score": _rounded(scores),
                    "error": errors}
    per_item = [{"id": i, "target": t, "parsed": p, "score": s, "error": e}
                for i, t, p, s, e in zip(*item_columns.values())]

    def known(column: str) -> np.ndarray:  # an endpoint may not report usage: count what is known
        return cell[column].drop_nulls().to_numpy()

    record = ScoreRecord(
        source=TASK, system=meta["system"], model=meta["model"], adapter=meta["adapter"],
        task=task.name, task_type=task.type, prompting=meta["prompting"],
        shots=meta["shots"], method=meta["method"], parser=task.parser,
        backend=meta.get("backend"), device=meta.get("device"),
        n=cell.height, primary_metric=task.primary_metric, metrics=cis,
        parse_failures=cell["parsed"].null_count(),
        errors=error_counts, confusions=confusions, n_of=n_of,
        labels=list(task.labels) if task.labels and kind.labelled else None, labels_absent=labels_absent,
        items=per_item, excluded=excluded,
        timing={
            "latency_p50_s": _percentile(cell["latency_s"].to_numpy(), 50),
            "latency_p95_s": _percentile(cell["latency_s"].to_numpy(), 95),
            "tokens_in_mean": _mean(known("tokens_in")),
            "tokens_out_mean": _mean(known("tokens_out")),
            "ttft_p50_s": _percentile(known("ttft_s"), 50),  # streamed answers only
            "ttft_p95_s": _percentile(known("ttft_s"), 95),
            "items_per_s": meta.get("items_per_s"),
            "tokens_out_per_s": meta.get("tokens_out_per_s"),
            "started_at": meta["started_at"], "finished_at": meta["finished_at"],
        },
    ).to_dict()
    write_text(out_path, record_json(record, item_columns) + "\n")  # = write_json(out_path, record)
    primary = cis[task.primary_metric]
    shown = ("n/a: " + str(primary.get("unavailable")) if primary["value"] is None
             else f"{primary['value']:.3f} [{primary['ci_low']:.3f}, {primary['ci_high']:.3f}]")
    log.info("%s %s %s: %s = %s (n=%d)", meta["system"], task.name, meta["prompting"], task.primary_metric,
             shown, cell.height)
    return record
