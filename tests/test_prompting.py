"""Prompts, in-context examples and answer parsing."""

from __future__ import annotations

from tunebench.config.loader import load_project_from_file
from tunebench.predict.generate import cut_at_stop
from tunebench.tasks.parsing import first_label, first_line, label_mention
from tunebench.tasks.prompting import PromptTemplate, draw_shots, prompt_hash

LABELS = ["billing", "refund", "damaged_item", "wrong_item"]


def test_first_label_parser():  # the cases in detail: tests/test_parsing.py
    assert first_label("refund", LABELS) == "refund"
    assert first_label(" Damaged item.", LABELS) == "damaged_item"
    assert first_label("The intent is wrong_item because", LABELS) is None  # not an answer that is a label
    assert label_mention("The intent is wrong_item because", LABELS) == "wrong_item"  # the opt-in lenient one
    assert label_mention("billing or refund", LABELS) == "billing"  # earliest mention wins
    assert first_label("broken_glass", LABELS) is None
    assert first_label("", LABELS) is None


def test_first_line_parser_and_stop():
    assert first_line('\n"wireless earbuds".\nmore') == "wireless earbuds"
    assert first_line("   ") is None
    assert cut_at_stop("\n  blender\nTicket: x", ["\n"]) == "blender"


def test_shots_come_from_train_deterministically_with_distinct_labels():
    train = [{"id": f"{label}-{i}", "input": f"text {i}", "target": label} for label in LABELS for i in range(5)]
    a = draw_shots(train, 4, seed=1, task="t", stratify=True)
    assert a == draw_shots(list(reversed(train)), 4, seed=1, task="t", stratify=True)
    assert len({s["target"] for s in a}) == 4
    assert all(s in train for s in a)
    assert draw_shots(train, 0, seed=1, task="t", stratify=True) == []
    assert len(draw_shots(train, 6, seed=1, task="t", stratify=True)) == 6


def test_messages_alternate_user_and_assistant(repo_root):
    project = load_project_from_file(repo_root)
    template = PromptTemplate.from_spec(project.prompts["ticket_routing"])
    shots = [{"id": "s1", "input": "I was charged twice", "target": "billing"}]
    msgs = template.messages({"id": "x", "input": "My parcel is late"}, shots, LABELS)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == "billing"
    assert "My parcel is late" in msgs[-1]["content"]
    assert all(label in msgs[-1]["content"] + msgs[0]["content"] for label in LABELS)
    assert prompt_hash("a") != prompt_hash("b") and len(prompt_hash("a")) == 16
