"""Greedy decoding for the transformers backend (`TransformersBackend.generate`), batch by batch.

`decode` is a plain greedy loop that drops a finished row from the batch and its KV cache at once,
so later steps cost what the unfinished rows cost; its prefill runs a batch's prompts in groups of
similar length. `hf_generate` runs transformers' own `generate` instead, for models whose
generation config adds logits processors (a repetition penalty...), which the plain loop does not
apply. Both take the backend (its model, tokenizer, cache argument, logprobs setting) first.
"""

from __future__ import annotations

import logging

from tunebench.backends.token_logprobs import greedy_logprobs

log = logging.getLogger(__name__)

# generation-config fields whose values here leave greedy decoding untouched
NEUTRAL = {"repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0),
           "no_repeat_ngram_size": (None, 0), "encoder_no_repeat_ngram_size": (None, 0),
           "bad_words_ids": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
           "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "sequence_bias": (None,),
           "exponential_decay_length_penalty": (None,), "min_length": (None, 0), "min_new_tokens": (None, 0),
           "guidance_scale": (None, 1.0), "watermarking_config": (None,), "num_beams": (None, 1),
           "penalty_alpha": (None,), "dola_layers": (None,), "cache_implementation": (None,),
           "prefill_chunk_size": (None,), "token_healing": (None, False), "remove_invalid_values": (None, False)}

def plain_greedy(model) -> bool:
    """Whether transformers' greedy generate would pick every token by argmax of the logits alone."""
    config = getattr(model, "generation_config", None)
    return config is not None and all(getattr(config, k, None) in ok for k, ok in NEUTRAL.items())

def prefill(backend, batch: list[int], ids: list[list[int]], n_prefix: int, prefix_cache):
    """The batch's prompts through the model (after the shared prefix), in groups of
    PREFILL_ROWS length-sorted rows each padded only to its own longest; the groups' states are
    then joined (`join`), each row left-padded (masked) to the batch's width between the prefix and
    its own tokens, as one padded batch would hold them. Returns the state: the cache, the
    attention mask, each row's last position and the last position's logits."""
    import copy

    torch = backend.torch
    pad = backend.tokenizer.pad_token_id
    own = [ids[i][n_prefix:] for i in batch]
    step = backend.PREFILL_ROWS if plain_cache(backend) else len(batch)
    states = []
    for start in range(0, len(batch), step):
        rows = own[start:start + step]
        w = max(len(x) for x in rows)
        mask = torch.tensor([[1] * n_prefix + [0] * (w - len(x)) + [1] * len(x) for x in rows], device=backend.device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, n_prefix:]
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(rows))
        out = backend.model(input_ids=torch.tensor([[pad] * (w - len(x)) + x for x in rows], device=backend.device),
                         attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                         **({backend.cache_arg: cache} if cache is not None else {}))
        states.append((getattr(out, backend.cache_arg), mask,
                       torch.tensor([n_prefix + len(x) - 1 for x in rows], device=backend.device),
                       out.logits[:, -1, :]))
    return join(torch, states, n_prefix)


def widen(torch, cache, attention, n_prefix: int, extra: int):
    """`extra` masked columns after the shared prefix (before each row's own tokens) in a plain
    KV cache and its attention mask; returns the mask."""
    if extra <= 0:
        return attention
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name)
            setattr(layer, name, torch.cat([t[:, :, :n_prefix], t.new_zeros(*t.shape[:2], extra, t.shape[3]),
                                            t[:, :, n_prefix:]], dim=2))
    return torch.cat([attention[:, :n_prefix], attention.new_zeros(attention.shape[0], extra),
                      attention[:, n_prefix:]], dim=1)


def join(torch, states: list, n_prefix: int):
    """(cache, attention, position, logits) states of rows as one, in order: each widened to the
    widest (masked padding after the prefix), so that every row's next token goes in the same
    column. The first state's cache object holds the result."""
    if len(states) == 1:
        return states[0]
    width = max(attention.shape[1] for _, attention, _, _ in states)
    masks = [widen(torch, cache, attention, n_prefix, width - attention.shape[1])
             for cache, attention, _, _ in states]
    cache = states[0][0]
    for n, layer in enumerate(cache.layers):
        for name in ("keys", "values"):
            setattr(layer, name, torch.cat([getattr(state[0].layers[n], name) for state in states], dim=0))
    return (cache, torch.cat(masks), torch.cat([state[2] for state in states]),
            torch.cat([state[3] for state in states]))


def trim(torch, cache, attention, n_prefix: int):
    """Drop the columns after the prefix that no row attends to (the padding of rows that left)."""
    used = attention[:, n_prefix:].any(dim=0)
    if bool(used.all()):
        return attention
    columns = torch.cat([torch.arange(n_prefix, device=attention.device),
                         n_prefix + used.nonzero().flatten()])
    for layer in cache.layers:
        for name in ("keys", "values"):
            setattr(layer, name, getattr(layer, name).index_select(2, columns))
    return attention.index_select(1, columns)


def plain_cache(backend) -> bool:
    """Whether the model keeps a plain KV cache (a tensor per layer, no sliding window), which
    prefill can join from groups of rows."""
    if not hasattr(backend, "_plain_cache_known"):
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        try:
            layers = DynamicCache(config=backend.model.config).layers
        except Exception:  # a config the cache cannot read: one group, as generate runs it
            layers = []
        backend._plain_cache_known = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
    return backend._plain_cache_known

def finish_ids(backend, eos_ids: set) -> set:
    """The tokens that end a row: EOS and padding, and the generation config's EOS ids."""
    config = backend.model.generation_config
    return set(eos_ids) | {t for t in ([config.eos_token_id] if isinstance(config.eos_token_id, int)
                                       else config.eos_token_id or []) if t is not None}

def decode(backend, batch: list[int], ids: list[list[int]], n_prefix: int, prefix_cache,
            *, max_new_tokens: int, stop: list[str], eos_ids: set,
            settled) -> tuple[list[list[int]], list | None]:
    """Greedy decoding of one batch, as transformers' generate does it (same positions, mask and
    stopping), except that a finished row leaves the batch: its KV cache rows are dropped, so
    later steps cost what the unfinished rows cost. A row finishes at EOS or padding, a stop
    string, max_new_tokens, or once `settled(item, text)` says its answer can no longer change.
    Returns each row's new tokens (padded after its end) and, with logprobs, each step's
    chosen-token log-prob."""
    from tunebench.backends.stop_strings import new_text_stops

    torch = backend.torch
    tok = backend.tokenizer
    stops = new_text_stops(tok, stop, 0)  # it reads the new tokens alone
    finish = finish_ids(backend, eos_ids)
    live = list(range(len(batch)))  # batch rows still generating, in cache order
    new: list[list[int]] = [[] for _ in batch]
    steps: list[list[float]] | None = [[] for _ in batch] if backend.logprobs else None
    pad = tok.pad_token_id
    with torch.inference_mode():
        cache, attention, position, logits = prefill(backend, batch, ids, n_prefix, prefix_cache)
        for _ in range(max_new_tokens):
            scores = logits.float()
            chosen = scores.argmax(dim=-1)
            picked = chosen.tolist()
            logp = ((scores.max(dim=-1).values - torch.logsumexp(scores, dim=-1)).tolist()
                    if steps is not None else None)
            for k, row in enumerate(live):
                new[row].append(picked[k])
                if steps is not None and logp is not None:
                    steps[row].append(logp[k])
            for row in range(len(batch)):  # finished rows pad, as generate pads them
                if len(new[row]) < len(new[live[0]]):
                    new[row].append(pad)
            stopped = (stops(torch.tensor(new), None).tolist() if stops else [False] * len(batch))
            keep = [k for k, row in enumerate(live) if not (
                stopped[row] or picked[k] in finish or len(new[row]) >= max_new_tokens
                or (settled is not None and settled(batch[row], tok.decode(new[row], skip_special_tokens=True))))]
            if not keep:
                break
            if len(keep) < len(live):
                index = torch.tensor(keep, device=backend.device)
                cache.batch_select_indices(index)
                attention, chosen, position = attention[index], chosen[index], position[index]
                live = [live[k] for k in keep]
            attention = torch.cat([attention, attention.new_ones(len(live), 1)], dim=1)
            position = position + 1
            out = backend.model(input_ids=chosen[:, None], attention_mask=attention, position_ids=position[:, None],
                             **{backend.cache_arg: cache}, use_cache=True, logits_to_keep=1)
            cache, logits = getattr(out, backend.cache_arg), out.logits[:, -1, :]
    width = max(len(x) for x in new)
    return [x + [pad] * (width - len(x)) for x in new], steps

def hf_generate(backend, batch: list[int], ids: list[list[int]], n_prefix: int, prefix_cache,
                 *, max_new_tokens: int, stop: list[str], eos_ids: set,
                 settled) -> tuple[list[list[int]], list | None]:
    """One batch through transformers' generate (its generation config's logits processors
    included); `settled` ends a row as the plain loop does, though the batch runs on until its
    last row ends."""
    from transformers import LogitsProcessorList, StoppingCriteria

    from tunebench.backends.stop_strings import new_text_stops

    torch = backend.torch
    tok = backend.tokenizer
    input_ids, mask, _, cache = backend._batch_inputs(batch, ids, n_prefix, prefix_cache)
    start = len(input_ids[0])
    stops = new_text_stops(tok, stop, start)
    recorder = greedy_logprobs() if backend.logprobs else None

    class Settled(StoppingCriteria):
        def __call__(self, ids, scores, **kwargs):
            rows = ids[:, start:].tolist()
            return torch.tensor([settled(batch[r], tok.decode(
                row[:next((j for j, t in enumerate(row) if t in eos_ids), len(row))], skip_special_tokens=True))
                for r, row in enumerate(rows)], dtype=torch.bool, device=ids.device)

    if settled is not None:
        stops.append(Settled())
    with torch.inference_mode():
        out = backend.model.generate(
            input_ids=torch.tensor(input_ids, device=backend.device),
            attention_mask=torch.tensor(mask, device=backend.device),
            max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
            top_k=None, pad_token_id=tok.pad_token_id,
            # in the generated text only (transformers' stop_strings also match across the prompt)
            stopping_criteria=stops,
            **({backend.cache_arg: cache} if cache is not None else {}),
            **({"logits_processor": LogitsProcessorList([recorder])} if recorder else {}),
        )
    return out[:, start:].tolist(), recorder.table().tolist() if recorder else None

