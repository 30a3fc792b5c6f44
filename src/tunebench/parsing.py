"""Answer parsers: named filters from raw model output to an answer (as lm-eval's filters are).

Chosen per task (`parser:`), never tuned on test items.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.lower()).strip()


def first_line(output: str, labels=None) -> str | None:
    """The first non-empty line, stripped of quotes and a trailing period."""
    for line in output.splitlines():
        line = line.strip().strip("\"'`. ")
        if line:
            return line
    return None


def first_label(output: str, labels) -> str | None:
    """The label the output names: an exact match of its first line, else the label mentioned
    earliest (longest first on ties, so 'damaged_item' beats 'item'); None if there is none."""
    line = first_line(output) or ""
    normed = {_norm(label): label for label in labels}
    if _norm(line) in normed:
        return normed[_norm(line)]
    text = " " + re.sub(r"[^a-z0-9]+", " ", _norm(output)) + " "
    best = None
    for key, label in normed.items():
        pos = text.find(" " + re.sub(r"[^a-z0-9]+", " ", key) + " ")
        if pos >= 0 and (best is None or (pos, -len(key)) < best[0]):
            best = ((pos, -len(key)), label)
    return best[1] if best else None


PARSERS: dict[str, Callable[..., str | None]] = {
    "first_label": first_label,
    "first_line": first_line,
}
