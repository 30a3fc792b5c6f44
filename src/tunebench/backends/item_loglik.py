"""Log-likelihoods of each item's OWN answers with transformers (a multiple-choice item's options,
whose number and texts differ from item to item), in one forward pass per batch.

The same construction as `TransformersBackend.score_continuations` (the shared-answers path, which
this leaves alone): a batch's rows hold each item's tokens after the shared prefix (its KV cache
computed once), then that item's answers side by side, padded to the batch's longest answer block;
a 4-D attention mask lets every answer see its prompt and its own earlier tokens only, and its
positions start where the prompt ends, so each answer is scored as if it were alone after the prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunebench.backends.base import Scored, check_lengths
from tunebench.core.errors import ConfigError

if TYPE_CHECKING:
    from tunebench.backends.transformers_backend import TransformersBackend


def score_item_continuations(backend: TransformersBackend, prompts: list[str], continuations: list[list[str]], *,
                             batch_size: int, batch_tokens: int | None = None, progress: bool = True,
                             desc: str = "score", share_prefix: bool = True, journal: str | Path | None = None,
                             stall_timeout_s: float | None = None) -> list[Scored]:
    """Log-likelihood of each of prompt i's continuations `continuations[i]`, in their order."""
    if not prompts:
        return []
    torch, tok = backend.torch, backend.tokenizer
    conts = [[tok(c, add_special_tokens=False)["input_ids"] for c in own] for own in continuations]
    if any(not own or any(not c for c in own) for own in conts):
        raise ConfigError("an item has no answers to score, or an answer renders to no tokens",
                          field="options", fix="give every item non-empty options")
    totals = [sum(len(c) for c in own) for own in conts]
    ids, lengths, n_prefix, prefix_cache = backend._prepare(prompts, share_prefix, 0)
    check_lengths([n + max(len(c) for c in own) for n, own in zip(lengths, conts)], backend.max_input_tokens)
    # per item: where each answer starts in its block, its tokens flat, and their relative positions
    offsets = [[sum(len(c) for c in own[:j]) for j in range(len(own))] for own in conts]
    flats = [[t for c in own for t in c] for own in conts]
    rels = [[t for c in own for t in range(len(c))] for own in conts]

    def make(batch: list[int]) -> list[Scored]:
        input_ids, mask, width, cache = backend._batch_inputs(batch, ids, n_prefix, prefix_cache)
        rows, total = len(batch), max(totals[i] for i in batch)
        query = torch.tensor([r[n_prefix:] + flats[i] + [tok.pad_token_id] * (total - totals[i])
                              for r, i in zip(input_ids, batch)], device=backend.device)
        keys = n_prefix + width + total
        prompt_mask = torch.tensor(mask, dtype=torch.bool)  # (rows, n_prefix + width)
        full = torch.zeros(rows, 1, width + total, keys, dtype=torch.bool)
        full[:, 0, :width, :n_prefix + width] = prompt_mask[:, None, :]
        full[:, 0, :width, n_prefix:n_prefix + width] &= torch.tril(torch.ones(width, width, dtype=torch.bool))
        full[:, 0, width:, :n_prefix + width] = prompt_mask[:, None, :]  # block padding sees the prompt only
        rel = torch.zeros(rows, total, dtype=torch.long)
        for row, i in enumerate(batch):
            for a, c in zip(offsets[i], conts[i]):  # answer j sees its own earlier tokens
                at = n_prefix + width + a
                full[row, 0, width + a:width + a + len(c), at:at + len(c)] = torch.tril(
                    torch.ones(len(c), len(c), dtype=torch.bool))
            rel[row, :totals[i]] = torch.tensor(rels[i])
        pad = ~prompt_mask[:, n_prefix:]  # a padding query attends to itself only (no empty row)
        diag = torch.arange(width)
        full[:, 0, diag, n_prefix + diag] |= pad
        pos_prompt = (prompt_mask.long().cumsum(1) - 1).clamp(min=0)[:, n_prefix:]
        position_ids = torch.cat([pos_prompt, prompt_mask.sum(1)[:, None] + rel], dim=1)
        # token t of an answer is predicted by the prompt's last position (t = 0) or by the answer's
        # own previous token: only the positions some row needs get logits
        srcs = [[width - 1 if t == 0 else width + a + t - 1 for a, c in zip(offsets[i], conts[i])
                 for t in range(len(c))] for i in batch]
        keep = sorted({q for src in srcs for q in src})
        at_keep = {q: k for k, q in enumerate(keep)}
        logp, elapsed = backend.kept_logprobs(query, full, position_ids, cache, keep)
        results = []
        for row, i in enumerate(batch):
            where = torch.tensor([at_keep[q] for q in srcs[row]])
            picked = logp[row, where, :].gather(1, torch.tensor(flats[i])[:, None])[:, 0]
            sums = [round(float(picked[a:a + len(c)].sum()), 5) for a, c in zip(offsets[i], conts[i])]
            results.append(Scored(logprobs=sums, tokens_in=lengths[i], latency_s=round(elapsed, 4), batch_size=rows))
        return results

    return backend._batches(len(prompts), lengths, batch_size=batch_size, batch_tokens=batch_tokens,
                            extra_tokens=max(totals, default=0), key=[prompts, continuations, n_prefix, "loglik"],
                            make=make, progress=progress, desc=desc, journal=journal,
                            stall_timeout_s=stall_timeout_s, result_type=Scored)


def score_side_by_side(backend: TransformersBackend, prompts: list[str], continuations: list[str], *, batch_size: int,
                        batch_tokens: int | None = None, progress: bool = True, desc: str = "score",
                        share_prefix: bool = True, journal: str | Path | None = None,
                        stall_timeout_s: float | None = None) -> list[Scored]:
    """Log-likelihood of each continuation (the same ones for every prompt: a task's labels)
    after each prompt, in one forward pass per batch.

    A batch's rows hold each item's own tokens (after the shared prefix, whose KV cache is
    computed once) followed by all continuations side by side; a 4-D attention mask lets every
    continuation see the prompt and its own earlier tokens only, and its positions start where
    the prompt ends, so each continuation is scored exactly as if it were alone after the prompt.
    """
    torch = backend.torch
    tok = backend.tokenizer
    conts = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
    if any(not c for c in conts):
        raise ConfigError("a label renders to no tokens", field="labels", fix="use non-empty labels")
    total = sum(len(c) for c in conts)
    ids, lengths, n_prefix, prefix_cache = backend._prepare(prompts, share_prefix, max(len(c) for c in conts))
    # where each continuation's tokens sit in the continuation block, and their relative positions
    offsets: list[int] = []
    rel: list[int] = []
    for c in conts:
        offsets.append(len(rel))
        rel += list(range(len(c)))
    cont_flat = [t for c in conts for t in c]
    block = torch.zeros(total, total, dtype=torch.bool)  # continuation j sees its own earlier tokens
    for j, c in enumerate(conts):
        a = offsets[j]
        block[a:a + len(c), a:a + len(c)] = torch.tril(torch.ones(len(c), len(c), dtype=torch.bool))

    def make(batch: list[int]) -> list[Scored]:
        input_ids, mask, width, cache = backend._batch_inputs(batch, ids, n_prefix, prefix_cache)
        rows = len(batch)
        query = torch.tensor([r[n_prefix:] + cont_flat for r in input_ids], device=backend.device)
        keys = n_prefix + width + total
        prompt_mask = torch.tensor(mask, dtype=torch.bool)  # (rows, n_prefix + width)
        full = torch.zeros(rows, 1, width + total, keys, dtype=torch.bool)
        causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
        full[:, 0, :width, :n_prefix + width] = prompt_mask[:, None, :]
        full[:, 0, :width, n_prefix:n_prefix + width] &= causal
        full[:, 0, width:, :n_prefix + width] = prompt_mask[:, None, :]
        full[:, 0, width:, n_prefix + width:] = block
        pad = ~prompt_mask[:, n_prefix:]  # a padding query attends to itself only (no empty row)
        diag = torch.arange(width)
        full[:, 0, diag, n_prefix + diag] |= pad
        seen = prompt_mask.sum(1)  # each item's prompt length, so its first own position
        pos_prompt = (prompt_mask.long().cumsum(1) - 1).clamp(min=0)[:, n_prefix:]
        pos_cont = seen[:, None] + torch.tensor(rel)[None, :]
        position_ids = torch.cat([pos_prompt, pos_cont], dim=1)
        # token t of continuation j is predicted by the prompt's last position (t = 0) or by
        # the continuation's own previous token: only those positions get logits
        src = [width - 1 if t == 0 else width + offsets[j] + t - 1 for j, c in enumerate(conts) for t in range(len(c))]
        keep = sorted(set(src))
        where = torch.tensor([keep.index(q) for q in src])
        logp, elapsed = backend.kept_logprobs(query, full, position_ids, cache, keep)
        picked = logp[:, where, :].gather(2, torch.tensor(cont_flat).expand(rows, -1)[..., None])[..., 0]
        results = []
        for row, i in enumerate(batch):
            sums = [round(float(picked[row, offsets[j]:offsets[j] + len(c)].sum()), 5)
                    for j, c in enumerate(conts)]
            results.append(Scored(logprobs=sums, tokens_in=lengths[i], latency_s=round(elapsed, 4),
                                  batch_size=rows))
        return results

    return backend._batches(len(prompts), lengths, batch_size=batch_size, batch_tokens=batch_tokens,
                         extra_tokens=total, key=[prompts, continuations, n_prefix, "loglik"], make=make,
                         progress=progress, desc=desc, journal=journal, stall_timeout_s=stall_timeout_s,
                         result_type=Scored)
