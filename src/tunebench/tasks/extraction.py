"""Extraction: the target is free text; SQuAD-style token F1 and exact match per item, the best over
the item's gold `answers` when its rows list them (SQuAD, CUAD).

With `abstain` (e.g. "none") an empty target means the document holds no answer, and the model says
so by writing the abstain text: a parsed answer that normalizes to it, or to nothing, is an
abstention. token_f1 and exact_match are then over the items that have an answer (an abstention
there scores 0), and answer detection is scored, the positive class being "an answer is present"
and the prediction "the model answered": detection_precision, detection_recall, detection_f1 and
aupr, the average precision of each item's `confidence` that an answer is present (the prediction
rows carry it, from the generated tokens' log-probs: `answer_confidence`). An item's own score
(paired tests) is its F1 (or exact match) when it has an answer and 1 for an abstention when it
has none (SQuAD 2.0's per-item score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from tunebench.core.errors import ConfigError
from tunebench.scoring.metrics import (
    DETECTION,
    EXTRACTION,
    Statistic,
    Unavailable,
    average_precision,
    best_item_scores,
    detection_statistics,
    normalize_answer,
    subset_mean,
)
from tunebench.tasks.registry import NO_ANSWER, TRUNCATED, ItemScores, TaskType, register_task_type

if TYPE_CHECKING:
    from tunebench.core.spec import Task

ABSTAINED_WRONGLY = "abstained_wrongly"  # the document holds an answer and the model abstained
ANSWERED_ABSENT = "answered_absent"  # the document holds none and the model answered


def is_answer(parsed: str | None, abstain: str | None) -> bool:
    """Whether a parsed answer claims an answer: not a parse failure, not empty once normalized,
    not the abstain text."""
    if parsed is None:
        return False
    norm = normalize_answer(parsed)
    return bool(norm) and (abstain is None or norm != normalize_answer(abstain))


def answer_confidence(parsed: str | None, logprob: float | None, n_tokens: int | None,
                      abstain: str | None) -> float | None:
    """The model's probability that an answer is present: exp(mean log-prob of the generated
    tokens) when it answered, 1 minus that when it abstained (or wrote nothing parsable); None
    without log-probs."""
    if logprob is None or not n_tokens:
        return None
    p = math.exp(logprob / n_tokens)
    return round(p if is_answer(parsed, abstain) else 1.0 - p, 6)


def gold_answers(item: Mapping[str, Any]) -> list[str]:
    """An item's gold answers: its `answers` when it lists some, else its target (none when empty)."""
    answers = [a for a in (item.get("answers") or []) if a]
    return answers or ([item["target"]] if item.get("target") else [])


@register_task_type
class Extraction(TaskType):
    name = "extraction"
    metrics = EXTRACTION + DETECTION
    default_parser = "first_line"
    parsers = frozenset({"first_line"})
    labelled = False
    stratify = False
    item_fields = {"answers": pl.List(pl.String)}
    # confidence: predict writes it when the task abstains or reads windows; answer_tokens_out: what
    # the chosen window generated (tokens_out adds up all of an item's windows)
    prediction_fields = {"confidence": pl.Float64, "answer_tokens_out": pl.Float64}

    @property
    def prompt_variables(self) -> dict[str, frozenset[str]]:
        variables = super().prompt_variables
        return {**variables, "user": variables["user"] | {"context"}}

    def check(self, doc: Mapping, shown: str) -> str:
        parser = super().check(doc, shown)
        detection = [m for m in doc["metrics"] if m in DETECTION]
        if detection and not doc.get("abstain"):
            raise ConfigError(f"metric(s) {', '.join(detection)} score answer detection, which needs abstention",
                              file=shown, field="metrics",
                              fix="add `abstain:` (what the model writes when there is no answer, e.g. none)")
        window = doc.get("context_window")
        if window is not None:
            if not (doc.get("fields") or {}).get("context"):
                raise ConfigError("context_window cuts the item's document into windows, and the task names "
                                  "no document column", file=shown, field="context_window",
                                  fix="add `fields.context:` (the column with the document), or remove "
                                      "context_window")
            if window.get("stride", 0) >= window["tokens"]:
                raise ConfigError(f"windows of {window['tokens']} words cannot overlap by {window['stride']}",
                                  file=shown, field="context_window.stride",
                                  fix="make stride smaller than tokens (e.g. a quarter of it)")
        return parser

    def score_items(self, task: Task, cell: pl.DataFrame) -> ItemScores:
        # An item's score is its token-F1 when that is the primary metric, else its exact match.
        # Each is a function of the item's (gold, parsed) texts, which repeat: scored once per
        # distinct combination (a million items are a few thousand of them) and spread back.
        keys = cell.select(*self._gold(cell), "parsed").with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"))
        groups = keys.group_by([c for c in keys.columns if c != "_row"], maintain_order=True).agg(pl.col("_row"))
        code = np.empty(cell.height, dtype=np.int64)
        code[groups["_row"].explode().to_numpy()] = np.repeat(np.arange(groups.height), groups["_row"].list.len().to_numpy())
        parsed = groups["parsed"].to_list()
        answers = [gold_answers(item) for item in groups.select(*self._gold(cell)).iter_rows(named=True)]
        scored_by = "token_f1" if task.primary_metric == "token_f1" else "exact_match"
        wanted = [m for m in EXTRACTION if m in task.metrics or m == scored_by]
        values = {m: best_item_scores(answers, parsed, m)[code] for m in wanted}
        if task.abstain is None:
            return ItemScores(values[scored_by].tolist(), values)
        present = np.array([bool(a) for a in answers], dtype=bool)[code]
        answered = np.array([is_answer(p, task.abstain) for p in parsed], dtype=bool)[code]
        for m in wanted:
            values[m] = np.where(answered, values[m], 0.0)  # an abstention gives no answer
        statistics: dict[str, Statistic] = {m: subset_mean(values[m], present) for m in wanted}
        statistics.update(detection_statistics(present, answered))
        statistics["aupr"] = self._aupr(cell, present)
        scores = np.where(present, values[scored_by], (~answered & cell["parsed"].is_not_null().to_numpy()))
        return ItemScores(scores.astype(float).tolist(), {}, statistics)

    @staticmethod
    def _gold(cell: pl.DataFrame) -> list[str]:
        return ["target", "answers"] if "answers" in cell.columns else ["target"]

    @staticmethod
    def _aupr(cell: pl.DataFrame, present: np.ndarray) -> Statistic:
        confidence = cell["confidence"] if "confidence" in cell.columns else pl.Series([None] * cell.height)
        missing = confidence.null_count()
        if missing:
            return Unavailable(f"{missing} of {cell.height} items have no confidence: the backend gave no "
                               "token log-probs")
        return average_precision(present, confidence.to_numpy())

    def error_class(self, task: Task, item: Mapping[str, Any]) -> str | None:
        parsed, answers = item["parsed"], gold_answers(item)
        if task.abstain is not None and parsed is not None:
            answered = is_answer(parsed, task.abstain)
            if not answers:
                return ANSWERED_ABSENT if answered else None
            if not answered:
                return ABSTAINED_WRONGLY
        kinds = [self.miss(gold, parsed) for gold in answers or [""]]
        if None in kinds:
            return None
        kind = "partial" if "partial" in kinds else kinds[0]
        cap = (task.generation or {}).get("max_new_tokens")
        made = item.get("answer_tokens_out") if item.get("answer_tokens_out") is not None else item.get("tokens_out")
        return TRUNCATED if cap and made is not None and made >= cap else kind

    def miss(self, target: str, parsed: str | None) -> str | None:
        if parsed is None:
            return NO_ANSWER
        answer, gold = normalize_answer(parsed).split(), set(normalize_answer(target).split())
        if answer == normalize_answer(target).split():
            return None
        return "partial" if gold & set(answer) else "wrong"
