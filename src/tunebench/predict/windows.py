"""Long documents in windows (an extraction task's `context_window: {tokens, stride}`).

A document longer than one window (CUAD's contracts) is cut into windows of `tokens` whitespace-
separated *words* (not model tokens: every backend, an API included, cuts the same windows), each
sharing `stride` words with the one before, the last reaching the document's end; a window is the
document's own text from its first word to its last, line breaks kept. Each window is one
inference (the prompt variable `context` is the window's text); per question, the answer is the
most confident non-empty one over its windows, else the abstention. Rows record `windows` (how
many the item had) and `window` (the chosen one, from 0), and the meta the count per item.

In-context examples keep one window of their own document: the first that holds their answer
(else the first), so a shot costs one window, not a contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tunebench.tasks.extraction import answer_confidence, is_answer
from tunebench.tasks.prompting import prompt_hash
from tunebench.tasks.windows import split_windows, window_shot  # noqa: F401 (window_shot: re-exported)

if TYPE_CHECKING:
    from tunebench.backends import Generation
    from tunebench.core.spec import Task

def window_items(items: list[dict], window: dict) -> tuple[list[dict], list[int]]:
    """One item per window of each item's `context` (the item itself, its context replaced by the
    window), and for each the position of the item it came from."""
    out, owner = [], []
    for n, item in enumerate(items):
        for text in split_windows(item.get("context") or "", window["tokens"], window.get("stride", 0)):
            out.append({**item, "context": text})
            owner.append(n)
    return out, owner


def _total(values: Sequence[float | None]) -> float | None:
    """The sum, or None when any is unknown (an endpoint that reports no usage)."""
    return None if any(v is None for v in values) else round(sum(v or 0 for v in values), 4)


def merge_windows(rows: list[dict], owner: list[int], abstain: str | None) -> list[dict]:
    """One row per item from its windows' rows (in window order). The chosen window: the most
    confident one that answered, else the most confident of those that abstained (the one most
    likely to hold an answer), else the first; without confidences, the first that answered. The
    item's confidence that its document holds an answer is the largest over its windows; tokens
    and latency add up over the windows (what the item cost); the rest is the chosen window's."""
    groups: dict[int, list[dict]] = {}
    for n, row in zip(owner, rows):
        groups.setdefault(n, []).append(row)
    merged = []
    for n in sorted(groups):
        group = groups[n]
        confidences = [r.get("confidence") for r in group]
        known = None not in confidences
        rank = [c if known and c is not None else -k for k, c in enumerate(confidences)]  # else: the first
        answered = [k for k, r in enumerate(group) if is_answer(r["parsed"], abstain)]
        parsed = [k for k, r in enumerate(group) if r["parsed"] is not None]
        chosen = max(answered or parsed or [0], key=lambda k: (rank[k], -k))
        row = dict(group[chosen])
        row.update({
            "prompt_hash": prompt_hash("".join(r["prompt_hash"] for r in group)),
            "latency_s": _total([r["latency_s"] for r in group]),
            "tokens_in": _total([r["tokens_in"] for r in group]),
            "tokens_out": _total([r["tokens_out"] for r in group]),
            "confidence": max(c for c in confidences if c is not None) if known else None,
            "windows": len(group), "window": chosen, "answer_tokens_out": group[chosen]["tokens_out"],
        })
        merged.append(row)
    return merged


def windows_meta(owner: list[int], window: dict) -> dict:
    """What the meta file says about the windows: their size, the inferences, per item mean and max."""
    counts: dict[int, int] = {}
    for n in owner:
        counts[n] = counts.get(n, 0) + 1
    per_item = list(counts.values())
    return {"unit": "words", "tokens": window["tokens"], "stride": window.get("stride", 0),
            "inferences": len(owner),
            "per_item_mean": round(sum(per_item) / len(per_item), 3) if per_item else None,
            "per_item_max": max(per_item, default=None)}


def wants_confidence(task: Task) -> bool:
    """An extraction task that abstains or reads windows: its rows carry a confidence."""
    return task.abstain is not None or task.context_window is not None


def window_cell(task: Task, items: list[dict], shots: list[dict]) -> tuple[list[dict], list[dict], list[int] | None]:
    """The items and shots a cell runs: with `context_window`, one item per window (and which item
    each came from) and each shot cut to one window; otherwise as they are (and None)."""
    if task.context_window is None:
        return items, shots, None
    windowed, owner = window_items(items, task.context_window)
    return windowed, [window_shot(s, task.context_window) for s in shots], owner


def finish_rows(task: Task, rows: list[dict], outputs: list[Generation], owner: list[int] | None) -> list[dict]:
    """Each row's `logprob` and `confidence` (when the task wants one), then one row per item from
    its windows' rows (when it has windows)."""
    if not wants_confidence(task):
        return rows
    for row, out in zip(rows, outputs):
        row["logprob"] = out.logprob
        row["confidence"] = answer_confidence(row["parsed"], out.logprob, out.logprob_tokens or out.tokens_out,
                                              task.abstain)
    return rows if owner is None else merge_windows(rows, owner, task.abstain)
