"""The log-probs of the tokens a backend generated, summed per answer (Generation.logprob), from
which predict derives a confidence.

transformers: greedy generation picks, at each step, the token with the highest score after the
logits processors. `GreedyLogprobs` is a processor that transformers runs after its own (it appends
the caller's processors to those its generation config makes, and adds the sampling warpers only
when sampling), so it sees the very scores the choice is made from and records
max(log_softmax(scores)) per row: the chosen token's log-prob, what
compute_transition_scores(sequences, output_scores, normalize_logits=True) gives, without keeping a
vocabulary-wide tensor per step. OpenAI-compatible servers: the sum over the `logprobs.content`
entries of a chat completion (or of its streamed chunks).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def greedy_logprobs() -> Any:
    """A fresh logits processor that records each step's chosen-token log-prob (`.table()`:
    rows x steps, on the CPU)."""
    import torch
    from transformers import LogitsProcessor

    class GreedyLogprobs(LogitsProcessor):
        def __init__(self) -> None:
            self.steps: list[Any] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            self.steps.append(scores.max(dim=-1).values - torch.logsumexp(scores, dim=-1))
            return scores

        def table(self) -> Any:
            return torch.stack(self.steps, dim=1).float().cpu() if self.steps else torch.zeros(0, 0)

    return GreedyLogprobs()


def answer_logprob(steps: list[float], n_out: int) -> tuple[float | None, int | None]:
    """(sum, count) over an answer's `n_out` generated tokens; an answer that is only the end of
    its turn (n_out 0) counts that one step, so an empty answer has a probability too."""
    count = n_out if n_out else min(1, len(steps))
    return (round(float(sum(steps[:count])), 5), count) if count else (None, None)


def api_logprob(entries: Iterable[Any] | None) -> tuple[float | None, int | None]:
    """(sum, count) of the `logprob` of an API answer's token entries; (None, None) without any."""
    values = [float(e.logprob) for e in entries or ()]
    return (round(sum(values), 5), len(values)) if values else (None, None)
