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
    # every token holds at least one byte: the tokens that can overlap a stop string, plus one
    window = max(len(s.encode("utf-8")) for s in stops) + 1

    class NewTextStops(StoppingCriteria):
        def __init__(self):
            self.done: torch.Tensor | None = None

        def __call__(self, input_ids, scores, **kwargs):
            if self.done is None:
                self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            tails = input_ids[:, max(prompt_width, input_ids.shape[1] - window):].tolist()
            for row, tail in enumerate(tails):
                if not self.done[row]:
                    text = tokenizer.decode(tail, skip_special_tokens=True)
                    self.done[row] = any(s in text for s in stops)
            return self.done.clone()

    return StoppingCriteriaList([NewTextStops()])
