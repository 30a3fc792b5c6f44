"""Early stopping: a generation ends as soon as its parsed answer can no longer change
(tasks.parsing.EarlyStop), and then parses exactly as a run to the stop string or max_new_tokens."""

from __future__ import annotations

import random

import pytest

from tunebench.predict.generate import cut_at_stop
from tunebench.tasks.parsing import EarlyStop, choice, first_label, first_line

LABELS = ["billing", "refund", "cancellation", "shipping_delay", "damaged_item", "wrong_item", "login_problem",
          "address_change", "product_question", "technical_issue"]
# labels that extend one another, one with punctuation of its own
NESTED = ["item", "item_missing", "missing", "card payment?", "card"]


@pytest.mark.parametrize("text, settled", [
    ("I'm sorry to hear", True),          # no label starts so, and an apostrophe rules out a lead-in
    ("Sure, here", True),
    ("The customer", False),              # may yet be a two-word lead-in: "The customer: billing"
    ("The customer is", True),            # three words: no lead-in, no label
    ("bill", False),                      # a label's prefix
    ("billing", False),                   # a label, but "billing issue" would not be
    ("billing issue", False),             # "billing issue: refund" reads refund
    ("billing\n", True),                  # the answer line is closed
    ("billing\nmore text", True),
    ("  `Refund`.", False),               # quotes and punctuation around a label: still open
    ("Answer:", False),                   # a bare lead-in hands over to the next line
    ("Answer:\n", False),
    ("Answer:\nbilling", False),          # the line after it is still open
    ("Answer:\nbilling\n", True),
    ("Answer:\nThe ticket is about", True),
    ("Answer: The ticket", True),         # after the lead-in, no label starts so
    ("Answer: ref", False),
    ('"', False),                         # only quotes: no answer line yet
    ("\n\n", False),
    ("Label shipping", False),            # "Label shipping: refund" reads refund
    ("Label - shipping", True),           # " - " is no lead-in's separator, and no label reads so
    ("shipping-delay", False),
    ("Category: caf\u00e9", False),       # a non-ASCII letter: never judged
    ("I think \ufffd", False),            # a character cut in the middle of its bytes
])
def test_first_label_settled_cases(text, settled):
    stop = EarlyStop.build("first_label", [LABELS], ["\n"])
    assert stop(0, text) is settled


def test_labels_that_extend_others_and_labels_with_punctuation():
    stop = EarlyStop.build("first_label", [NESTED], [])
    assert not stop(0, "item")             # "item_missing" extends it
    assert not stop(0, "item missing")
    assert not stop(0, "card")             # "card payment?" extends it
    assert not stop(0, "card payment")
    assert stop(0, "items are here")       # no label, and three words are no lead-in
    assert stop(0, "item\n") and first_label("item\nmissing", NESTED) == "item"


def fragments(labels):
    words = [w for label in labels for w in label.replace("_", " ").split()]
    return (labels + words + [w[:3] for w in words] + [w.upper() for w in words] +
            ["Answer", "Label", "The", "I", "think", "is", ":", " ", "  ", "\n", "\n\n", "_", "-", "'", '"', "`",
             "*", ".", "?", "!", ",", "(", ")", "B", "b", "Option", "A.", "\u201c", "\r", "###", "\t"])


def random_text(rng, pieces, n):
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, n)))


@pytest.mark.parametrize("parser, answers, stop", [
    ("first_label", LABELS, ["\n"]),
    ("first_label", NESTED, ["\n\n", "###"]),  # stop strings longer than a character
    ("first_label", LABELS, []),
    ("choice", ["Paris", "London", "B", "New York"], ["\n"]),
    ("first_line", None, ["###"]),
])
def test_a_settled_text_parses_the_same_after_any_continuation(parser, answers, stop):
    """Property: wherever the predicate says settled, random continuations (stop strings, line
    breaks, labels and their pieces included) never change the parsed answer."""
    rng = random.Random(7)
    pieces = fragments(answers or LABELS)
    early = EarlyStop.build(parser, [answers], stop)
    parse = {"first_label": lambda t: first_label(t, answers), "first_line": first_line,
             "choice": lambda t: choice(t, answers)}[parser]
    settled = unsettled = 0
    for _ in range(800):
        text = random_text(rng, pieces, 6)
        if not early(0, text):
            unsettled += 1
            continue
        settled += 1
        want = parse(cut_at_stop(text, stop))
        for _ in range(8):
            more = random_text(rng, pieces, 6)
            assert parse(cut_at_stop(text + more, stop)) == want, (text, more)
    assert settled > 30 and unsettled > 30  # both kinds were drawn


def test_choice_settles_only_when_no_letter_or_option_can_follow():
    stop = EarlyStop.build("choice", [["Paris", "London", "Rome"]], ["\n"])
    assert not stop(0, "B")                # a letter, and "B) London" still reads B
    assert not stop(0, "Lon")
    assert not stop(0, "D")                # no option D, but "Do" may lead in: "Do you mean: B"
    assert stop(0, "D.")                   # D is beyond the options, and "D." starts no lead-in
    assert stop(0, "I'd say")
    assert stop(0, "Answer: it is")
    assert stop(0, "B\n") and choice("B\nC", ["Paris", "London", "Rome"]) == "B"


def test_parsers_that_are_not_decided_here_never_stop_early():
    assert EarlyStop.build("label_mention", [LABELS], ["\n"]) is None
    assert EarlyStop.build("code_block", [None], ["\n"]) is None


def prompts_for(tokenizer):
    tickets = ["My card was charged twice.", "Where is my parcel?", "I cannot log in.", "Cancel my plan.",
               "The mug arrived broken.", "Wrong size sent.", "Change my address.", "Does it fit a 15 inch laptop?",
               "App crashes on start.", "Refund please.", "Invoice is wrong.", "Still waiting for delivery."]
    return [tokenizer.apply_chat_template(
        [{"role": "system", "content": "Route the ticket to one of: " + ", ".join(LABELS) + ". Answer with the label."},
         {"role": "user", "content": t}], tokenize=False, add_generation_prompt=True) for t in tickets]


def test_the_tiny_model_parses_the_same_with_fewer_tokens_and_as_transformers_generate(tiny_backend, tmp_path):
    backend = tiny_backend
    prompts = prompts_for(backend.tokenizer)
    early = EarlyStop.build("first_label", [LABELS] * len(prompts), ["\n"])
    run = dict(max_new_tokens=12, stop=["\n"], batch_size=5, progress=False)
    full = backend.generate(prompts, **run)
    short = backend.generate(prompts, settled=early, **run)
    assert [first_label(cut_at_stop(g.text, ["\n"]), LABELS) for g in short] == \
           [first_label(cut_at_stop(g.text, ["\n"]), LABELS) for g in full]
    assert all(s.tokens_out <= f.tokens_out and f.text.startswith(s.text) for s, f in zip(short, full))
    assert sum(g.tokens_out for g in short) < sum(g.tokens_out for g in full)

    # the loop that drops finished rows generates what transformers' generate does
    plain = backend._plain_greedy
    backend._plain_greedy = lambda: False
    try:
        reference = backend.generate(prompts, **run)
        reference_short = backend.generate(prompts, settled=early, **run)
    finally:
        backend._plain_greedy = plain
    assert [(g.text, g.tokens_out) for g in reference] == [(g.text, g.tokens_out) for g in full]
    assert [g.text for g in reference_short] == [g.text for g in short]
    assert backend.last_prefix["tokens"] > 0  # the shared prefix's cache was in use; and without it:
    assert [g.text for g in backend.generate(prompts, share_prefix=False, **run)] == [g.text for g in full]


def test_a_journal_from_a_run_without_early_stop_is_not_reused_with_it(tiny_backend, tmp_path):
    backend = tiny_backend
    prompts = prompts_for(backend.tokenizer)[:6]
    early = EarlyStop.build("first_label", [LABELS] * len(prompts), ["\n"])
    run = dict(max_new_tokens=12, stop=["\n"], batch_size=3, progress=False, journal=tmp_path / "journal")
    full = backend.generate(prompts, **run)
    short = backend.generate(prompts, settled=early, **run)
    assert sum(g.tokens_out for g in short) < sum(g.tokens_out for g in full)  # generated afresh
    assert backend.generate(prompts, settled=early, **run) == short


def test_the_whitespace_list_is_every_character_python_strips():
    from tunebench.tasks import parsing

    assert parsing._WS == "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
