"""Prediction with transformers: batched greedy generation on CPU or GPU.

Prompts are sorted by length so a batch pads little, padded on the left (decoder-only models
generate after the last position), and generation stops at the task's stop strings or EOS.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tunebench.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float  # wall time of the batch this item was generated in
    batch_size: int


def render_messages(tokenizer, messages: list[dict], use_chat_template: bool) -> str:
    """The exact text the model sees (shared by the backends that hold an HF tokenizer)."""
    if use_chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n"


def check_lengths(lengths: list[int], max_input_tokens: int) -> None:
    """Prompts longer than the model's limit are an error, never silently truncated."""
    too_long = [i for i, n in enumerate(lengths) if n > max_input_tokens]
    if too_long:
        raise ConfigError(f"{len(too_long)} prompt(s) exceed max_input_tokens={max_input_tokens} "
                          f"(longest {max(lengths)} tokens)", field="max_input_tokens",
                          fix="raise max_input_tokens in the model's config, or use fewer shots")


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_dir: str | Path, *, dtype: str = "float32", threads: int | None = None,
                 chat_template: bool = True, max_input_tokens: int = 4096,
                 adapter_dir: str | Path | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
        if adapter_dir is not None:
            from peft import PeftModel

            # merged once: generation then costs what the base model costs (same predictions)
            self.model = PeftModel.from_pretrained(self.model, str(adapter_dir)).merge_and_unload()
        self.model.to(self.device).eval()
        self.use_chat_template = chat_template and self.tokenizer.chat_template is not None
        self.max_input_tokens = max_input_tokens
        self.weights = (model_dir, adapter_dir, dtype)  # what a journal's batches must come from

    def render(self, messages: list[dict]) -> str:
        """The exact text the model sees."""
        return render_messages(self.tokenizer, messages, self.use_chat_template)

    def generate(self, prompts: list[str], *, max_new_tokens: int, stop: list[str],
                 batch_size: int, progress: bool = True, desc: str = "predict",
                 share_prefix: bool = True, journal: str | Path | None = None,
                 stall_timeout_s: float | None = None) -> list[Generation]:
        """Greedy completions of `prompts`, in input order.

        When all prompts start with the same tokens (system message + in-context examples), that
        prefix is run through the model once and its KV cache reused by every batch: padding goes
        between the shared prefix and each item's own tokens, and position ids follow the attention
        mask, so each item sees exactly the positions it would see alone.

        `journal`: finished batches are kept there, and a rerun after a kill or a stall generates
        only the others (tunebench.resume); `stall_timeout_s`: the watchdog's limit per batch.
        """
        import copy
        from dataclasses import asdict

        from tqdm import tqdm

        from tunebench.resume import Journal, Watchdog, journal_key, weights_identity

        torch = self.torch
        tok = self.tokenizer
        ids = tok(prompts, add_special_tokens=False)["input_ids"]
        lengths = [len(x) for x in ids]
        check_lengths(lengths, self.max_input_tokens)
        n_prefix = shared_prefix_length(ids) if share_prefix and len(ids) > 1 else 0
        if n_prefix < MIN_SHARED_PREFIX:
            n_prefix = 0
        prefix_cache = None
        t0 = time.perf_counter()
        if n_prefix:
            with torch.inference_mode():
                prefix_cache = self.model(input_ids=torch.tensor([ids[0][:n_prefix]], device=self.device),
                                          use_cache=True).past_key_values
        self.last_prefix = {"tokens": n_prefix, "seconds": round(time.perf_counter() - t0, 4)}
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        results: list[Generation | None] = [None] * len(prompts)
        eos_ids = {tok.eos_token_id, tok.pad_token_id}
        done = Journal(journal, journal_key(prompts, max_new_tokens, stop, batch_size, n_prefix, self.name,
                                            self.weights[2], weights_identity(*self.weights[:2])) if journal else "")
        bar = tqdm(total=len(prompts), desc=desc, unit="item", disable=not progress, mininterval=2)
        with Watchdog(stall_timeout_s, desc, kept=journal) as dog:
            for number, start in enumerate(range(0, len(order), batch_size)):
                batch = order[start:start + batch_size]
                if number in done.done:
                    for i, kept in done.done[number]:
                        results[i] = Generation(**kept)
                    bar.update(len(batch))
                    continue
                suffixes = [ids[i][n_prefix:] for i in batch]
                width = max(len(x) for x in suffixes)
                prefix = ids[batch[0]][:n_prefix]
                input_ids = [prefix + [tok.pad_token_id] * (width - len(x)) + x for x in suffixes]
                mask = [[1] * n_prefix + [0] * (width - len(x)) + [1] * len(x) for x in suffixes]
                kwargs = {}
                if prefix_cache is not None:
                    cache = copy.deepcopy(prefix_cache)
                    cache.batch_repeat_interleave(len(batch))
                    kwargs["past_key_values"] = cache
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = self.model.generate(
                        input_ids=torch.tensor(input_ids, device=self.device),
                        attention_mask=torch.tensor(mask, device=self.device),
                        max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                        top_k=None, pad_token_id=tok.pad_token_id,
                        stop_strings=stop or None, tokenizer=tok if stop else None, **kwargs,
                    )
                elapsed = time.perf_counter() - t0
                new = out[:, n_prefix + width:].tolist()
                for row, i in enumerate(batch):
                    generated = new[row]
                    n_out = next((j for j, t in enumerate(generated) if t in eos_ids), len(generated))
                    results[i] = Generation(text=tok.decode(generated[:n_out], skip_special_tokens=True),
                                            tokens_in=lengths[i], tokens_out=n_out,
                                            latency_s=round(elapsed, 4), batch_size=len(batch))
                done.add(number, [[i, asdict(results[i])] for i in batch])
                dog.beat()
                bar.update(len(batch))
        bar.close()
        return results  # type: ignore[return-value]


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
