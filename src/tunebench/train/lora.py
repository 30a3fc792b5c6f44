"""LoRA adapters for a task: PEFT through TRL's SFTTrainer (CPU or GPU), or Unsloth QLoRA (GPU).

The training examples are the task's zero-shot prompts (its prompt template, no in-context
examples), as chat messages, with the target as the assistant's answer: TRL applies the model's
chat template and computes the loss on the answer only (prompt-completion data). The checkpoint
with the lowest validation loss is kept.

Checkpoints live in a work folder keyed by everything that shapes the run (base model, data,
hyperparameters): a killed job resumes from its last checkpoint on the rerun, and a changed
setting never resumes a stale run. The adapter folder (the rule's output) is written atomically,
with training.json beside the adapter: loss curve, validation losses, tokens/s, peak memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from tunebench.core.atomic import atomic_dir, read_jsonl, write_json
from tunebench.core.errors import TrainingError
from tunebench.core.spec import Task
from tunebench.tasks.prompting import PromptTemplate, shown_answer
from tunebench.tasks.windows import window_shot
from tunebench.train.memory import (
    check_memory,
    lean_trainer_class,
    machine_mb,
    plan_memory,
)

log = logging.getLogger(__name__)

TRAINING_RECORD = "training.json"




def training_examples(task: Task, prompt_spec: dict, rows: list[dict],
                      chat_template_kwargs: dict | None = None) -> list[dict]:
    """Conversational prompt/completion pairs: the zero-shot prompt, then the target as the answer.
    `chat_template_kwargs` (the model's, e.g. enable_thinking=False) ride along in each example's
    `chat_template_kwargs` column, which TRL's SFTTrainer and Unsloth pass to apply_chat_template,
    so training renders the prompt exactly as prediction does."""
    template = PromptTemplate.from_spec(prompt_spec, task.abstain)  # an empty target: the abstain text
    labels = list(task.labels or [])
    if task.context_window:  # a long document: the window that holds the answer, as an in-context example
        rows = [window_shot(row, task.context_window) for row in rows]
    extra = {"chat_template_kwargs": dict(chat_template_kwargs)} if chat_template_kwargs else {}
    return [{
        "id": row["id"],
        "prompt": template.messages(row, [], labels, task.answer_format),
        # a multiple-choice answer as the task asks for it: the letter, or the option's text
        "completion": [{"role": "assistant", "content": template.answer(shown_answer(row, task.answer_format), labels)}],
        **extra,
    } for row in rows]


def work_key(model_dir: str | Path, train_path: str | Path, hp: dict, prompt_spec: dict,
             chat_template_kwargs: dict | None = None) -> str:
    """What makes a training run the same run: resume only into a run with the same key."""
    h = hashlib.sha256()
    manifest = Path(model_dir) / "tunebench_model.json"
    h.update(manifest.read_bytes() if manifest.is_file() else str(Path(model_dir).resolve()).encode())
    h.update(Path(train_path).read_bytes())
    h.update(json.dumps([hp, prompt_spec, *([chat_template_kwargs] if chat_template_kwargs else [])],
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


def require_cuda(hp: dict, file: str) -> None:
    """Unsloth needs a CUDA GPU: say so in one sentence before anything is loaded."""
    import torch

    if not torch.cuda.is_available():
        raise TrainingError("trainer `unsloth` (4-bit QLoRA) needs a CUDA GPU, and this machine has none",
                            file=file, field="trainer",
                            fix="train with `training: cpu-lora` (trainer peft) here, or run this rule on a GPU "
                                "node (e.g. snakemake --profile profiles/slurm)")


# Unsloth patches these when it is imported (unsloth 2026.10.9, unsloth/_gpu_init.py: `critical_modules =
# ["trl", "transformers", "peft"]`, then `_patch_trl_trainer()` rebinds trl's trainers' __init__); imported
# after any of them, the unpatched classes run (it only warns "Unsloth should be imported before ...").
UNSLOTH_PATCHES = ("trl", "transformers", "peft")


def import_unsloth_first(file: str) -> None:
    """Import Unsloth before anything imports trl, transformers or peft in this process, or refuse."""
    early = [m for m in UNSLOTH_PATCHES if m in sys.modules]
    if early:
        raise TrainingError(f"trainer `unsloth` has to be imported before {', '.join(early)} to patch them, and "
                            "this process has already imported them", file=file, field="trainer",
                            fix="train in a fresh process that imports tunebench.train.lora first (the "
                                "adapter_train rule does), or use `training: cpu-lora` (trainer peft)")
    import unsloth  # noqa: F401  (GPU only: its own conda env, envs/train-unsloth.yaml)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def _token_counts(tokenizer, examples: list[dict]) -> list[int]:
    counts = []
    for ex in examples:
        ids = tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True, return_dict=True,
                                            **ex.get("chat_template_kwargs", {}))
        counts.append(len(ids["input_ids"]))
    return counts


def check_lengths(tokens: list[int], max_length: int, hp_file: str, task: str) -> None:
    """TRL truncates an example at max_length, so a long prompt loses its answer and the example
    teaches nothing (or is dropped): refuse before training, saying what to raise."""
    over = [n for n in tokens if n > max_length]
    if over:
        raise TrainingError(f"{len(over)} of {len(tokens)} {task} training/validation examples are longer than "
                            f"max_length {max_length} tokens (the longest is {max(over)}), so their answers "
                            "would be cut off", file=hp_file, field="max_length",
                            fix=f"raise `max_length` to at least {max(over)}, or shorten the prompt template "
                                "or the inputs")


def _load_model(model_dir: str, hp: dict, device: str):
    """(model, tokenizer, peft_config) for the configured trainer."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lora = hp["lora"]
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora.get("dropout", 0.0),
                        target_modules=list(lora["target_modules"]), task_type="CAUSAL_LM")
    if hp["trainer"] == "unsloth":
        from unsloth import FastLanguageModel  # GPU only: its own conda env (envs/train-unsloth.yaml)

        model, tokenizer = FastLanguageModel.from_pretrained(model_dir, max_seq_length=hp["max_length"],
                                                             load_in_4bit=hp.get("load_in_4bit", True))
        model = FastLanguageModel.get_peft_model(model, r=lora["r"], lora_alpha=lora["alpha"],
                                                 lora_dropout=lora.get("dropout", 0.0),
                                                 target_modules=list(lora["target_modules"]),
                                                 random_state=hp["seed"])
        return model, tokenizer, None
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16  # bf16 was 2-3x slower than fp32 on AVX2 CPUs
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    return model, tokenizer, config


def train_adapter(*, task: Task, prompt_spec: dict, hp: dict, hp_file: str, model_dir: str | Path,
                  train_path: str | Path, val_path: str | Path, out_dir: str | Path, work_root: str | Path,
                  threads: int = 1, progress: bool = True, chat_template_kwargs: dict | None = None,
                  mem_mb: int | None = None, lean: bool = True) -> dict:
    """Train one LoRA adapter; resume from the last checkpoint of an interrupted identical run.
    `mem_mb`: the job's memory; a run estimated to need more (or more than the machine has) is
    refused before it loads the model. `lean=False` keeps TRL's own loss and metrics and the whole
    batch in one pass (how training ran before; perf/train_memory.py measures both)."""
    if hp["trainer"] == "unsloth":
        require_cuda(hp, hp_file)
        import_unsloth_first(hp_file)  # before the trl/transformers/peft imports below and in _load_model
    import torch
    from transformers.trainer_utils import get_last_checkpoint

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = datetime.now(timezone.utc)
    train_rows, val_rows = read_jsonl(train_path), read_jsonl(val_path)[: hp.get("max_val_items", 256)]
    train = training_examples(task, prompt_spec, train_rows, chat_template_kwargs)
    val = training_examples(task, prompt_spec, val_rows, chat_template_kwargs)
    work = Path(work_root) / work_key(model_dir, train_path, hp, prompt_spec, chat_template_kwargs)
    checkpoints = work / "checkpoints"
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume:
        log.info("resuming from %s", resume)
    tokenizer, memory = None, None
    if hp["trainer"] == "peft":  # tokens and the model's shape only: refuse before the weights are loaded
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        tokens, val_tokens = _token_counts(tokenizer, train), _token_counts(tokenizer, val)
        check_lengths(tokens + val_tokens, hp.get("max_length", 512), hp_file, task.name)
        memory = plan_memory(AutoConfig.from_pretrained(str(model_dir)), hp, tokenizer, train, val, tokens,
                             val_tokens, device=device, lean=lean)
        if device == "cpu":  # GPU memory is the GPU's: RSS holds the weights and little else
            check_memory(memory, mem_mb=mem_mb, machine=machine_mb(), hp=hp, hp_file=hp_file, task=task.name)
    from datasets import Dataset  # after the checks: a refused run never imports the training stack
    from trl import SFTConfig, SFTTrainer

    model, loaded_tokenizer, peft_config = _load_model(str(model_dir), hp, device)
    if tokenizer is None:
        tokenizer = loaded_tokenizer
        tokens = _token_counts(tokenizer, train)
        check_lengths(tokens + _token_counts(tokenizer, val), hp.get("max_length", 512), hp_file, task.name)
    micro = memory["micro_rows"] if memory else hp["batch_size"]
    steps_per_epoch = math.ceil(len(train) / (hp["batch_size"] * hp.get("gradient_accumulation_steps", 1)))
    total_steps = hp["max_steps"] if hp.get("max_steps", -1) > 0 else math.ceil(steps_per_epoch * hp["epochs"])
    eval_steps = min(hp.get("eval_steps", 50), total_steps)
    args = SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=hp["epochs"], max_steps=hp.get("max_steps", -1),
        # batch_size rows per optimizer step, in micro-batches of `micro` rows (memory: batch_tokens).
        # Evaluation keeps batch_size: its loss is a mean of per-batch means, and without gradients a
        # pass holds one layer's activations at a time
        per_device_train_batch_size=micro, per_device_eval_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp.get("gradient_accumulation_steps", 1) * (hp["batch_size"] // micro),
        learning_rate=hp["learning_rate"], weight_decay=hp.get("weight_decay", 0.0),
        warmup_steps=round(hp.get("warmup_ratio", 0.0) * total_steps), lr_scheduler_type="linear",
        max_length=hp.get("max_length", 512), completion_only_loss=True, packing=False,
        eval_strategy="steps", eval_steps=eval_steps, save_strategy="steps", save_steps=eval_steps,
        save_total_limit=2, load_best_model_at_end=True, metric_for_best_model="eval_loss",
        greater_is_better=False, logging_steps=1, seed=hp["seed"], data_seed=hp["seed"],
        # bf16 is 2-3x slower than fp32 on this CPU; gradient checkpointing only trades time for memory
        bf16=device == "cuda", fp16=False, gradient_checkpointing=False, use_cpu=device == "cpu",
        dataloader_num_workers=0, report_to="none", disable_tqdm=not progress,
        prediction_loss_only=lean,  # evaluation keeps the loss only, not per-token outputs of every batch
    )
    columns = ["prompt", "completion"] + (["chat_template_kwargs"] if chat_template_kwargs else [])
    trainer_class = lean_trainer_class() if lean and hp["trainer"] == "peft" else SFTTrainer
    trainer = trainer_class(model=model, args=args, processing_class=tokenizer, peft_config=peft_config,
                         train_dataset=Dataset.from_list([{k: e[k] for k in columns} for e in train]),
                         eval_dataset=Dataset.from_list([{k: e[k] for k in columns} for e in val]))
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    train_s = time.perf_counter() - t0
    steps_run = trainer.state.global_step - (int(Path(resume).name.split("-")[-1]) if resume else 0)
    tokens_run = sum(tokens) * hp["epochs"] * steps_run / max(trainer.state.global_step, 1)
    history = trainer.state.log_history
    record = {
        "task": task.name, "base_model_dir": str(model_dir), "trainer": hp["trainer"], "training": hp,
        "chat_template_kwargs": chat_template_kwargs or {},
        "device": device, "threads": threads, "n_train": len(train), "n_val": len(val),
        "train_ids_sha256": hashlib.sha256("\n".join(r["id"] for r in train_rows).encode()).hexdigest(),
        "steps": trainer.state.global_step, "steps_this_run": steps_run, "resumed_from": resume,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint
        else None,
        "best_eval_loss": trainer.state.best_metric,
        "train_loss": round(result.training_loss, 6),
        "loss_curve": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
        "eval_curve": [{"step": h["step"], "eval_loss": h["eval_loss"]} for h in history if "eval_loss" in h],
        "train_seconds": round(train_s, 2),
        "train_tokens": int(sum(tokens) * hp["epochs"]), "tokens_per_example_mean": round(sum(tokens) / len(tokens), 1),
        "train_tokens_per_s": round(tokens_run / train_s, 1) if train_s > 0 else None,
        "peak_rss_mb": _peak_rss_mb(),
        # the pre-training estimate (check_memory) and the micro-batches it planned
        "memory_estimate": memory, "micro_batch_rows": micro, "lean_loss": bool(lean and hp["trainer"] == "peft"),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(out_dir) as tmp:
        cast(Any, trainer.model).save_pretrained(str(tmp))  # the best checkpoint's weights (load_best_model_at_end)
        write_json(tmp / TRAINING_RECORD, record)
    shutil.rmtree(work, ignore_errors=True)  # done: nothing to resume
    log.info("%s: %d steps, best eval loss %.4f at %s, %.0f tokens/s, peak RSS %.0f MB", task.name,
             record["steps"], record["best_eval_loss"] or math.nan, record["best_checkpoint"],
             record["train_tokens_per_s"] or 0, record["peak_rss_mb"])
    return record


def merge_adapter(model_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> dict:
    """Base + LoRA adapter -> one plain model folder, for backends that need merged weights
    (vLLM without LoRA support, GGUF conversion for llama.cpp)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(tmp))
        record = {"base_model_dir": str(model_dir), "adapter_dir": str(adapter_dir),
                  "parameters": sum(p.numel() for p in merged.parameters())}
        write_json(tmp / "tunebench_merge.json", record)
    return record
