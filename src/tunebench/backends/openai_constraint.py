"""Answers in the label set for the OpenAI-compatible backend (a model's `constrain`, on a
classification task).

The request carries the labels as a JSON-schema enum, `{"label": <one of the labels>}`, and the
JSON is read back to the label before the task's parser sees it. `json_schema` is OpenAI's form (OpenAI, vLLM, llama.cpp's own
llama-server); `json_object` with a `schema` is llama-cpp-python's (its server answers 500 to
`json_schema`); `auto` tries them in that order. A refusal that names response_format, or answers
that are not a label (a server that ignores the field, as `transformers serve` does), fall back to
free text: logged once, and recorded as `answer_constraint: fallback:<reason>` in the cell's meta
and rows. A refused form is remembered beside the answer cache, so a rerun does not ask again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunebench.core.atomic import read_json, write_json

CONSTRAINTS = ("auto", "json_schema", "json_object", "none")  # a model's `constrain`
FORMS = ("json_schema", "json_object")  # what `auto` tries, in order
# the JSON around the label ({"label": "..."}) costs tokens the task's max_new_tokens does not count
JSON_TOKENS = 16


def label_schema(labels: tuple[str, ...] | list[str]) -> dict:
    # an object, not a bare enum: OpenAI's strict mode wants an object at the root
    return {"type": "object", "properties": {"label": {"type": "string", "enum": list(labels)}},
            "required": ["label"], "additionalProperties": False}


def response_format(form: str, labels: tuple[str, ...] | list[str]) -> dict:
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": label_schema(labels)}}
    return {"type": "json_object", "schema": label_schema(labels)}


def read_label(text: str, labels: tuple[str, ...] | list[str]) -> str | None:
    """The label in a constrained answer, or None when the answer is not one."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    label = doc.get("label") if isinstance(doc, dict) else None
    return label if isinstance(label, str) and label in labels else None


def hold_to_labels(results: list[Any], labels: tuple[str, ...], form: str) -> tuple[list[Any], str]:
    """Each constrained answer (an APIResult) read back to its label, and the cell's answer_constraint:
    `form`, or a fallback naming how many answers were not a label (those are kept as free text)."""
    read = [read_label(r.text, labels) for r in results]
    bad = sum(label is None for label in read)
    held = [replace(r, text=label, answer_constraint=form) if label is not None
            else replace(r, answer_constraint="fallback:not a label") for r, label in zip(results, read)]
    return held, form if not bad else f"fallback:{bad} of {len(results)} answers under {form} are not a label (read as free text)"


def refusal(exc: BaseException) -> str | None:
    """The server's refusal of response_format, in a few words; None for any other failure.
    llama-cpp-python's server answers an unknown response_format type with a 500, so any HTTP error
    status counts when its message names the field."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or status < 400 or status in (408, 429) or "response_format" not in str(exc):
        return None
    message = " ".join(str(exc).split())
    return f"HTTP {status}: {message[:160]}"


class Refusals:
    """The forms an endpoint refused, kept beside the answer cache so a rerun does not ask again."""

    def __init__(self, cache_dir: Path | None, base_url: str, model: str):
        server = hashlib.sha256(f"{base_url} {model}".encode()).hexdigest()[:16]
        self.path = cache_dir / "refused" / f"{server}.json" if cache_dir else None

    def read(self) -> dict[str, str]:
        return read_json(self.path) if self.path is not None and self.path.is_file() else {}

    def add(self, form: str, reason: str) -> None:
        if self.path is not None:  # cells of one model may write at once: each write is whole, the last wins
            write_json(self.path, {**self.read(), form: reason})
