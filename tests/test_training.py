"""LoRA training (PEFT through TRL) on a tiny random Llama: best checkpoint, records, resume after a
kill, and the GPU-only trainer's refusal on a machine without CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tunebench.atomic import read_json, write_jsonl
from tunebench.config import load_project_from_file
from tunebench.training import TrainingError, train_adapter, training_examples

HP = {"name": "tiny", "trainer": "peft", "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                                                   "target_modules": ["q_proj", "v_proj"]},
      "learning_rate": 0.003, "epochs": 1, "max_steps": 6, "batch_size": 4, "gradient_accumulation_steps": 1,
      "warmup_ratio": 0.0, "weight_decay": 0.0, "max_length": 128, "eval_steps": 2, "max_val_items": 8, "seed": 3}


@pytest.fixture(scope="module")
def routing(repo_root):
    project = load_project_from_file(repo_root)
    return project.tasks["ticket_routing"], project.prompts["ticket_routing"]


@pytest.fixture
def data(tmp_path, routing):
    task, _ = routing
    rows = [{"id": f"r{i:03d}", "input": f"My order {i} {'never arrived' if i % 2 else 'was charged twice'}",
             "target": "shipping_delay" if i % 2 else "billing"} for i in range(40)]
    write_jsonl(tmp_path / "train.jsonl", rows[:32])
    write_jsonl(tmp_path / "val.jsonl", rows[32:])
    return tmp_path / "train.jsonl", tmp_path / "val.jsonl"


def train(tmp_path, routing, data, model_dir, hp=HP):
    task, prompt = routing
    return train_adapter(task=task, prompt_spec=prompt, hp=hp, hp_file="configs/training/tiny.yaml",
                         model_dir=model_dir, train_path=data[0], val_path=data[1], out_dir=tmp_path / "adapter",
                         work_root=tmp_path / "work", threads=1, progress=False)


def test_training_examples_are_the_zero_shot_prompt_with_the_target_as_answer(routing):
    task, prompt = routing
    (ex,) = training_examples(task, prompt, [{"id": "a", "input": "Where is my parcel?", "target": "shipping_delay"}])
    assert [m["role"] for m in ex["prompt"]] == ["system", "user"]  # no in-context examples
    assert "Where is my parcel?" in ex["prompt"][-1]["content"] and "shipping_delay" not in ex["prompt"][-1]["content"]
    assert ex["completion"] == [{"role": "assistant", "content": "shipping_delay"}]


def test_lora_training_keeps_the_best_checkpoint_and_records_how_it_went(tmp_path, routing, data, tiny_llama_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    record = train(tmp_path, routing, data, tiny_llama_dir)
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    assert read_json(adapter / "training.json") == json.loads(json.dumps(record))
    assert record["steps"] == 6 and record["resumed_from"] is None and record["n_train"] == 32
    assert [p["step"] for p in record["loss_curve"]] == [1, 2, 3, 4, 5, 6]
    evals = {p["step"]: p["eval_loss"] for p in record["eval_curve"]}
    assert sorted(evals) == [2, 4, 6]
    best = min(evals, key=evals.get)
    assert record["best_checkpoint"] == f"checkpoint-{best}" and record["best_eval_loss"] == pytest.approx(evals[best])
    assert record["train_tokens_per_s"] > 0 and record["peak_rss_mb"] > 100
    assert record["loss_curve"][-1]["loss"] < record["loss_curve"][0]["loss"]  # it learnt something
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # nothing left to resume
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), str(adapter))


KILL_AT_STEP_4 = textwrap.dedent("""
    import os, signal, sys, json
    from transformers import TrainerCallback
    import trl

    class KillAfterSave(TrainerCallback):  # the test's own SIGKILL, right after checkpoint-4 is on disk
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 4:
                os.kill(os.getpid(), signal.SIGKILL)

    init = trl.SFTTrainer.__init__
    def patched(self, *a, **k):
        init(self, *a, **k)
        self.add_callback(KillAfterSave())
    trl.SFTTrainer.__init__ = patched

    from tunebench.config import load_project_from_file
    from tunebench.training import train_adapter
    repo, tmp, model, hp = sys.argv[1:5]
    project = load_project_from_file(repo)
    train_adapter(task=project.tasks["ticket_routing"], prompt_spec=project.prompts["ticket_routing"],
                  hp=json.loads(hp), hp_file="x", model_dir=model, train_path=f"{tmp}/train.jsonl",
                  val_path=f"{tmp}/val.jsonl", out_dir=f"{tmp}/adapter", work_root=f"{tmp}/work", progress=False)
""")


def test_a_killed_training_job_resumes_from_its_last_checkpoint(tmp_path, repo_root, routing, data, tiny_llama_dir):
    hp = {**HP, "max_steps": 8}
    proc = subprocess.run([sys.executable, "-c", KILL_AT_STEP_4, str(repo_root), str(tmp_path), str(tiny_llama_dir),
                           json.dumps(hp)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed, not finished
    assert not (tmp_path / "adapter").exists()  # no half-written output
    (checkpoint,) = [p.name for p in (tmp_path / "work").glob("*/checkpoints/checkpoint-*")][-1:]
    assert checkpoint == "checkpoint-4"
    record = train(tmp_path, routing, data, tiny_llama_dir, hp)
    assert record["resumed_from"].endswith("checkpoint-4")
    assert record["steps"] == 8 and record["steps_this_run"] == 4
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_a_changed_setting_never_resumes_a_stale_run(tmp_path, routing, data, tiny_llama_dir):
    from tunebench.training import work_key

    other = {**HP, "learning_rate": 0.001}
    assert work_key(tiny_llama_dir, data[0], HP, routing[1]) != work_key(tiny_llama_dir, data[0], other, routing[1])


def test_unsloth_without_cuda_fails_before_training_in_one_sentence(tmp_path, routing, data):
    with pytest.raises(TrainingError) as err:
        train(tmp_path, routing, data, "no-model-needed", {**HP, "trainer": "unsloth"})
    assert err.value.problem == "trainer `unsloth` (4-bit QLoRA) needs a CUDA GPU, and this machine has none"
    assert err.value.field == "trainer" and "cpu-lora" in err.value.fix
    assert not (tmp_path / "work").exists()  # nothing was loaded or written


def test_a_merged_model_answers_as_base_plus_adapter(tmp_path, routing, data, tiny_llama_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunebench.training import merge_adapter

    train(tmp_path, routing, data, tiny_llama_dir, {**HP, "max_steps": 2})
    merge_adapter(tiny_llama_dir, tmp_path / "adapter", tmp_path / "merged")
    ids = torch.tensor([[1, 42, 7, 99, 5]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))(ids).logits
        stacked = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                                            str(tmp_path / "adapter"))(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))(ids).logits
    assert torch.allclose(merged, stacked, atol=1e-5) and not torch.allclose(merged, base, atol=1e-4)
