"""Prompt building: a task's template (prompts/<task>.yaml) + k in-context examples -> chat messages.

In-context examples are drawn from the train split only, once per (task, k, seed): the same
examples precede every test item, so conditions are comparable and the shared prefix can be cached.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import jinja2

from tunebench.tasks.parsing import LETTERS


class Options(list):
    """A multiple-choice item's option texts for the user part: iterated, the texts; `{{ options }}`
    shows them one lettered line each ("A. ...")."""

    def __str__(self) -> str:
        return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(self))


class Tests(list):
    """A code item's test statements for the user part: iterated, the statements; `{{ tests }}`
    shows them one per line."""

    def __str__(self) -> str:
        return "\n".join(self)


def shown_answer(row: dict, answer_format: str = "letter") -> str:
    """What the assistant writes for a row: its target; for a multiple-choice row whose task asks for
    the option's text (answer_format text), the text of the option its letter names."""
    if answer_format == "text" and row.get("options"):
        return row["options"][LETTERS.index(row["target"])]
    return row["target"]


@dataclass(frozen=True)
class PromptTemplate:
    system: str | None
    user: str
    assistant: str
    abstain: str | None = None  # an extraction task's answer for an empty target ("no answer here")

    @classmethod
    def from_spec(cls, spec: dict, abstain: str | None = None) -> PromptTemplate:
        return cls(system=spec.get("system"), user=spec["user"], assistant=spec["assistant"], abstain=abstain)

    def _render(self, text: str, **variables) -> str:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        return env.from_string(text).render(**variables).strip()

    def answer(self, target: str, labels: list[str] | None) -> str:
        """The assistant's turn for a target: an in-context answer, or a training completion (the
        abstain text for an empty target, when the task abstains)."""
        target = target if target or self.abstain is None else self.abstain
        return self._render(self.assistant, target=target, labels=list(labels or []))

    def messages(self, item: dict, shots: list[dict], labels: list[str] | None,
                 answer_format: str = "letter") -> list[dict]:
        """Chat messages for one item: system, then (user, assistant) per shot, then the user turn.
        Each row's user turn shows its own options (multiple choice) or tests (code); `answer_format`:
        the task's."""
        labels = list(labels or [])
        msgs = []
        if self.system:
            msgs.append({"role": "system", "content": self._render(self.system, labels=labels)})

        def user(row: dict) -> dict:
            return {"role": "user", "content": self._render(self.user, input=row["input"], labels=labels,
                                                            options=Options(row.get("options") or []),
                                                            tests=Tests(row.get("tests") or []),
                                                            context=row.get("context") or "")}

        for shot in shots:
            msgs.append(user(shot))
            msgs.append({"role": "assistant", "content": self.answer(shown_answer(shot, answer_format), labels)})
        msgs.append(user(item))
        return msgs


def draw_shots(train: list[dict], k: int, seed: int, task: str, stratify: bool) -> list[dict]:
    """k examples from the training rows, deterministic; distinct labels first when stratified."""
    if k == 0:
        return []
    rng = random.Random(f"{seed}:{task}:{k}")
    pool = sorted(train, key=lambda r: r["id"])
    if not stratify:
        return rng.sample(pool, min(k, len(pool)))
    by_label: dict[str, list[dict]] = {}
    for row in pool:
        by_label.setdefault(row["target"], []).append(row)
    labels = sorted(by_label)
    rng.shuffle(labels)
    shots: list[dict] = []
    while len(shots) < min(k, len(pool)):
        for label in labels:
            if len(shots) == k:
                break
            remaining = [r for r in by_label[label] if r not in shots]
            if remaining:
                shots.append(rng.choice(remaining))
    return shots


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
