"""Code: the model writes a program (MBPP: a Python function from the problem's text and its tests);
pass@1 by running the item's own tests on it in the sandbox (scoring/code_check.py).

Prepared rows carry `tests` (assert statements) and `test_setup` (code run first, may be ""); the
target is the reference solution, which the few-shot examples and training show. An item passes when
setup, program and every test run without an error within the task's `execution` limits; a failed
item's error class is syntax, runtime, timeout, assertion (see code_check), no_code (the parser found
nothing) or truncated (any of those, with the generation stopped at max_new_tokens).

Each program runs once: `score_items` keeps its cell's outcomes, keyed by what was run (program,
setup, tests, limits), and `error_class` reads them there; an item it has not seen is run then."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from tunebench.core.errors import DataError
from tunebench.scoring.code_check import check_programs, execution_limits, item_code_problem
from tunebench.scoring.sandbox import SandboxLimits
from tunebench.tasks.registry import TRUNCATED, ItemScores, TaskType, register_task_type

if TYPE_CHECKING:
    from tunebench.core.spec import Task

log = logging.getLogger(__name__)

NO_CODE = "no_code"  # the parser found no program in the output
TIMEOUT_S, MEMORY_MB = 10.0, 512  # a task's `execution:` defaults
MAX_WORKERS = 8  # sandboxes at once, at most one per core (a CPU-bound program must not time out for want of one)

Key = tuple[str, str, tuple[str, ...], SandboxLimits]


def limits_for(task: Task) -> SandboxLimits:
    """The sandbox limits a task's `execution:` sets (timeout_s, memory_mb)."""
    execution = getattr(task, "execution", None) or {}
    return execution_limits(float(execution.get("timeout_s", TIMEOUT_S)), int(execution.get("memory_mb", MEMORY_MB)))


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def _key(item: Mapping[str, Any], limits: SandboxLimits) -> Key:
    return ((item.get("parsed") or "").strip(), item.get("test_setup") or "", tuple(item.get("tests") or ()), limits)


@register_task_type
class Code(TaskType):
    name = "code"
    metrics = ("pass_at_1",)
    default_parser = "code_block"
    parsers = frozenset({"code_block"})
    labelled = False
    stratify = False
    item_fields = {"tests": pl.List(pl.String), "test_setup": pl.String}

    def __init__(self) -> None:
        self._outcomes: dict[Key, str | None] = {}  # the last scored cell's: program run -> error class

    @property
    def prompt_variables(self) -> dict[str, frozenset[str]]:
        variables = super().prompt_variables
        return {**variables, "user": variables["user"] | {"tests"}}

    def run(self, task: Task, items: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """Each item's error class before truncation (None: passed), running each distinct program
        once; a DataError when an item's own setup or tests do not compile."""
        limits = limits_for(task)
        keys = [_key(item, limits) for item in items]
        for item, (_, setup, tests, _) in zip(items, keys):
            problem = item_code_problem(setup, tests) if tests else "it has no tests"
            if problem:
                raise DataError(f"item {item.get('id')!r}: {problem}", file=f"the prepared test split of {task.name}",
                                field="tests", fix="fix the item in the source (or `fields.tests` / "
                                "`fields.test_setup` in the task config), then rerun split_prepare")
        known: dict[Key, str | None] = {key: NO_CODE for key in keys if not key[0]}
        todo = list(dict.fromkeys(key for key in keys if key[0]))
        results = check_programs([(code, tests, setup) for code, setup, tests, _ in todo], limits, workers=_workers())
        known.update({key: result.error for key, result in zip(todo, results)})
        if any(r.network_isolated is False for r in results):
            log.info("%s: the sandbox has no network namespace (not root); programs could reach the network",
                     task.name)
        return [known[key] for key in keys]

    def score_items(self, task: Task, cell: pl.DataFrame) -> ItemScores:
        rows = list(cell.select("id", "parsed", "tests", "test_setup").iter_rows(named=True))
        outcomes = self.run(task, rows)
        limits = limits_for(task)
        self._outcomes = {_key(row, limits): outcome for row, outcome in zip(rows, outcomes)}
        scores = [float(outcome is None) for outcome in outcomes]
        tally = Counter(outcome or "passed" for outcome in outcomes)
        log.info("%s: %s", task.name, ", ".join(f"{n} {kind}" for kind, n in tally.most_common()))
        return ItemScores(scores, {"pass_at_1": np.array(scores, dtype=float)})

    def error_class(self, task: Task, item: Mapping[str, Any]) -> str | None:
        key = _key(item, limits_for(task))
        outcome = self._outcomes[key] if key in self._outcomes else self.run(task, [item])[0]
        if outcome is None:
            return None
        cap = (task.generation or {}).get("max_new_tokens")
        if cap and item.get("tokens_out") is not None and item["tokens_out"] >= cap:
            return TRUNCATED
        return outcome

    def miss(self, target: str, parsed: str | None) -> str | None:
        raise TypeError("a code answer is judged by running its item's tests: use error_class(task, item)")
