"""Plan-time bounds on a local task's data that need the whole run (its models, what it fine-tunes):
rows far longer than any of the run's models can read, labels no answer can hold, train sizes larger
than the train split. `data.prepare.check_local_source` reads the files once and leaves a summary here
(`remember`); the loader calls `check_local_plans` when the models are known.

Lengths are in characters against a bound no tokenizer goes below: a token of the models' vocabularies
rarely covers more than 4-5 characters of real text, and none averages more than CHARS_PER_TOKEN over a
long text, so a row refused here cannot fit; a row that merely might not fit is left to the prediction
job, which counts its tokens exactly (backends.base.check_lengths).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from tunebench.core.errors import ConfigError, DataError
from tunebench.core.spec import Model, Task
from tunebench.tasks import task_type

CHARS_PER_TOKEN = 24  # a conservative upper bound of characters per token (real text: about 4)
AUTO_LABELS_MAX = 1000  # more distinct targets than this, nearly one per row: a text column, not labels


@dataclass
class Longest:
    chars: int = 0
    file: str = ""
    place: str = ""
    row_id: str = ""

    def offer(self, chars: int, file: str, place: str, row_id: str) -> None:
        if chars > self.chars:
            self.chars, self.file, self.place, self.row_id = chars, file, place, row_id


@dataclass
class Summary:
    train_rows: int
    text: Longest = field(default_factory=Longest)  # input, options, context (unless read in windows)
    target: Longest = field(default_factory=Longest)


_SUMMARIES: dict[int, tuple[weakref.ref, Summary]] = {}


def summarize(task: Task, prepared: dict[str | None, list[dict]], places: dict[str | None, list[tuple[str, str]]],
              train_rows: int, data_name: str) -> Summary:
    """The longest input and target of a task's prepared rows (and where they sit); refuses `labels:
    auto` over a column of free text."""
    whole_context = bool(task.fields.get("context")) and not task.context_window
    summary = Summary(train_rows=train_rows)
    targets: set[str] = set()
    n = 0
    for split, rows in prepared.items():
        where = places.get(split) or [(data_name, f"row {i + 1}") for i in range(len(rows))]
        for row, (file, place) in zip(rows, where):
            chars = (len(row["input"]) + sum(map(len, row.get("options") or ()))
                     + (len(row.get("context") or "") if whole_context else 0))
            summary.text.offer(chars, file, place, row["id"])
            summary.target.offer(len(row["target"]), file, place, row["id"])
            targets.add(row["target"])
            n += 1
    if task.auto_labels and task_type(task.type).labelled and len(targets) > AUTO_LABELS_MAX and len(targets) > 0.9 * n:
        raise DataError(f"`labels: auto` finds {len(targets):,} distinct targets in {n:,} rows (column "
                        f"{task.fields['target']!r}): that is free text, not a label set", file=data_name,
                        field="fields.target", fix=f"point fields.target in {task.file.name} at the label column, "
                                                   "or use type extraction for free-text answers")
    return summary


def remember(task: Task, summary: Summary) -> None:
    _SUMMARIES[id(task)] = (weakref.ref(task), summary)


def _recall(task: Task) -> Summary | None:
    ref, summary = _SUMMARIES.get(id(task), (None, None))
    return summary if ref is not None and ref() is task else None


def check_local_plans(tasks: dict[str, Task], models: dict[str, Model], config: dict, suite_name: str,
                      config_file: str) -> None:
    """Every local task's data against the run: rows and labels no model of the run can take, train
    sizes beyond the train split of a task it fine-tunes."""
    suite_sizes = config["suites"][suite_name].get("train_sizes")
    trains = any(m.trainable for m in models.values())
    for name, task in tasks.items():
        summary = _recall(task)
        if summary is None:
            continue
        if models:
            _check_lengths(task, summary, models)
        if trains and name in config["finetune"]["tasks"]:
            sizes = suite_sizes if suite_sizes is not None else task.train_sizes
            too_big = [s for s in sizes if isinstance(s, int) and s > summary.train_rows]
            if too_big:
                where = (config_file, f"suites.{suite_name}.train_sizes") if suite_sizes is not None \
                    else (str(task.file), "train_sizes")
                raise ConfigError(f"train size {too_big[0]} of task {name} is more than its {summary.train_rows} "
                                  "training rows (after the val and test splits)", file=where[0], field=where[1],
                                  fix=f"use sizes up to {summary.train_rows}, or `full`; or add rows to the data")


def _check_lengths(task: Task, summary: Summary, models: dict[str, Model]) -> None:
    widest = max(models.values(), key=lambda m: m.max_input_tokens)
    limit = widest.max_input_tokens * CHARS_PER_TOKEN
    bound = (f"the run's widest model, {widest.name}, reads {widest.max_input_tokens:,} tokens (max_input_tokens), "
             f"about {limit:,} characters at the most")
    text = summary.text
    if text.chars > limit:
        context = task.fields.get("context") and not task.context_window
        what = f"input{' and context' if context else ' and options' if task.fields.get('options') else ''}"
        fix = ("shorten or drop that row (or cut the document into several rows)" if not context else
               f"read the document in windows: set `context_window: {{tokens: 512, stride: 64}}` in "
               f"{task.file.name}; or shorten that row")
        raise DataError(f"{text.place} (id {text.row_id!r}): its {what} is {text.chars:,} characters, far more than "
                        f"any model of the run can read: {bound}", file=text.file,
                        field=f"fields.{'context' if context else 'input'}", fix=fix)
    target = summary.target
    kind = task_type(task.type)
    generates = task.method == "generate" or "generate" in task.methods
    if kind.labelled and generates:
        room = task.generation.get("max_new_tokens", 16)
        if target.chars > room * CHARS_PER_TOKEN:
            raise DataError(f"{target.place} (id {target.row_id!r}): its label is {target.chars:,} characters, more "
                            f"than an answer of generation.max_new_tokens={room} tokens can hold", file=target.file,
                            field="fields.target", fix=f"point fields.target in {task.file.name} at the label column, "
                                                       "shorten the labels, or raise generation.max_new_tokens")
    elif target.chars > limit:
        raise DataError(f"{target.place} (id {target.row_id!r}): its target is {target.chars:,} characters, far more "
                        f"than any model of the run can read or write: {bound}", file=target.file,
                        field="fields.target", fix="shorten or drop that row, or point fields.target at the answer column")
