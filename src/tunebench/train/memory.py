"""Memory of a LoRA training run: its peak estimated from the model's shape and the token counts
before the model loads (refused over the job's or the machine's memory), the micro-batches that
keep a pass under `batch_tokens`, and the loss computed at answer tokens only that keeps the
vocabulary's logits small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunebench.core.errors import TrainingError

# Memory model of one CPU/GPU training process (MB), calibrated on SmolLM2-135M-Instruct in fp32 on CPU
# (perf/train_memory.py: the estimate against measured peak RSS, per configuration).
RUNTIME_MB = 900          # python + torch + transformers + trl + datasets, imported, before the model
HEAD_CHUNK_TOKENS = 1024  # answer tokens whose full-vocabulary logits exist at once (see _completion_loss)


def _activation_floats(hidden: int, intermediate: int, padded_length: int) -> float:
    """Floats per token and decoder layer for a LoRA backward over a frozen Llama layer: what autograd
    keeps (17 hidden-wide and 5 MLP-wide tensors: the norms' inputs and outputs, q/k/v/attention
    output, the MLP's gate/up/act/product, each adapted projection's dropout copy of its input;
    counted with saved_tensors_hooks on SmolLM2-135M), 30 % more for the backward's own buffers (the
    measured peak RSS over the count), and the attention mask's row of `padded_length`, twice."""
    return 1.3 * (17 * hidden + 5 * intermediate) + 2 * padded_length


def estimate_peak_mb(config: Any, *, n_params: int, n_trainable: int, micro_rows: int, padded_length: int,
                     answer_tokens: int, bytes_per_param: int = 4, lean: bool = True) -> dict:
    """Peak memory of training, from the model's shape and the token counts, before anything runs.
    `micro_rows` x `padded_length`: the largest forward/backward pass; `answer_tokens`: the most loss
    tokens in one pass. lean=False: TRL's own loss, which scores every position (about 8 fp32 copies
    of a 4,096-token by 32,768-vocabulary tile live at once on CPU, measured)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, inter = int(text.hidden_size), int(getattr(text, "intermediate_size", 4 * text.hidden_size))
    layers, vocab = int(text.num_hidden_layers), int(text.vocab_size)
    tokens = micro_rows * padded_length
    mb = 2 ** 20
    weights = n_params * bytes_per_param / mb
    lora_state = n_trainable * 4 * 4 / mb  # fp32 parameter, gradient, Adam's two moments
    per_token_layer = _activation_floats(hidden, inter, padded_length) * 4
    activations = tokens * layers * per_token_layer / mb
    if lean:
        head = min(answer_tokens, HEAD_CHUNK_TOKENS) * vocab * 4 * 3 / mb
    else:
        head = min(tokens, 4096) * min(vocab, 32768) * 4 * 8 / mb
    parts = {"runtime": RUNTIME_MB, "weights": weights, "lora_state": lora_state,
             "activations": activations, "logits": head}
    return {"peak_mb": round(sum(parts.values())), "parts_mb": {k: round(v) for k, v in parts.items()},
            "micro_rows": micro_rows, "padded_length": padded_length}


def micro_batch_rows(batch_size: int, longest: int, batch_tokens: int) -> int:
    """Rows per forward/backward pass: the largest divisor of `batch_size` whose rows of the longest
    example fit `batch_tokens` (at least one row). Gradient accumulation over the rest of the batch
    gives the same update: the loss is summed over the batch's answer tokens and divided by their count."""
    fits = [d for d in range(1, batch_size + 1) if batch_size % d == 0 and d * longest <= batch_tokens]
    return max(fits, default=1)


def machine_mb() -> float | None:
    """The machine's memory (MemTotal), or a smaller cgroup limit. Not what is free now: that moves
    with other jobs, and a refusal should not depend on the moment."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                limits.append(int(line.split()[1]) / 1024)
    except OSError:
        pass
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(name).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 2 ** 60:
            limits.append(int(raw) / 2 ** 20)
    return min(limits) if limits else None


def check_memory(estimate: dict, *, mem_mb: int | None, machine: float | None, hp: dict, hp_file: str,
                 task: str) -> None:
    """Refuse a run whose estimated peak exceeds the job's memory (the rule's mem_mb) or the machine's,
    before the first step, saying which setting to change."""
    limits: list[tuple[float, str]] = [(float(mem_mb), "the job's memory (resources mem_mb)")] if mem_mb else []
    if machine is not None:
        limits.append((machine, "this machine's memory"))
    over = [(limit, what) for limit, what in limits if estimate["peak_mb"] > limit]
    if not over:
        return
    limit, what = min(over)
    rows, length = estimate["micro_rows"], estimate["padded_length"]
    raise TrainingError(
        f"training {task} would need about {estimate['peak_mb']:,} MB ({rows} rows x {length} tokens per "
        f"forward pass; {', '.join(f'{k} {v:,}' for k, v in estimate['parts_mb'].items())} MB), more than "
        f"{what}, {limit:,.0f} MB", file=hp_file, field="batch_tokens" if rows > 1 else "max_length",
        fix=(f"lower `batch_tokens` (now {hp.get('batch_tokens', DEFAULT_BATCH_TOKENS)}) so fewer rows share a pass, "
             if rows > 1 else "shorten the examples (`max_length`, the prompt template or the inputs), ")
        + "or give the job more memory (resources mem_mb of rule adapter_train, e.g. snakemake "
          "--set-resources adapter_train:mem_mb=16000)")


# 8 demo rows (~126 tokens at most) still share a pass; 600-token rows go one at a time (~3.5 GB)
DEFAULT_BATCH_TOKENS = 1024


def _completion_loss(model, inputs: dict, num_items_in_batch=None):
    """TRL's loss (the summed negative log-likelihood of the answer tokens over their count, or over
    `num_items_in_batch` under gradient accumulation) without scoring the other positions: the LM head
    runs only on hidden states whose next token is an answer token, HEAD_CHUNK_TOKENS at a time, each
    chunk's logits recomputed in backward instead of kept. TRL's own path projects every position
    (prompt and padding included) through the full vocabulary on CPU, and adds entropy and top-1
    accuracy that this project never reads."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(base, base.base_model_prefix)
    labels = inputs["labels"]
    out = backbone(**{k: v for k, v in inputs.items() if k != "labels"})
    targets = labels[:, 1:]
    mask = targets != -100
    hidden = out.last_hidden_state[:, :-1][mask]
    targets = targets[mask]
    head = base.get_output_embeddings()

    def nll(h, t):
        return F.cross_entropy(F.linear(h, head.weight, head.bias).float(), t, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], HEAD_CHUNK_TOKENS):
        h, t = hidden[start:start + HEAD_CHUNK_TOKENS], targets[start:start + HEAD_CHUNK_TOKENS]
        total = total + (checkpoint(nll, h, t, use_reentrant=False) if torch.is_grad_enabled() else nll(h, t))
    if hidden.shape[0] == 0:  # keep the graph connected, as TRL does for a batch without answer tokens
        total = total + out.last_hidden_state.sum() * 0
    return total / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)


def plan_memory(config: Any, hp: dict, tokenizer, train: list[dict], val: list[dict], tokens: list[int],
                val_tokens: list[int], *, device: str, lean: bool = True) -> dict:
    """The micro-batch (batch_tokens) and the estimated peak for this run, from the tokenized
    examples and the model's config (no weights needed)."""
    longest = max(tokens + val_tokens, default=1)
    batch = hp["batch_size"]
    micro = micro_batch_rows(batch, longest, hp.get("batch_tokens", DEFAULT_BATCH_TOKENS)) if lean else batch
    answers = max((n - len(tokenizer.apply_chat_template(ex["prompt"], tokenize=True, add_generation_prompt=True,
                                                         return_dict=True, **ex.get("chat_template_kwargs", {}))
                                                         ["input_ids"]) for ex, n in zip(train + val, tokens + val_tokens)),
                  default=1)
    lora = hp["lora"]
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, inter, layers = text.hidden_size, getattr(text, "intermediate_size", 4 * text.hidden_size), \
        text.num_hidden_layers
    kv = hidden * getattr(text, "num_key_value_heads", text.num_attention_heads) // text.num_attention_heads
    shapes = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (hidden, hidden),
              "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}
    n_trainable = layers * sum(lora["r"] * sum(shapes.get(m, (hidden, hidden))) for m in lora["target_modules"])
    embed = text.vocab_size * hidden
    n_params = embed * (1 if getattr(text, "tie_word_embeddings", False) else 2) + layers * (
        2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter + 2 * hidden)
    return estimate_peak_mb(config, n_params=n_params, n_trainable=n_trainable, micro_rows=micro,
                            padded_length=min(longest, hp.get("max_length", 512)),
                            answer_tokens=micro * max(answers, 1), bytes_per_param=4 if device == "cpu" else 2,
                            lean=lean)


def lean_trainer_class():
    from trl import SFTTrainer

    class CompletionLossTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            loss = _completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as TRL's compute_loss does
            return (loss, {"loss": loss}) if return_outputs else loss

    return CompletionLossTrainer
