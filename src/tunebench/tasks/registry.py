"""Task types: what a task's config may say and how its answers are scored, one module per type.

A type is a `TaskType` subclass registered by name (`@register_task_type`); the task config's `type:`
names it. Config checks, split preparation, few-shot drawing and scoring ask the type instead of
testing its name, so a new type is its own module plus an entry in the task schema's `type` enum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from tunebench.core.errors import ConfigError, article
from tunebench.tasks.parsing import LABEL_PARSERS, PARSERS, EarlyStop

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from tunebench.core.spec import Task
    from tunebench.tasks.prompting import PromptTemplate

NO_ANSWER = "no_answer"  # a wrong answer's kind when the parser found none
TRUNCATED = "truncated"  # a wrong answer whose generation stopped at max_new_tokens


class ItemScores(NamedTuple):
    scores: list[float]  # each item's score, as the score record lists it
    values: dict[str, np.ndarray] | None  # per-item metric values for the bootstrap; None: from label codes
    # metrics that are not a mean of per-item values (AUPR, detection F1): metric -> f(resampled item
    # positions) -> value; the bootstrap resamples them like the others
    statistics: dict[str, Callable[[np.ndarray], float]] | None = None


class TaskType:
    """One kind of task. Subclasses set the class attributes and implement `score_items` and `miss`."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]  # those a task may list (its first is its primary metric)
    default_parser: ClassVar[str]
    parsers: ClassVar[frozenset[str]]  # those a task may choose with `parser:`
    labelled: ClassVar[bool]  # targets come from the task's `labels`: label parsers, `method: loglik`
    stratify: ClassVar[bool]  # splits, train caps and few-shot draws keep the targets' proportions
    # Scoring reads each evaluated item as one row of a polars frame (`cell`): id, target, parsed,
    # output, tokens_out, plus these prepared-row and prediction-row fields (name -> polars dtype).
    item_fields: ClassVar[dict[str, Any]] = {}
    prediction_fields: ClassVar[dict[str, Any]] = {}
    loglik_field: ClassVar[str] = "label_logprobs"  # prediction rows' {answer: log-likelihood} (loglik)

    @property
    def prompt_variables(self) -> dict[str, frozenset[str]]:
        """Variables each part of the prompt template may use."""
        extra = {"labels"} if self.labelled else set()
        return {"system": frozenset(extra), "user": frozenset({"input", *extra}),
                "assistant": frozenset({"target", *extra})}

    def check(self, doc: Mapping, shown: str) -> str:
        """Check a schema-valid task config against this type; return the parser it uses."""
        if self.labelled and "labels" not in doc:
            raise ConfigError(f"{article(self.name)} task needs its label set", file=shown, field="labels",
                              fix="add `labels:` (the answers a target may be)")
        bad = [m for m in doc["metrics"] if m not in self.metrics]
        if bad:
            raise ConfigError(f"metric(s) {', '.join(bad)} do not apply to {article(self.name)} task",
                              file=shown, field="metrics", fix=f"use: {', '.join(sorted(self.metrics))}")
        parser = doc.get("parser") or self.default_parser
        if parser not in self.parsers or (parser in LABEL_PARSERS and not self.labelled):
            problem = (f"parser {parser} needs the task's labels, and {article(self.name)} task has none"
                       if parser in LABEL_PARSERS and not self.labelled
                       else f"parser {parser} does not apply to {article(self.name)} task")
            raise ConfigError(problem, file=shown, field="parser",
                              fix=f"use {' or '.join(sorted(self.parsers))} for {self.name} tasks")
        if doc.get("method") in ("loglik", "constrained") and not self.labelled:
            raise ConfigError(f"method {doc['method']} chooses among a task's labels, and this task has none "
                              f"(type {self.name})", file=shown, field="method",
                              fix=f"remove `method: {doc['method']}` ({self.name} tasks generate)")
        return parser

    def score_items(self, task: Task, cell: pl.DataFrame) -> ItemScores:
        """Each item's score (and the bootstrap's inputs) from the cell's rows, in test order."""
        raise NotImplementedError

    def miss(self, target: str, parsed: str | None) -> str | None:
        """The kind of a wrong answer (NO_ANSWER, or a type's own word); None when it is right."""
        raise NotImplementedError

    def error_class(self, task: Task, item: Mapping[str, Any]) -> str | None:
        """The error class of one scored item (a row of `cell` plus its `score`), None when right:
        TRUNCATED when a wrong answer's generation reached max_new_tokens, else `miss`."""
        kind = self.miss(item["target"], item["parsed"])
        if kind is None:
            return None
        cap = (task.generation or {}).get("max_new_tokens")
        if cap and item.get("tokens_out") is not None and item["tokens_out"] >= cap:
            return TRUNCATED
        return kind

    def parse(self, task: Task, item: Mapping[str, Any], output: str) -> str | None:
        """The answer in one item's output (cut at the stop strings), as the task's parser reads it."""
        return PARSERS[task.parser](output, task.labels)

    def early_stop(self, task: Task, items: Sequence[Mapping[str, Any]]) -> EarlyStop | None:
        """When each item's parsed answer is settled, so generation may end there (parsing.EarlyStop);
        None where `parse` is a type's own (a type that overrides it says when its answers settle)."""
        if type(self).parse is not TaskType.parse:
            return None
        return EarlyStop.build(task.parser, [task.labels] * len(items), (task.generation or {}).get("stop") or [])

    def loglik_answers(self, task: Task, item: Mapping[str, Any], template: PromptTemplate) -> dict[str, str] | None:
        """`method: loglik`: each answer the item may have (as `parsed` records it) -> the assistant's
        turn scored for it; None (the default): the task's labels, the same for every item."""
        return None


T = TypeVar("T", bound=type[TaskType])
_TYPES: dict[str, TaskType] = {}


def register_task_type(cls: T) -> T:
    """Class decorator: make the type known by its `name` (a later registration replaces it)."""
    _TYPES[cls.name] = cls()
    return cls


def unregister_task_type(name: str) -> None:
    _TYPES.pop(name, None)


def task_type(name: str) -> TaskType:
    try:
        return _TYPES[name]
    except KeyError:
        raise KeyError(f"no task type {name!r} is registered (known: {', '.join(sorted(_TYPES))}); "
                       "define it with @register_task_type in tunebench/tasks/") from None


def task_type_names() -> list[str]:
    return sorted(_TYPES)
