"""Continuous batching for the plain greedy loop (`TransformersBackend.generate`).

A decode step reads every weight of the model whatever the number of rows, so a step that serves
the last few rows of a batch costs what a full one does. Here the rows of the next planned batches
join the running one as soon as finished rows leave room (at most `batch_size` rows, and with
`batch_tokens`, rows x (width + max_new_tokens) within that budget): their prompts are prefilled
in groups of `PREFILL_ROWS` and their KV cache joined to the running one, each row left-padded
(masked) between the shared prefix and its own tokens so that every row's next token goes in the
same column. Columns no remaining row attends to are dropped as rows leave. Each row sees the
positions, mask and tokens it sees in `greedy.decode`, so it generates the same tokens; a planned
batch is reported (and journaled by the caller) once its last row has finished.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tunebench.backends import greedy
from tunebench.backends.stop_strings import stop_window, tail_has_stop


@dataclass
class Row:
    number: int  # its planned batch
    slot: int  # its place in that batch
    item: int
    new: list[int] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)


def decode_stream(backend, batches: list[tuple[int, list[int]]], ids: list[list[int]], n_prefix: int,
                  prefix_cache, *, max_new_tokens: int, stop: list[str], eos_ids: set, settled,
                  batch_size: int, batch_tokens: int | None):
    """Greedy decoding of the planned `batches` ([(number, items)], in order), continuously batched.
    Yields (number, each row's new tokens padded after its end, each row's chosen-token log-probs
    or None, seconds since the batch's first row joined) as each batch finishes, like greedy.decode."""
    torch = backend.torch
    tok = backend.tokenizer
    pad = tok.pad_token_id
    finish = greedy.finish_ids(backend, eos_ids)
    window = stop_window(stop)
    groups = deque((number, start, batch[start:start + backend.PREFILL_ROWS])
                   for number, batch in batches for start in range(0, len(batch), backend.PREFILL_ROWS))
    left = {number: len(batch) for number, batch in batches}
    finished: dict[int, list[Row | None]] = {number: [None] * len(batch) for number, batch in batches}
    began: dict[int, float] = {}
    live: list[Row] = []
    state: Any = None  # the running rows' (cache, attention, position, next-token logits)

    def room(items: list[int]) -> bool:
        rows = len(live) + len(items)
        if not live:
            return True  # a planned batch fits the budget on its own
        width = max(state[1].shape[1], max(len(ids[i]) for i in items))
        return rows <= batch_size and (batch_tokens is None or rows * (width + max_new_tokens) <= batch_tokens)

    with torch.inference_mode():
        while groups or live:
            while groups and room(groups[0][2]):
                number, start, items = groups.popleft()
                began.setdefault(number, time.perf_counter())
                joining = greedy.prefill(backend, items, ids, n_prefix, prefix_cache)
                state = joining if not live else greedy.join(torch, [state, joining], n_prefix)
                live += [Row(number, start + k, item) for k, item in enumerate(items)]
            cache, attention, position, logits = state
            scores = logits.float()
            chosen = scores.argmax(dim=-1)
            picked = chosen.tolist()
            logp = ((scores.max(dim=-1).values - torch.logsumexp(scores, dim=-1)).tolist()
                    if backend.logprobs else None)
            keep = []
            for k, row in enumerate(live):
                row.new.append(picked[k])
                if logp is not None:
                    row.steps.append(logp[k])
                done = (picked[k] in finish or len(row.new) >= max_new_tokens
                        or (window and tail_has_stop(tok, row.new[-window:], stop))
                        or (settled is not None and settled(row.item, tok.decode(row.new, skip_special_tokens=True))))
                if not done:
                    keep.append(k)
                    continue
                finished[row.number][row.slot] = row
                left[row.number] -= 1
                if not left[row.number]:
                    rows = finished.pop(row.number)
                    width = max(len(r.new) for r in rows if r is not None)
                    yield (row.number, [r.new + [pad] * (width - len(r.new)) for r in rows if r is not None],
                           [r.steps for r in rows if r is not None] if logp is not None else None,
                           time.perf_counter() - began[row.number])
            if len(keep) < len(live):
                live = [live[k] for k in keep]
                if not live:
                    state = None
                    continue
                index = torch.tensor(keep, device=backend.device)
                cache.batch_select_indices(index)
                attention = greedy.trim(torch, cache, attention[index], n_prefix)
                chosen, position = chosen[index], position[index]
            attention = torch.cat([attention, attention.new_ones(len(live), 1)], dim=1)
            position = position + 1
            out = backend.model(input_ids=chosen[:, None], attention_mask=attention, position_ids=position[:, None],
                                **{backend.cache_arg: cache}, use_cache=True, logits_to_keep=1)
            state = (getattr(out, backend.cache_arg), attention, position, out.logits[:, -1, :])
