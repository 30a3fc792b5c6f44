"""Raw rows -> prepared rows {id, input, target, meta, + the type's fields}, checked one by one.

The task's `fields` name raw columns: `target` may be a dotted path into a struct (SQuAD's
`answers.text`); an integer target is a ClassLabel index, named by the data's own ClassLabel feature
(the parquet files `datasets` writes carry it) or the task's `label_names`; a list target holds every
gold answer (extraction: `answers`, the first is the target, none means empty). Multiple choice:
`options` (a list column or the option columns in order) and a target that is an index, a letter or
an option's text become the right option's letter. Code: `tests` and `test_setup` travel with the row.
"""

from __future__ import annotations

import math
import string
from typing import Any

import jsonschema

from tunebench.core.errors import DataError
from tunebench.core.spec import Task

LETTERS = string.ascii_uppercase
_MISSING = object()


def column(raw: dict, path: str) -> Any:
    """A raw row's value at a column name or a dotted path into structs (`answers.text`)."""
    if path in raw:
        return raw[path]
    value: Any = raw
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def class_names(task: Task, features: dict) -> list[str] | None:
    """Names of integer targets: the target column's ClassLabel feature, else `label_names`."""
    feature = features.get(task.fields["target"].split(".")[0])
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
        return [str(n) for n in feature["names"]]
    return list(task.label_names) if task.label_names else None


def _need(raw: dict, name: str, key: str, task: Task, where: str, raw_name: str) -> Any:
    value = column(raw, name)
    if value is _MISSING:
        raise DataError(f"{where} has no column {name!r} (the task's `fields.{key}`)", file=raw_name,
                        field=f"fields.{key}", fix=f"point fields.{key} in {task.file.name} at one of: "
                                                   f"{', '.join(map(str, raw))}")
    if value is None or isinstance(value, float) and math.isnan(value):  # NaN: pandas' missing value
        raise DataError(f"{where} has no value in column {name!r} (null or an empty cell; the task's "
                        f"`fields.{key}`)", file=raw_name, field=f"fields.{key}", fix="fill it in or drop that row")
    return value


def _text(value: Any, name: str, key: str, where: str, raw_name: str) -> str:
    """A text field's value: a string or a number, never an object or a list (a wrong column)."""
    if isinstance(value, (dict, list)):
        raise DataError(f"{where} has a {'list' if isinstance(value, list) else 'structure'} in column {name!r} "
                        f"(the task's `fields.{key}`), not text: {str(value)[:60]}", file=raw_name,
                        field=f"fields.{key}", fix=f"point fields.{key} at a text column, or a struct's text "
                                                   f"with a dotted path ({name}.<key>)")
    return str(value)


def _kind(value: Any) -> str:
    return {str: "the text", int: "the number", float: "the number", bool: "the boolean", dict: "the structure"}.get(
        type(value), type(value).__name__)


def _texts(value: Any, name: str, key: str, where: str, raw_name: str) -> list[str]:
    """A list field's value (options, tests): a list of texts (code tests: one string is one test)."""
    if isinstance(value, str) and key == "tests":
        return [value]
    if not isinstance(value, list):
        raise DataError(f"{where} has {_kind(value)} {str(value)[:60]!r} in column {name!r}, not a list "
                        f"(the task's `fields.{key}`)", file=raw_name, field=f"fields.{key}",
                        fix=f"give each row a list there, or list the {key} columns one by one: fields.{key}: [a, b, c]")
    return [_text(v, name, key, where, raw_name) for v in value]


class RowMapper:
    """Maps one task's raw rows (all splits share it, so ids stay unique across them)."""

    def __init__(self, task: Task, row_schema: dict, features: dict | None = None):
        self.task = task
        self.validator = jsonschema.Draft202012Validator(row_schema)
        self.names = class_names(task, features or {})
        self.labels = set(task.labels or ())
        self.seen: dict[str, str] = {}

    def _fail(self, where: str, row_id: str, problem: str, raw_name: str, field: str, fix: str) -> DataError:
        return DataError(f"{where} (id {row_id!r}) {problem}", file=raw_name, field=field, fix=fix)

    def _target(self, value: Any, row: dict, where: str, raw_name: str) -> str:
        task, key = self.task, "fields.target"
        options = row.get("options")
        if isinstance(value, dict):
            _text(value, task.fields["target"], "target", where, raw_name)  # refuses it, naming the column
        if isinstance(value, list):  # every gold answer (SQuAD-style): the first is the target
            row["answers"] = [str(v) for v in value]
            return row["answers"][0] if value else ""
        if isinstance(value, bool) or not isinstance(value, int):
            text = str(value)
            if options is not None:  # a letter, or an option's text
                letter = text.strip().rstrip(".").upper()
                if len(letter) == 1 and letter in LETTERS[:len(options)]:
                    return letter
                if text in options:
                    return LETTERS[options.index(text)]
                raise self._fail(where, row["id"], f"has target {text!r}, neither a letter of its "
                                 f"{len(options)} options nor one of their texts", raw_name, key,
                                 "fix the row, or point fields.target at the answer column")
            return text
        if options is not None:
            if not 0 <= value < len(options):
                raise self._fail(where, row["id"], f"has answer index {value}, outside its {len(options)} "
                                 "options (a split whose answers are withheld, like MedMCQA's test, has -1)",
                                 raw_name, key, "evaluate on a split with answers (e.g. splits.test: the "
                                 "validation files) or fix the row")
            return LETTERS[value]
        if self.names is None:
            return str(value)
        if not 0 <= value < len(self.names):
            raise self._fail(where, row["id"], f"has label index {value}, outside the {len(self.names)} "
                             "label names", raw_name, key, f"fix the row or `label_names` in {task.file.name}")
        return self.names[value]

    def map(self, raw_rows: list[dict], raw_name: str, split: str | None = None,
            places: list[tuple[str, str]] | None = None) -> list[dict]:
        """`places`: each raw row's file and place in it (`line 7`), so a message names that file."""
        task, fields = self.task, self.task.fields
        rows = []
        folder = raw_name
        for i, raw in enumerate(raw_rows):
            where = f"row {i + 1}" + (f" of split {split}" if split else "")
            if places:
                raw_name, place = places[i]
                where = (place if place.startswith("row ") else where if place == f"line {i + 1}"
                         else f"{where} ({place})")
            else:
                raw_name = folder
            f_id = fields["id"]
            if f_id is not None and column(raw, f_id) is _MISSING:
                raise DataError(f"{where} has no id column {f_id!r}", file=raw_name, field="fields.id",
                                fix="set fields.id to an existing column, or to null to number rows")
            text = _need(raw, fields["input"], "input", task, where, raw_name)
            target = _need(raw, fields["target"], "target", task, where, raw_name)
            numbered = f"{task.name}-{split}-{i:06d}" if split else f"{task.name}-{i:06d}"
            row_id = column(raw, f_id) if f_id is not None else numbered
            if row_id is None or isinstance(row_id, (dict, list)):
                raise DataError(f"{where} has {'no id (null)' if row_id is None else f'the id {row_id!r}'} in "
                                f"column {f_id!r}", file=raw_name, field="fields.id",
                                fix="give every row an id (a string or a number), or set fields.id: null to number rows")
            row: dict[str, Any] = {"id": str(row_id), "input": _text(text, fields["input"], "input", where, raw_name)}
            used = {f_id, fields["input"], fields["target"].split(".")[0]}
            if fields.get("options"):
                names = fields["options"]
                row["options"] = (_texts(_need(raw, names, "options", task, where, raw_name), names, "options",
                                         where, raw_name) if isinstance(names, str)
                                  else [_text(_need(raw, n, "options", task, where, raw_name), n, "options", where,
                                              raw_name) for n in names])
                if len(row["options"]) > len(LETTERS):
                    raise DataError(f"{where} has {len(row['options'])} options; answers are the letters A-Z, so at "
                                    f"most {len(LETTERS)}", file=raw_name, field="fields.options",
                                    fix="keep at most 26 options per row (or use type classification with labels)")
                used |= {names} if isinstance(names, str) else set(names)
            row["target"] = self._target(target, row, where, raw_name)
            for key in ("tests", "test_setup", "context"):
                if fields.get(key):
                    value = column(raw, fields[key])
                    if value is _MISSING or (value is None and key != "test_setup"):
                        _need(raw, fields[key], key, task, where, raw_name)
                    row[key] = (_texts(value, fields[key], key, where, raw_name) if key == "tests"
                                else _text(value or "", fields[key], key, where, raw_name))
                    used.add(fields[key])
            meta = {k: v for k, v in raw.items() if k not in used}
            if meta:
                row["meta"] = meta
            self.check(row, where, raw_name)
            rows.append(row)
        return rows

    def check(self, row: dict, where: str, raw_name: str) -> None:
        task = self.task
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(row))
        if error is not None:
            field = ".".join(map(str, error.absolute_path)) or "(row)"
            raise DataError(f"{where} (id {row['id']!r}): {field}: {error.message}", file=raw_name,
                            field=field, fix="fix or drop that row in the raw data")
        if not row["target"] and not task.abstain:
            raise self._fail(where, row["id"], "has an empty target", raw_name, "fields.target",
                             f"fix or drop the row; or, if an empty answer means 'none in this document', set "
                             f"`abstain: none` (the text the model writes then) in {task.file.name}")
        if self.labels and row["target"] not in self.labels:
            raise self._fail(where, row["id"], f"has target {row['target']!r}, which is not in the task's "
                             "label set", raw_name, "labels",
                             f"add it to `labels` in {task.file.name} (or use `labels: auto`) or fix the row")
        if row["id"] in self.seen:
            raise DataError(f"{where} repeats id {row['id']!r} (first seen in {self.seen[row['id']]})",
                            file=raw_name, field="id", fix="make ids unique, or set fields.id: null")
        self.seen[row["id"]] = where
