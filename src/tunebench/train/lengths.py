"""Will a training example fit `max_length`? Checked at config load, before any job starts, from
the prompt template alone (the training job checks every example exactly with the tokenizer)."""

from __future__ import annotations

import re

from tunebench.core.errors import ConfigError, article
from tunebench.core.spec import Task
from tunebench.tasks.prompting import PromptTemplate

# Byte-pair tokenizers (GPT-2 style, SmolLM2, Llama 3, Qwen) first split text into runs of letters,
# of digits and of other symbols, and never merge across those runs: counting the runs gives a lower
# bound on the token count without loading any tokenizer.
_PRETOKENS = re.compile(r"[^\W\d_]+|\d+|(?:[^\w\s]|_)+")


def check_training_length(task: Task, prompt_spec: dict, training: dict, training_file: str) -> None:
    """A training example longer than `max_length` loses its answer to truncation: stop at load when
    the prompt template alone (with the longest label as the answer, and an empty input) is already
    longer. The training job checks every example exactly with the model's tokenizer."""
    template = PromptTemplate.from_spec(prompt_spec)
    labels = list(task.labels or [])
    longest = max(labels, key=lambda label: len(_PRETOKENS.findall(label)), default="x")
    texts = [m["content"] for m in template.messages({"input": ""}, [], labels)] + [template.answer(longest, labels)]
    at_least = sum(len(_PRETOKENS.findall(text)) for text in texts)
    limit = training.get("max_length", 512)
    if at_least >= limit:
        raise ConfigError(
            f"{article(task.name)} training example is at least {at_least} tokens before its input (prompt "
            f"template {task.prompt_file.name} with {len(labels)} labels), longer than max_length {limit}: "
            "every example would lose its answer", file=training_file, field="max_length",
            fix=f"raise `max_length` to at least {_round_up(at_least * 2)} (the template plus a typical "
                "input), or shorten the prompt template")


def _round_up(n: int, step: int = 64) -> int:
    return -(-n // step) * step
