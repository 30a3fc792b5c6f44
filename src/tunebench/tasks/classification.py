"""Classification: the target is one of the task's `labels`; metrics from the label confusion."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunebench.tasks.registry import NO_ANSWER, ItemScores, TaskType, register_task_type

if TYPE_CHECKING:
    import polars as pl

    from tunebench.core.spec import Task


@register_task_type
class Classification(TaskType):
    name = "classification"
    metrics = ("accuracy", "macro_f1", "weighted_f1")
    default_parser = "first_label"
    parsers = frozenset({"first_label", "label_mention", "first_line"})
    labelled = True
    stratify = True

    def score_items(self, task: Task, cell: pl.DataFrame) -> ItemScores:
        # The bootstrap computes these metrics from label codes, so no per-item values.
        return ItemScores((cell["parsed"] == cell["target"]).fill_null(False).cast(float).to_list(), None)

    def miss(self, target: str, parsed: str | None) -> str | None:
        if parsed == target:
            return None
        return NO_ANSWER if parsed is None else "other_label"
