"""Batching helpers for the transformers backend: length-sorted batches under a token budget, the
shared prompt prefix whose KV cache is computed once, and the name the model takes its cache under."""

from __future__ import annotations


def plan_batches(order: list[int], lengths: list[int], *, batch_size: int, batch_tokens: int | None,
                 extra_tokens: int) -> list[list[int]]:
    """Consecutive batches of the length-sorted `order`: at most `batch_size` items, and with
    `batch_tokens`, at most that many tokens (rows x (longest prompt + extra_tokens)) each; an
    item longer than the budget goes alone."""
    batches: list[list[int]] = []
    for i in order:
        if batches:
            last = batches[-1]
            rows = len(last) + 1
            longest = max(lengths[i], max(lengths[j] for j in last))
            if rows <= batch_size and (batch_tokens is None or rows * (longest + extra_tokens) <= batch_tokens):
                last.append(i)
                continue
        batches.append([i])
    return batches


def cache_argument(model) -> str:
    """The name under which `model`'s forward pass, and so `generate`, takes a KV cache, and its
    output returns one. transformers 5.0 knows only `past_key_values`; later 5.x releases renamed it
    `cache` and warn (FutureWarning) when `past_key_values` is passed: the forward pass drops it in
    5.40, `generate` in 6.0. The pinned range is transformers>=5.0,<6, so the name is read once from
    the signature of the model's forward (`generate` hands its cache to it under the same name)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


MIN_SHARED_PREFIX = 32  # below this, reusing a prefix cache is not worth the copy


def shared_prefix_length(ids: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each prompt at least one token of its own."""
    first = ids[0]
    n = min(len(x) for x in ids) - 1
    for other in ids[1:]:
        j = 0
        while j < n and other[j] == first[j]:
            j += 1
        n = j
    return max(n, 0)
