"""Stop strings matched in the generated text only.

transformers' own `stop_strings` (StopStringCriteria) also matches a stop string that begins in the
prompt: a prompt ending in "\\n" and the stop "\\n#" end a row whose answer starts with "#" after one
token. The text is then cut where no stop string occurs, so the answer is lost. lm-eval's stop
criterion (and tunebench's cut at the stop) look at the generated text alone; so does this one.
"""

from __future__ import annotations


def new_text_stops(tokenizer, stops: list[str], prompt_width: int):
    """A StoppingCriteriaList that ends each row once the text it generated after the first
    `prompt_width` positions contains one of `stops` (empty without stops)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    stops = [s for s in stops if s]
    if not stops:
        return StoppingCriteriaList()
    window = stop_window(stops)

    class NewTextStops(StoppingCriteria):
        def __init__(self):
            self.done: torch.Tensor | None = None

        def __call__(self, input_ids, scores, **kwargs):
            if self.done is None:
                self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            tails = input_ids[:, max(prompt_width, input_ids.shape[1] - window):].tolist()
            for row, tail in enumerate(tails):
                if not self.done[row]:
                    self.done[row] = tail_has_stop(tokenizer, tail, stops)
            return self.done.clone()

    return StoppingCriteriaList([NewTextStops()])


def stop_window(stops: list[str]) -> int:
    """Tokens at the end of a row that can hold a stop string's last occurrence: every token holds
    at least one byte, so the stop's length in bytes, plus one (0 without stops)."""
    stops = [s for s in stops if s]
    return max(len(s.encode("utf-8")) for s in stops) + 1 if stops else 0


def tail_has_stop(tokenizer, tail: list[int], stops: list[str]) -> bool:
    """Whether the text of a row's last `stop_window(stops)` new tokens contains a stop string."""
    text = tokenizer.decode(tail, skip_special_tokens=True)
    return any(s in text for s in stops if s)
