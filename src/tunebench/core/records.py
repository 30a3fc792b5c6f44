"""The score record: what scoring one cell produces, for a task of the project (`source: task`,
tunebench.predict.score) and for a general benchmark run through lm-eval (`source: benchmark`,
tunebench.benchmarks.score). One type, one schema (configs/schema/score.schema.json); consumers ask
`source`, never the method, which means only how answers were produced (generate or loglik).

The per-item list is kept as plain dicts: a cell may hold 100k items, and the comparisons index
them by column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast

from tunebench.core.atomic import read_json
from tunebench.core.errors import ConfigError
from tunebench.core.schema import check_schema

Source = Literal["task", "benchmark"]
TASK: Source = "task"
BENCHMARK: Source = "benchmark"
SCORE_SCHEMA = "score.schema.json"  # under configs/schema

# The keys of each kind of record, in the order they are written (the files diff as before).
TASK_KEYS = ("source", "system", "model", "adapter", "task", "task_type", "prompting", "shots", "method",
             "parser", "backend", "device", "n", "n_of", "labels", "labels_absent", "primary_metric", "metrics",
             "parse_failures", "errors", "confusions", "items", "timing")
BENCHMARK_KEYS = ("source", "system", "model", "adapter", "task", "kind", "task_type", "prompting", "shots",
                  "parser", "n", "chat_template", "limit", "lm_eval_task", "primary_metric", "metrics",
                  "parse_failures", "unscored", "partial", "items", "timing")  # no method: lm-eval chose it
_LEGACY_BENCHMARK_METHOD = "lm-eval"  # records written before `source` existed marked benchmarks so


def record_source(score: Mapping[str, Any]) -> Source:
    """Where a score (a record, or a baseline's copy of one) came from. Records and baselines
    written before the field existed say it through their method."""
    source = score.get("source")
    if source is not None:
        return cast(Source, source)
    return BENCHMARK if score.get("method") == _LEGACY_BENCHMARK_METHOD else TASK


def upgraded(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A record written before `source` existed, as it is written now."""
    out = dict(doc)
    if "source" not in out:
        source = record_source(out)
        if source == BENCHMARK:
            del out["method"]
        out = {"source": source, **out}
    return out


@dataclass
class ScoreRecord:
    """One scored cell: a system on a task or benchmark at one prompting. `metrics`: per metric its
    value, interval, confidence and resamples (benchmarks add stderr, ci_method, filter and
    lm-eval's own value); `items`: per item its id and score (tasks add target and parsed answer,
    benchmarks each metric's numerator and denominator under `values`)."""

    source: Source
    system: str
    model: str
    adapter: str | None
    task: str
    task_type: str
    prompting: str
    shots: int
    method: str | None  # generate or loglik; a benchmark has none (lm-eval chose per request)
    parser: str | None
    n: int
    primary_metric: str
    metrics: dict[str, dict[str, Any]]
    parse_failures: int
    items: list[dict[str, Any]]
    timing: dict[str, Any]
    # a task's cell
    backend: str | None = None
    device: str | None = None
    n_of: int | None = None  # items in the whole test split (n < n_of: a capped subset)
    labels: list[str] | None = None  # the label set scored against (labelled tasks)
    labels_absent: list[str] | None = None  # a labelled task's labels no evaluated item has
    errors: dict[str, int] = field(default_factory=dict)  # wrong items per error class
    confusions: list[dict[str, Any]] = field(default_factory=list)  # top (target, answer, count)
    # leakage.exclude: the test items left out because a training set touched them ({count, items})
    excluded: dict[str, Any] | None = None
    # a benchmark's run
    kind: str | None = None
    chat_template: bool | None = None
    limit: int | float | None = None
    lm_eval_task: str | None = None
    unscored: dict[str, Any] = field(default_factory=lambda: {"count": 0, "reasons": []})
    partial: dict[str, Any] | None = None

    @property
    def is_benchmark(self) -> bool:
        return self.source == BENCHMARK

    @property
    def unscored_count(self) -> int:
        return int(self.unscored["count"]) if self.is_benchmark else 0

    def to_dict(self) -> dict[str, Any]:
        """The record as written (a task's record has no benchmark keys and vice versa)."""
        out = {key: getattr(self, key) for key in (BENCHMARK_KEYS if self.is_benchmark else TASK_KEYS)}
        if self.excluded is not None:  # leakage.exclude only: every other record is written as before
            out["excluded"] = self.excluded
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ScoreRecord:
        doc = upgraded(doc)
        known = {f.name for f in fields(cls)}
        return cls(**{"method": None, **{k: v for k, v in doc.items() if k in known}})


def check_record(doc: Mapping[str, Any], schema: dict, file: str) -> None:
    """Check a record against the score schema (a ConfigError names the file and field). The schema
    checks the first item; the others need the same fields: jsonschema takes seconds for 100k."""
    items = doc.get("items")
    if not isinstance(items, list) or len(items) < 2:
        check_schema(doc, schema, file)
        return
    check_schema({**doc, "items": items[:1]}, schema, file)
    keys = items[0].keys()
    if all(map(dict.__instancecheck__, items)) and all(map(keys.__eq__, map(dict.keys, items))):
        return  # the common case in C-level loops; the slow loop below only names the first bad item
    for k, item in enumerate(items):
        if not isinstance(item, dict) or item.keys() != keys:
            raise ConfigError(f"item {k} does not have the fields of the first item ({', '.join(keys)})",
                              file=file, field=f"items[{k}]", fix="delete the score file and rerun to rewrite it")


def read_score(path: str | Path, schema: dict) -> ScoreRecord:
    """A score file, checked against the score schema. Records from before `source` existed are
    read as they are written now."""
    doc = upgraded(read_json(path))
    check_record(doc, schema, str(path))
    return ScoreRecord.from_dict(doc)
