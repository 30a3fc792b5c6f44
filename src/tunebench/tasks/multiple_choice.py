"""Multiple choice (MedMCQA-style): each item carries its own `options` (texts, in order) and the
target is the right option's LETTER ("A", "B", ...). The model is asked for the letter or for the
option's text (`answer_format`); the `choice` parser reads either and returns the letter, and with
`method: loglik` each item's own options are scored and the most likely one's letter is the answer.
Metrics: accuracy, and macro-F1 over the letters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunebench.core.errors import ConfigError, DataError
from tunebench.scoring.metrics import NO_ANSWER as NO_CODE
from tunebench.scoring.metrics import classification_rows, confusion_counts, pair_codes
from tunebench.tasks.parsing import LETTERS, EarlyStop, choice
from tunebench.tasks.prompting import shown_answer
from tunebench.tasks.registry import NO_ANSWER, ItemScores, TaskType, register_task_type

if TYPE_CHECKING:
    import polars as pl

    from tunebench.core.spec import Task
    from tunebench.tasks.prompting import PromptTemplate


def _codes(letters: list[str | None]) -> np.ndarray:
    return np.array([LETTERS.index(x) if x and x in LETTERS else NO_CODE for x in letters], dtype=int)


@register_task_type
class MultipleChoice(TaskType):
    name = "multiple_choice"
    metrics = ("accuracy", "macro_f1")
    default_parser = "choice"
    parsers = frozenset({"choice"})
    labelled = False  # the answers are each item's option letters, not a task-wide label set
    stratify = True  # splits and few-shot draws keep the proportions of the right letters
    loglik_field = "option_logprobs"

    @property
    def prompt_variables(self) -> dict[str, frozenset[str]]:
        variables = super().prompt_variables
        return {**variables, "user": variables["user"] | {"options"}}

    def check(self, doc: Mapping, shown: str) -> str:
        if not doc.get("fields", {}).get("options"):
            raise ConfigError("a multiple_choice task needs its items' options", file=shown, field="fields.options",
                              fix="set `fields.options` to the column holding each item's options as a list, "
                                  "or to the option columns in order (e.g. [opa, opb, opc, opd])")
        # `method: loglik` is allowed: it scores each item's own options (no task-wide labels needed)
        return super().check({k: v for k, v in doc.items() if k != "method"}, shown)

    def parse(self, task: Task, item: Mapping[str, Any], output: str) -> str | None:
        return choice(output, item.get("options") or [], prefer=task.answer_format)

    def early_stop(self, task: Task, items: Sequence[Mapping[str, Any]]) -> EarlyStop | None:
        return EarlyStop.build("choice", [item.get("options") or [] for item in items],
                               (task.generation or {}).get("stop") or [], prefer=task.answer_format)

    def loglik_answers(self, task: Task, item: Mapping[str, Any], template: PromptTemplate) -> dict[str, str]:
        """Each option's letter -> the assistant's turn for it: the letter, or the option's text."""
        options = list(item.get("options") or [])
        return {letter: template.answer(shown_answer({"target": letter, "options": options}, task.answer_format),
                                        None) for letter in LETTERS[:len(options)]}

    def score_items(self, task: Task, cell: pl.DataFrame) -> ItemScores:
        y_true, y_pred = _codes(cell["target"].to_list()), _codes(cell["parsed"].to_list())
        if (y_true < 0).any():
            bad = cell["id"][int(np.argmax(y_true < 0))]
            raise DataError(f"{task.name}: item {bad!r} has a target that is no option letter", field="target",
                            fix="rerun the split_prepare rule: prepared multiple_choice targets are letters (A, B, ...)")
        right = (y_true == y_pred).astype(float)
        n_letters = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
        pairs = pair_codes(y_true, y_pred, n_letters)

        def macro_f1(index: np.ndarray) -> float:
            # F1 per letter over the resampled items, averaged over the letters that occur there
            counts = confusion_counts(pairs, n_letters, index[None, :])
            return float(classification_rows(counts, ["macro_f1"], len(index))["macro_f1"][0])

        return ItemScores(right.tolist(), {"accuracy": right}, {"macro_f1": macro_f1})

    def miss(self, target: str, parsed: str | None) -> str | None:
        if parsed == target:
            return None
        return NO_ANSWER if parsed is None else "wrong_option"
