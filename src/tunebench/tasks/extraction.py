"""Extraction: the target is free text; SQuAD-style token-F1 and exact match per item."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunebench.scoring.metrics import EXTRACTION, item_scores, normalize_answer
from tunebench.tasks.parsing import LABEL_PARSERS, PARSERS
from tunebench.tasks.registry import NO_ANSWER, ItemScores, TaskType, register_task_type

if TYPE_CHECKING:
    import polars as pl

    from tunebench.core.spec import Task


@register_task_type
class Extraction(TaskType):
    name = "extraction"
    metrics = EXTRACTION
    default_parser = "first_line"
    parsers = frozenset(PARSERS) - LABEL_PARSERS
    labelled = False
    stratify = False

    def score_items(self, task: Task, cell: pl.DataFrame) -> ItemScores:
        # An item's score is its token-F1 when that is the primary metric, else its exact match.
        targets, parsed = cell["target"].to_list(), cell["parsed"].to_list()
        scored_by = "token_f1" if task.primary_metric == "token_f1" else "exact_match"
        values = {m: item_scores(targets, parsed, m) for m in dict.fromkeys([*task.metrics, scored_by])}
        return ItemScores(values[scored_by].tolist(), values)

    def miss(self, target: str, parsed: str | None) -> str | None:
        if parsed is None:
            return NO_ANSWER
        answer, gold = normalize_answer(parsed).split(), set(normalize_answer(target).split())
        if answer == normalize_answer(target).split():
            return None
        return "partial" if gold & set(answer) else "wrong"
