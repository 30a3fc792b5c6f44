"""Long documents cut into windows of words (an extraction task's `context_window: {tokens, stride}`):
shared by prediction (one inference per window, tunebench.predict.windows) and training (an example
keeps the window that holds its answer, as an in-context example does)."""

from __future__ import annotations

import re

WORD = re.compile(r"\S+")


def split_windows(text: str, size: int, stride: int) -> list[str]:
    """The windows of `text`: `size` words each, overlapping by `stride` words (stride < size); one
    window (the text, stripped) when it has at most `size` words."""
    spans = [m.span() for m in WORD.finditer(text)]
    if len(spans) <= size:
        return [text.strip()]
    out, start = [], 0
    while True:
        end = min(start + size, len(spans))
        out.append(text[spans[start][0]:spans[end - 1][1]])
        if end == len(spans):
            return out
        start += size - stride


def window_shot(row: dict, window: dict) -> dict:
    """An in-context example with its context cut to one window: the first holding its answer."""
    texts = split_windows(row.get("context") or "", window["tokens"], window.get("stride", 0))
    answer = row.get("target") or ""
    return {**row, "context": next((t for t in texts if answer and answer in t), texts[0])}
