"""Continuous batching (tunebench.backends.continuous): the next planned batch's rows join the
running one as finished rows leave, and every row generates what it generates batch by batch."""

from __future__ import annotations

import pytest

from tunebench.tasks.parsing import EarlyStop

LABELS = ["billing", "refund", "cancellation", "shipping_delay", "damaged_item"]
TICKETS = ["charged twice", "where is my parcel, it was due on monday and nothing came", "refund please",
           "the box arrived crushed and the lamp inside is broken in two", "cancel", "hi",
           "I was billed for a plan I never chose", "my order shows delivered but the porch was empty all day",
           "wrong colour", "money back for the broken kettle, thanks", "login", "the courier left it in the rain"]


@pytest.fixture
def backend(tiny_backend):
    return tiny_backend


def prompts(tokenizer) -> list[str]:
    return [tokenizer.apply_chat_template(
        [{"role": "system", "content": "Route the ticket to one of: " + ", ".join(LABELS) + "."},
         {"role": "user", "content": t}], tokenize=False, add_generation_prompt=True) for t in TICKETS]


def passes(backend, monkeypatch) -> list[tuple[int, int]]:
    """(rows, attention width) of every forward pass of the model."""
    seen: list[tuple[int, int]] = []
    real = backend.model.forward

    def counted(*args, **kwargs):
        seen.append(tuple(kwargs["attention_mask"].shape) if "attention_mask" in kwargs else (0, 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(backend.model, "forward", counted)
    return seen


# rows end at the first "e" they write, at different steps; or at "\n" (most run to max_new_tokens)
@pytest.mark.parametrize("stop, early, logprobs, batch_tokens", [
    (["\n", "e"], False, False, None), (["\n", "e"], True, True, None), (["\n", "e"], True, False, 300),
    (["\n"], False, False, None), (["\n"], False, False, 200)])
def test_continuous_batching_generates_what_batch_by_batch_does_in_fewer_passes(
        backend, monkeypatch, stop, early, logprobs, batch_tokens):
    texts = prompts(backend.tokenizer)
    settled = EarlyStop.build("first_label", [LABELS] * len(texts), stop) if early else None
    run = dict(max_new_tokens=10, stop=stop, batch_size=4, batch_tokens=batch_tokens, progress=False,
               settled=settled)
    monkeypatch.setattr(backend, "logprobs", logprobs)
    seen = passes(backend, monkeypatch)
    monkeypatch.setattr(backend, "CONTINUOUS", False)
    alone = backend.generate(texts, **run)
    batch_by_batch = list(seen)
    seen.clear()
    monkeypatch.setattr(backend, "CONTINUOUS", True)
    together = backend.generate(texts, **run)

    assert [(g.text, g.tokens_out, g.tokens_in, g.batch_size) for g in together] == \
           [(g.text, g.tokens_out, g.tokens_in, g.batch_size) for g in alone]
    assert len({g.tokens_out for g in alone}) > 1  # rows do end at different steps
    if logprobs:
        assert all(g.logprob is not None and abs(g.logprob - a.logprob) < 1e-4 for g, a in zip(together, alone))
    # steps that served a few rows now serve the next batch's too (when most rows run to
    # max_new_tokens, as many steps as batch by batch)
    assert len(seen) < len(batch_by_batch) if "e" in stop else len(seen) <= len(batch_by_batch)
    assert max(rows for rows, _ in seen) <= 4  # never more rows than batch_size
    if batch_tokens:  # nor more tokens than the budget: rows x (width + max_new_tokens) when a row joins
        assert max(rows * width for rows, width in seen) <= batch_tokens
    # the padding of rows that left is dropped: no row needs more than its prompt and its answer
    longest = max(len(x) for x in backend.tokenizer(texts, add_special_tokens=False)["input_ids"])
    assert max(width for _, width in seen) <= longest + run["max_new_tokens"]


def test_rows_of_different_lengths_join_a_running_batch_without_the_shared_prefix(backend, monkeypatch):
    """Without a shared prefix, and with rows joining that are longer and shorter than the running
    ones' width, the answers are batch by batch's."""
    texts = [f"{'word ' * n}ticket {n}:" for n in (1, 9, 2, 14, 3, 5, 1, 11)]
    run = dict(max_new_tokens=10, stop=["\n", "e"], batch_size=3, progress=False, share_prefix=False)
    monkeypatch.setattr(backend, "CONTINUOUS", False)
    alone = backend.generate(texts, **run)
    monkeypatch.setattr(backend, "CONTINUOUS", True)
    assert [g.text for g in backend.generate(texts, **run)] == [g.text for g in alone]


def test_the_padding_of_rows_that_left_is_dropped_over_a_long_stream(backend, monkeypatch):
    """Many short rows through three slots, one joining at a time: the running width stays a row's
    prompt and answer, it does not grow with every step of the stream."""
    texts = [f"ticket number {i} of many, answer:" for i in range(30)]
    monkeypatch.setattr(backend, "PREFILL_ROWS", 1)
    seen = passes(backend, monkeypatch)
    out = backend.generate(texts, max_new_tokens=6, stop=["\n", "e"], batch_size=3, progress=False,
                           share_prefix=False)
    steps = len([1 for rows, _ in seen])
    longest = max(len(x) for x in backend.tokenizer(texts, add_special_tokens=False)["input_ids"])
    assert steps > longest + 6  # a stream longer than any row's width
    assert max(width for _, width in seen) <= longest + 6
    assert len(out) == 30
