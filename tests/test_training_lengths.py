"""Training examples longer than the training config's `max_length`: TRL would cut their answers off
(or drop them) without a word. At config load a lower bound from the prompt template stops the
obvious case (77 labels in the prompt, max_length 256); the training job checks every example with
the model's tokenizer before it trains."""

from __future__ import annotations

import pytest

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import write_jsonl
from tunebench.core.errors import ConfigError
from tunebench.train.lengths import _PRETOKENS, check_training_length
from tunebench.train.lora import TrainingError, train_adapter

HP = {"name": "tiny", "trainer": "peft", "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                                   "target_modules": ["q_proj", "v_proj"]},
      "learning_rate": 0.003, "epochs": 1, "max_steps": 2, "batch_size": 4, "gradient_accumulation_steps": 1,
      "warmup_ratio": 0.0, "weight_decay": 0.0, "max_length": 128, "eval_steps": 2, "max_val_items": 8, "seed": 3}
# BANKING77-like label names: many, long, built from shared parts
MANY = [f"{a}_{b}_{c}" for a in ("card", "transfer", "top_up", "cash_withdrawal") for b in ("payment", "fee", "limit")
        for c in ("not_recognised", "pending", "reverted", "charged", "failed", "declined", "wrong_amount")][:77]


@pytest.fixture(scope="module")
def routing(repo_root):
    project = load_project_from_file(repo_root)
    return project.tasks["ticket_routing"], project.prompts["ticket_routing"]


def test_the_pretoken_count_is_a_lower_bound_of_the_real_token_count(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir))
    texts = [", ".join(MANY), "Ticket: my card_payment_fee was charged twice!!! (order #12345)",
             "reverted_card_payment?", "Labels: a, b\n\nMessage: hello\nLabel:", "naïve café, 3.14159 €"]
    for text in texts:
        assert len(_PRETOKENS.findall(text)) <= len(tok(text, add_special_tokens=False)["input_ids"]), text


def test_a_prompt_with_77_labels_is_refused_at_load_naming_max_length(routing):
    task, prompt = routing
    import dataclasses

    many = dataclasses.replace(task, labels=tuple(MANY))
    with pytest.raises(ConfigError) as err:
        check_training_length(many, prompt, {**HP, "max_length": 256}, "configs/training/cpu-lora.yaml")
    assert err.value.file == "configs/training/cpu-lora.yaml" and err.value.field == "max_length"
    assert "77 labels" in err.value.problem and "raise `max_length` to at least" in err.value.fix
    check_training_length(many, prompt, {**HP, "max_length": 2048}, "configs/training/cpu-lora.yaml")
    check_training_length(task, prompt, {**HP, "max_length": 256}, "configs/training/cpu-lora.yaml")  # the demo's


def test_training_refuses_examples_longer_than_max_length_before_it_trains(tmp_path, routing, tiny_llama_dir):
    task, prompt = routing
    rows = [{"id": f"r{i}", "input": "my parcel " * (3 if i % 4 else 60), "target": "shipping_delay"} for i in range(12)]
    write_jsonl(tmp_path / "train.jsonl", rows[:8])
    write_jsonl(tmp_path / "val.jsonl", rows[8:])
    with pytest.raises(TrainingError) as err:
        train_adapter(task=task, prompt_spec=prompt, hp=HP, hp_file="configs/training/tiny.yaml",
                      model_dir=tiny_llama_dir, train_path=tmp_path / "train.jsonl", val_path=tmp_path / "val.jsonl",
                      out_dir=tmp_path / "adapter", work_root=tmp_path / "work", threads=1, progress=False)
    assert err.value.file == "configs/training/tiny.yaml" and err.value.field == "max_length"
    assert err.value.problem.startswith("3 of 12 ticket_routing training/validation examples are longer than "
                                        "max_length 128 tokens")
    assert not (tmp_path / "adapter").exists() and not list((tmp_path / "work").rglob("checkpoint-*"))
