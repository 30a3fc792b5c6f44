"""Raw rows -> data/prepared/<task>/{train,val,test}.jsonl, checked, stratified, deterministic.

Every row is mapped through the task's `fields`, checked against configs/schema/row.schema.json
and the task's label set; ids must be unique; the raw row count must equal `expected_rows` when
the task declares it (a truncated download fails here, loudly, not later as a strange score).
Train and val rows that repeat a test item (`split.decontaminate`), or another task's test item
(`split.decontaminate_against`), are removed once the splits are formed, so every train-<n> subset
drawn later is clean; the test split is never changed.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunebench.core.atomic import read_json, read_jsonl, write_json, write_jsonl
from tunebench.core.errors import ConfigError, DataError
from tunebench.core.spec import Task
from tunebench.data.local_checks import remember, summarize
from tunebench.data.overlap import EXACT, NGRAM_KIND, contaminated
from tunebench.data.readers import TASK_FILE, read_located
from tunebench.data.rows import RowMapper, class_names
from tunebench.data.sources import (
    _format_of,
    hf_features,
    local_split_files,
    raw_features,
    read_raw_splits,
    sha256_file,
)
from tunebench.tasks import task_type

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def to_rows(task: Task, raw_rows: list[dict], raw_name: str, row_schema: dict) -> list[dict]:
    """Map raw rows to prepared rows {id, input, target, meta, ...}, checking each one."""
    return RowMapper(task, row_schema).map(raw_rows, raw_name)


def group_key(task: Task):
    """What splits, caps and samples keep in proportion: the label (stratified labelled types), an
    answer's presence (extraction with `abstain`), else nothing."""
    if task.split.get("stratify", True) and task_type(task.type).stratify:
        return lambda row: row["target"]
    if task.abstain:
        return lambda row: "present" if row["target"] else "absent"
    return lambda row: ""


def _key(stratify):
    return stratify if callable(stratify) else (lambda row: row["target"]) if stratify else (lambda row: "")


def allocate(sizes: list[int], fraction: float) -> list[int]:
    """How many of each group a split takes: round(total x fraction) in all, spread in proportion
    to the group sizes by largest remainder (with many small groups, rounding each group alone would
    give every group 0 and leave the split empty)."""
    total = min(sum(sizes), round(sum(sizes) * fraction))
    exact = [n * fraction for n in sizes]
    counts = [min(n, int(e)) for n, e in zip(sizes, exact)]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in by_remainder:
        if sum(counts) >= total:
            break
        if counts[i] < sizes[i]:
            counts[i] += 1
    return counts


def split_counts(sizes: list[int], val: float, test: float) -> tuple[list[int], list[int]]:
    """Per group, how many rows go to test and to val (the rest trains)."""
    tests = allocate(sizes, test)
    total = sum(sizes)
    return tests, allocate([n - t for n, t in zip(sizes, tests)], val * total / max(1, total - sum(tests)))


def stratified_split(rows: list[dict], val: float, test: float, seed: int, stratify) -> dict:
    """Split rows into train/val/test, keeping group proportions (`stratify`: True for the target,
    a function of the row, or False)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    key = _key(stratify)
    for row in rows:
        groups[key(row)].append(row)
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    order = sorted(groups)
    tests, vals = split_counts([len(groups[k]) for k in order], val, test)
    for key, n_test, n_val in zip(order, tests, vals):
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        out["test"] += members[:n_test]
        out["val"] += members[n_test:n_test + n_val]
        out["train"] += members[n_test + n_val:]
    for name in SPLITS:
        rng.shuffle(out[name])
    return out


def capped_subset(rows: list[dict], n: int, seed: int, stratify, balance: bool = False) -> list[dict]:
    """A stratified subset of `n` rows; smaller caps are subsets of larger ones (same seed).
    `balance`: as many of each group as it has, up to an equal share (not the proportions)."""
    if n >= len(rows):
        return list(rows)
    groups: dict[str, list[dict]] = defaultdict(list)
    key = _key(stratify)
    for row in rows:
        groups[key(row)].append(row)
    rng = random.Random(seed)
    ranked = []
    for g, key in enumerate(sorted(groups)):
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        # Member j of a group of size m sits at (j + 0.5) / m: any prefix of the merged order
        # holds each group in proportion to its size, and a smaller cap is a prefix of a larger.
        ranked += [((j + 0.5) / (1 if balance else len(members)), g, r) for j, r in enumerate(members)]
    order = [r for _, _, r in sorted(ranked, key=lambda t: (t[0], t[1]))]
    chosen = {r["id"] for r in order[:n]}
    return [r for r in rows if r["id"] in chosen]


def _check_count(task: Task, n_rows: int, split: str | None, raw_name: str, refetch: str) -> None:
    expected = task.expected_rows
    if isinstance(expected, dict):
        expected = expected.get(split or "") if split else None
    if expected is not None and n_rows != expected:
        where = f"the {split} split has" if split else "raw data has"
        raise DataError(f"{where} {n_rows} rows but the task expects {expected} (truncated or stale download?)",
                        file=raw_name, field=f"expected_rows{'.' + split if split else ''}",
                        fix=f"{refetch}, or correct expected_rows in {task.file.name}")


def check_rows(task: Task, raw_rows: list[dict] | dict, raw_name: str, row_schema: dict, refetch: str,
               features: dict | None = None, places: dict | None = None) -> dict[str | None, list[dict]]:
    """Every check of a task's raw rows (counts, columns, schema, labels, ids): the prepared rows per
    official split (key None: one pool to split)."""
    parts = raw_rows if isinstance(raw_rows, dict) else {None: raw_rows}
    if not any(parts.values()):
        raise DataError("the raw data has no rows", file=raw_name, field="source",
                        fix=f"check the source in {task.file.name}, then {refetch}")
    if isinstance(task.expected_rows, int):
        _check_count(task, sum(map(len, parts.values())), None, raw_name, refetch)
    elif isinstance(task.expected_rows, dict):
        for name in task.expected_rows:
            _check_count(task, len(parts.get(name, [])), name, raw_name, refetch)
    mapper = RowMapper(task, row_schema, features)
    return {split: mapper.map(rows, raw_name, split, (places or {}).get(split)) for split, rows in parts.items()}


def check_local_source(task: Task, root: Path, row_schema: dict) -> None:
    """A task whose rows are a local file is checked when the workflow loads, before any job: bad
    rows, or a split the prepare job would leave empty, would otherwise stop the run only after the
    model work had started beside them. Leaves a summary for `local_checks.check_local_plans`."""
    root = Path(root)

    def shown(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    task_file = shown(task.file) if task.file.is_absolute() else str(task.file)
    files = local_split_files(task.source, root, config_file=task_file)
    parts: dict[str | None, list[dict]] = {}
    places: dict[str | None, list[tuple[str, str]]] = {}
    for split, f in files:
        try:
            rows, where = read_located(f, _format_of(f, task.source.get("format"), task_file), shown(f))
        except DataError as exc:  # its fix names "the task file": name this one
            raise DataError(exc.problem, file=exc.file, field=exc.field,
                            fix=(exc.fix or "").replace(TASK_FILE, task_file)) from None
        parts.setdefault(split, []).extend(rows)
        places.setdefault(split, []).extend((shown(f), w) for w in where)
    features = next((feat for feat in (hf_features(f) for _, f in files) if feat), None)
    name = task.source["path"]
    official = check_rows(task, parts, name, row_schema, refetch=f"fix {name}", features=features, places=places)
    carved = carve(task, official)
    check_split_sizes(task, carved, official)
    remember(task, summarize(task, official, places, len(carved["train"]), name))


def carve(task: Task, official: dict[str | None, list[dict]]) -> dict[str, list[dict]]:
    """train, val and test: one pool carved in three, or the official splits with what they lack
    carved from the official train split (the whole test split: test_sample_size comes later)."""
    split, key = task.split, group_key(task)
    if None in official:
        return stratified_split(official[None], split["val"], split["test"], split["seed"], key)
    carve_test = 0.0 if "test" in official else split["test"]
    carve_val = 0.0 if "validation" in official else split["val"]
    parts = stratified_split(official.get("train", []), carve_val, carve_test, split["seed"], key)
    parts["test"] = official.get("test", parts["test"])
    parts["val"] = official.get("validation", parts["val"])
    return parts


def check_split_sizes(task: Task, parts: dict[str, list[dict]], official: dict[str | None, list[dict]]) -> None:
    """A split left empty (by fractions too small for the rows, or an empty official split) is the
    task file's mistake: name the fraction that gives one item."""
    pool = official[None] if None in official else official.get("train", [])
    counts = ", ".join(f"{len(parts[s])} {s}" for s in SPLITS)
    for name in SPLITS:
        own = {"train": "train", "val": "validation", "test": "test"}[name]
        if parts[name] or None in official and not pool:
            continue
        if None not in official and (own in official or name == "train"):
            raise ConfigError(f"the {name} split is empty: the source's official {own} split "
                              f"{'has no rows' if own in official else 'is missing'} ({counts})", file=str(task.file),
                              field=f"source.splits.{own}", fix=f"point source.splits.{own} at files with rows")
        n, val, test = len(pool), task.split["val"], task.split["test"]
        if name == "train":
            raise ConfigError(f"split val {val} and test {test} of {n} rows leave no row to train on ({counts})",
                              file=str(task.file), field="split", fix="lower split.val and split.test, or add rows")
        need = _fraction_for_one(task, official, pool, name)
        raise ConfigError(f"split.{name} = {task.split[name]} of {n} rows gives the {name} split 0 items ({counts})",
                          file=str(task.file), field="split",
                          fix=(f"set split.{name} to at least {need} ({need} x {n} rows rounds to 1 item), or add rows"
                               if need else f"add rows: {n} rows cannot give train, val and test an item each"))


def _fraction_for_one(task: Task, official: dict, pool: list[dict], name: str) -> float | None:
    """The smallest split fraction (in hundredths) that gives split `name` an item and leaves one to train."""
    key = group_key(task)
    sizes = list(Counter(key(r) for r in pool).values())
    val = 0.0 if "validation" in official else task.split["val"]
    test = 0.0 if "test" in official else task.split["test"]
    for k in range(1, 95):
        tests, vals = split_counts(sizes, k / 100 if name == "val" else val, k / 100 if name == "test" else test)
        if sum(vals if name == "val" else tests) and sum(tests) + sum(vals) < len(pool):
            return k / 100
    return None


def _drop(parts: dict[str, list[dict]], test_rows: list[dict], mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("train", "val"):
        found = contaminated(parts[name], test_rows, mode)
        parts[name] = [r for r in parts[name] if str(r["id"]) not in found]
        kinds = Counter(found.values())
        out[name] = {"rows": len(found), EXACT: kinds[EXACT], NGRAM_KIND: kinds[NGRAM_KIND], "ids": sorted(found)}
    return out


def decontaminate(task: Task, parts: dict[str, list[dict]],
                  against: Mapping[str, list[dict]] | None = None) -> dict[str, Any]:
    """Drop from train and val every row that touches the whole test split (before test_sample_size:
    the sample must not decide what trains), by `split.decontaminate`: `exact` (the default) a row
    whose normalised text is a test item's, `ngram` also a row sharing a word 13-gram with one,
    `none` nothing. Then, the same way, every row that touches another task's prepared test split
    (`against`: task -> its test rows); a row is counted once, under the first split it touches.
    The test split stays as it is: it is what every system is compared on."""
    mode = task.split.get("decontaminate", EXACT)
    removed: dict[str, Any] = {"mode": mode, **_drop(parts, parts["test"], mode), "against": {}}
    for other, test_rows in (against or {}).items():
        removed["against"][other] = _drop(parts, test_rows, mode)
    if not parts["train"]:
        total = removed["train"]["rows"] + sum(r["train"]["rows"] for r in removed["against"].values())
        field = "split.decontaminate_against" if removed["against"] and total > removed["train"]["rows"] \
            else "split.decontaminate"
        raise DataError(f"every training row repeats a test item (split.decontaminate: {mode}, {total} removed"
                        f"{', against ' + ', '.join(removed['against']) if removed['against'] else ''})",
                        file=str(task.file), field=field,
                        fix="check the source for a train split that copies the test split, set "
                            "split.decontaminate to exact or none, or drop tasks from split.decontaminate_against")
    return removed


def label_set(task: Task, rows: list[dict], features: dict) -> list[str] | None:
    """A labelled task's labels: as configured, or (`labels: auto`) the ClassLabel names / label_names,
    else the distinct targets of the data, sorted."""
    if not task_type(task.type).labelled:
        return None
    if task.labels:
        return list(task.labels)
    return class_names(task, features) or sorted({r["target"] for r in rows})


def prepare_splits(task: Task, raw_dir: str | Path, out_paths: dict[str, str], manifest_path: str,
                   row_schema: dict, against: Mapping[str, str | Path] | None = None) -> dict:
    """`against`: the prepared test split (path) of each task of `split.decontaminate_against` that
    this run prepares; the others it names are skipped and listed in the manifest."""
    raw_dir = Path(raw_dir)
    against = dict(against or {})
    skipped = [t for t in task.split.get("decontaminate_against") or [] if t not in against]
    features = raw_features(raw_dir)
    refetch = f"delete {raw_dir} and rerun to fetch it again"
    official = check_rows(task, read_raw_splits(raw_dir), str(raw_dir), row_schema, refetch, features)
    split, key = task.split, group_key(task)
    parts = carve(task, official)
    every = [r for rows in parts.values() for r in rows]
    check_split_sizes(task, parts, official)
    removed = decontaminate(task, parts, {name: read_jsonl(path) for name, path in against.items()})
    whole_test = len(parts["test"])
    if task.test_sample_size:
        parts["test"] = capped_subset(parts["test"], task.test_sample_size, split["seed"], key, task.test_balance)
    labels = label_set(task, every, features)
    if labels:
        missing = sorted(set(labels) - {r["target"] for r in parts["train"]})
        if missing:
            log.warning("labels with no training example: %s", ", ".join(missing[:20]))
    manifest: dict[str, Any] = {"task": task.name, "rows": len(every), "splits": {},
                                "official_splits": sorted(s for s in official if s), "labels": labels,
                                "decontaminate": removed["mode"],
                                "decontaminate_against": removed["against"],
                                "decontaminate_skipped": {t: "not among this run's tasks: its test split is not "
                                                             "prepared" for t in skipped}}
    for name in SPLITS:
        write_jsonl(out_paths[name], parts[name])
        manifest["splits"][name] = {
            "rows": len(parts[name]),
            **({"of": whole_test} if name == "test" else {"removed": removed[name]}),
            "sha256": sha256_file(Path(out_paths[name])),
            "labels": dict(sorted(Counter(r["target"] for r in parts[name]).items())) if labels else None,
        }
    write_json(manifest_path, manifest)
    log.info("prepared %s: %s", task.name, {k: v["rows"] for k, v in manifest["splits"].items()})
    log.info("decontaminate %s: removed %d train and %d val rows that repeat a test item (%d exact, %d by "
             "13-gram)", removed["mode"], removed["train"]["rows"], removed["val"]["rows"],
             removed["train"][EXACT] + removed["val"][EXACT], removed["train"][NGRAM_KIND] + removed["val"][NGRAM_KIND])
    for other, gone in removed["against"].items():
        log.info("decontaminate %s against %s: removed %d train and %d val rows that touch its test split (%d exact, "
                 "%d by 13-gram)", removed["mode"], other, gone["train"]["rows"], gone["val"]["rows"],
                 gone["train"][EXACT] + gone["val"][EXACT], gone["train"][NGRAM_KIND] + gone["val"][NGRAM_KIND])
    for other in skipped:
        log.warning("decontaminate against %s skipped: it is not among this run's tasks, so its test split is not "
                    "prepared (add it to `tasks:` to clean against it)", other)
    return manifest


def write_train_subset(task: Task, train_path: str, n: int, out_path: str) -> int:
    rows = read_jsonl(train_path)
    if n > len(rows):
        manifest = Path(train_path).with_name("manifest.json")
        doc = read_json(manifest) if manifest.exists() else {}
        removed = (doc.get("splits", {}).get("train", {}).get("removed") or {}).get("rows", 0)
        other = sum(r["train"]["rows"] for r in (doc.get("decontaminate_against") or {}).values())
        why = ", ".join(([f"{removed} removed by split.decontaminate: {doc['decontaminate']}"] if removed else [])
                        + ([f"{other} by split.decontaminate_against"] if other else []))
        why = f" ({why})" if why else ""
        raise DataError(f"train size {n} exceeds the {len(rows)} training rows{why}", file=str(task.file),
                        field="train_sizes", fix=f"use sizes up to {len(rows)}, or `full`")
    subset = capped_subset(rows, n, task.split["seed"], group_key(task))
    return write_jsonl(out_path, subset)
