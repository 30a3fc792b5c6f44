"""Raw rows -> data/prepared/<task>/{train,val,test}.jsonl, checked, stratified, deterministic.

Every row is mapped through the task's `fields`, checked against configs/schema/row.schema.json
and the task's label set; ids must be unique; the raw row count must equal `expected_rows` when
the task declares it (a truncated download fails here, loudly, not later as a strange score).
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jsonschema

from tunebench.core.atomic import read_jsonl, write_json, write_jsonl
from tunebench.core.errors import DataError
from tunebench.core.spec import Task
from tunebench.data.sources import read_raw, sha256_file
from tunebench.tasks import task_type

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def to_rows(task: Task, raw_rows: list[dict], raw_name: str, row_schema: dict) -> list[dict]:
    """Map raw rows to prepared rows {id, input, target, meta}, checking each one."""
    f_id, f_in, f_tgt = task.fields["id"], task.fields["input"], task.fields["target"]
    validator = jsonschema.Draft202012Validator(row_schema)
    labels = set(task.labels or ())
    seen: dict[str, int] = {}
    rows = []
    for i, raw in enumerate(raw_rows):
        where = f"row {i + 1}"
        for column, key in ((f_in, "input"), (f_tgt, "target")):
            if column not in raw or raw[column] is None:
                raise DataError(f"{where} has no column {column!r} (the task's `fields.{key}`)",
                                file=raw_name, field=f"fields.{key}",
                                fix=f"point fields.{key} in {task.file.name} at one of: "
                                    f"{', '.join(map(str, raw))}")
        if f_id is not None and f_id not in raw:
            raise DataError(f"{where} has no id column {f_id!r}", file=raw_name, field="fields.id",
                            fix="set fields.id to an existing column, or to null to number rows")
        row: dict[str, Any] = {
            "id": str(raw[f_id]) if f_id is not None else f"{task.name}-{i:06d}",
            "input": str(raw[f_in]),
            "target": str(raw[f_tgt]),
        }
        meta = {k: v for k, v in raw.items() if k not in (f_id, f_in, f_tgt)}
        if meta:
            row["meta"] = meta
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        if error is not None:
            field = ".".join(map(str, error.absolute_path)) or "(row)"
            raise DataError(f"{where} (id {row['id']!r}): {field}: {error.message}", file=raw_name,
                            field=field, fix="fix or drop that row in the raw data")
        if labels and row["target"] not in labels:
            raise DataError(f"{where} (id {row['id']!r}) has target {row['target']!r}, which is not "
                            f"in the task's label set", file=raw_name, field="labels",
                            fix=f"add it to `labels` in {task.file.name} or fix the row")
        if row["id"] in seen:
            raise DataError(f"{where} repeats id {row['id']!r} (first seen in row {seen[row['id']] + 1})",
                            file=raw_name, field="id", fix="make ids unique, or set fields.id: null")
        seen[row["id"]] = i
        rows.append(row)
    return rows


def stratified_split(rows: list[dict], val: float, test: float, seed: int, stratify: bool) -> dict:
    """Split rows into train/val/test, keeping label proportions when `stratify` is set."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["target"] if stratify else ""].append(row)
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        n_test = round(len(members) * test)
        n_val = round(len(members) * val)
        out["test"] += members[:n_test]
        out["val"] += members[n_test:n_test + n_val]
        out["train"] += members[n_test + n_val:]
    for name in SPLITS:
        rng.shuffle(out[name])
    return out


def capped_subset(rows: list[dict], n: int, seed: int, stratify: bool) -> list[dict]:
    """A stratified subset of `n` rows; smaller caps are subsets of larger ones (same seed)."""
    if n >= len(rows):
        return list(rows)
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["target"] if stratify else ""].append(row)
    rng = random.Random(seed)
    ranked = []
    for g, key in enumerate(sorted(groups)):
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        # Member j of a group of size m sits at (j + 0.5) / m: any prefix of the merged order
        # holds each group in proportion to its size, and a smaller cap is a prefix of a larger.
        ranked += [((j + 0.5) / len(members), g, r) for j, r in enumerate(members)]
    order = [r for _, _, r in sorted(ranked, key=lambda t: (t[0], t[1]))]
    chosen = {r["id"] for r in order[:n]}
    return [r for r in rows if r["id"] in chosen]


def check_rows(task: Task, raw_rows: list[dict], raw_name: str, row_schema: dict, refetch: str) -> list[dict]:
    """Every check of a task's raw rows (count, columns, schema, labels, ids): the prepared rows."""
    if not raw_rows:
        raise DataError("the raw data has no rows", file=raw_name, field="source",
                        fix=f"check the source in {task.file.name}, then {refetch}")
    if task.expected_rows is not None and len(raw_rows) != task.expected_rows:
        raise DataError(
            f"raw data has {len(raw_rows)} rows but the task expects {task.expected_rows} "
            f"(truncated or stale download?)", file=raw_name, field="expected_rows",
            fix=f"{refetch}, or correct expected_rows in {task.file.name}",
        )
    return to_rows(task, raw_rows, raw_name, row_schema)


def check_local_source(task: Task, root: Path, row_schema: dict) -> None:
    """A task whose rows are a local file is checked when the workflow loads, before any job: bad
    rows would otherwise stop the run only after the model work had started beside them."""
    from tunebench.data.sources import _format_of, local_data_files, read_file_rows

    root = Path(root)
    task_file = str(task.file.relative_to(root)) if task.file.is_relative_to(root) else str(task.file)
    files = local_data_files(task.source, root, config_file=task_file)
    shown = task.source["path"]
    rows = []
    for f in files:
        try:
            rows += read_file_rows(f, _format_of(f, task.source.get("format")))
        except DataError as exc:  # name the file as the user wrote it
            raise DataError(exc.problem, file=str(f.relative_to(root)) if f.is_relative_to(root) else str(f),
                            field=exc.field, fix=exc.fix) from None
    check_rows(task, rows, shown, row_schema, refetch=f"fix {shown}")


def prepare_splits(task: Task, raw_dir: str | Path, out_paths: dict[str, str], manifest_path: str,
                   row_schema: dict) -> dict:
    raw_dir = Path(raw_dir)
    rows = check_rows(task, read_raw(raw_dir), str(raw_dir), row_schema,
                      refetch=f"delete {raw_dir} and rerun to fetch it again")
    split = task.split
    kind = task_type(task.type)
    stratify = split["stratify"] and kind.stratify
    parts = stratified_split(rows, split["val"], split["test"], split["seed"], stratify)
    for name in SPLITS:
        if not parts[name]:
            raise DataError(f"the {name} split is empty ({len(rows)} rows in all)", file=str(raw_dir),
                            field="split", fix=f"use more rows or larger split fractions in {task.file.name}")
    if task.labels:
        missing = sorted(set(task.labels) - {r["target"] for r in parts["train"]})
        if missing:
            log.warning("labels with no training example: %s", ", ".join(missing))
    manifest: dict[str, Any] = {"task": task.name, "rows": len(rows), "splits": {}}
    for name in SPLITS:
        write_jsonl(out_paths[name], parts[name])
        manifest["splits"][name] = {
            "rows": len(parts[name]),
            "sha256": sha256_file(Path(out_paths[name])),
            "labels": dict(sorted(Counter(r["target"] for r in parts[name]).items()))
            if kind.labelled else None,
        }
    write_json(manifest_path, manifest)
    log.info("prepared %s: %s", task.name, {k: v["rows"] for k, v in manifest["splits"].items()})
    return manifest


def write_train_subset(task: Task, train_path: str, n: int, out_path: str) -> int:
    rows = read_jsonl(train_path)
    if n > len(rows):
        raise DataError(f"train size {n} exceeds the {len(rows)} training rows", file=str(task.file),
                        field="train_sizes", fix=f"use sizes up to {len(rows)}, or `full`")
    subset = capped_subset(rows, n, task.split["seed"], task.split["stratify"] and task_type(task.type).stratify)
    return write_jsonl(out_path, subset)
