"""Prediction with vLLM on a CUDA GPU: the whole cell in one call (vLLM schedules its own
continuous batches), greedy, the model folder's chat template, a LoRA adapter through a
LoRARequest (no merge needed).

Written against vLLM 0.33.0 (the version envs/vllm.yaml pins):

- Prompts go in as token ids (`TokensPrompt`), tokenized here once with add_special_tokens=False,
  as the transformers backend does. A text prompt would be tokenized again by vLLM with its
  completion default, add_special_tokens=True, and a chat template that already writes BOS
  (Llama 3, Gemma) would then start with two. The counted prompt is the prompt the model sees.
- Latency: `latency_s` of every item is the wall time of the one `LLM.generate` call that answered
  the whole cell, with `batch_size` the number of prompts in that call (the meaning
  `Generation.latency_s` has for every backend: the wall time of the batch the item was in).
  vLLM's per-request timings are not used: `LLM()` turns stats off unless told otherwise
  (`disable_log_stats=True`), so `RequestOutput.metrics` is None; and when they are on, its
  `RequestStateStats` holds a wall-clock `arrival_time` next to engine-core monotonic timestamps
  (queued/scheduled/first/last token) and no finish time, so no arrival-to-finish latency can be
  read from it.

vLLM lives in the `vllm` extra and in envs/vllm.yaml (the rules using it run in that conda env
with `resources: gpu=1`); it is never part of the default CPU install.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunebench.backends.base import (
    BackendBase,
    BackendContext,
    Conversation,
    Generation,
    check_lengths,
    render_messages,
)
from tunebench.core.errors import ConfigError

log = logging.getLogger(__name__)


class VLLMBackend(BackendBase):
    name = "vllm"
    device = "cuda"

    def __init__(self, model_dir: str | Path, *, dtype: str = "bfloat16", chat_template: bool = True,
                 max_input_tokens: int = 4096, max_new_tokens: int = 256, adapter_dir: str | Path | None = None,
                 gpu_memory_utilization: float = 0.85, seed: int = 0, batch_size: int = 8,
                 chat_template_kwargs: dict | None = None, logprobs: bool = False):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ConfigError("backend vllm needs vLLM and a CUDA GPU", field="backend",
                              fix="pip install -e '.[vllm]' on a GPU machine, or run with --sdm conda "
                                  "(envs/vllm.yaml)") from exc
        # model, dtype, seed, gpu_memory_utilization: LLM's own keywords; enable_lora, max_lora_rank,
        # max_model_len: EngineArgs fields, passed through LLM's **kwargs
        self.llm: Any = LLM(model=str(model_dir), dtype=dtype, seed=seed, enable_lora=adapter_dir is not None,
                       max_lora_rank=64, max_model_len=max_input_tokens + max_new_tokens,
                       gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer: Any = self.llm.get_tokenizer()
        self.use_chat_template = chat_template and getattr(self.tokenizer, "chat_template", None) is not None
        self.template_kwargs = dict(chat_template_kwargs or {})
        self.max_input_tokens = max_input_tokens
        self.adapter_dir = adapter_dir
        self.batch_size = batch_size  # for complete(); vLLM batches by itself
        self.logprobs = logprobs  # each answer's token log-probs (Generation.logprob)

    @classmethod
    def from_context(cls, ctx: BackendContext) -> VLLMBackend:
        m = ctx.model
        return cls(ctx.model_dir or "", dtype=m.dtype, chat_template=m.chat_template,
                   max_input_tokens=m.max_input_tokens, max_new_tokens=ctx.max_new_tokens,
                   adapter_dir=ctx.adapter_dir, batch_size=m.batch_size, chat_template_kwargs=m.chat_template_kwargs,
                   logprobs=ctx.logprobs)

    def render(self, messages: list[dict]) -> str:
        return render_messages(self.tokenizer, messages, self.use_chat_template, self.template_kwargs)

    def prompt_text(self, conversation: Conversation) -> str:
        return self.render(conversation)

    def shared_prefix_tokens(self) -> int | None:
        return None  # vLLM's own prefix caching handles shared prefixes

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str],
                 progress: bool = True, desc: str = "predict", journal: str | Path | None = None,
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        """No journal: the cell is one vLLM call."""
        return self.generate([self.render(c) for c in conversations], max_new_tokens=max_new_tokens, stop=stop,
                             batch_size=self.batch_size, progress=progress, desc=desc)

    def generate(self, prompts: list[str], *, max_new_tokens: int, stop: list[str], batch_size: int,
                 progress: bool = True, desc: str = "predict") -> list[Generation]:
        """Greedy answers in prompt order. `batch_size` is not used: vLLM batches by itself."""
        if not prompts:
            return []  # LLM.generate refuses an empty list
        from vllm import SamplingParams, TokensPrompt

        lora = None
        if self.adapter_dir is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest(lora_name="adapter", lora_int_id=1, lora_path=str(self.adapter_dir))
        ids = [list(x) for x in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        check_lengths([len(x) for x in ids], self.max_input_tokens)
        # logprobs=0: the chosen token's log-prob only; CompletionOutput.cumulative_logprob is their sum
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop or None, seed=0,
                                logprobs=0 if self.logprobs else None)
        t0 = time.perf_counter()
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids], params,
                                    use_tqdm=progress, lora_request=lora)
        wall = round(time.perf_counter() - t0, 4)  # the whole cell: every item's latency_s (see above)
        return [Generation(text=o.outputs[0].text, tokens_in=len(x), tokens_out=len(o.outputs[0].token_ids),
                           latency_s=wall, batch_size=len(prompts), **_logprob(o.outputs[0], self.logprobs))
                for x, o in zip(ids, outputs)]


def _logprob(out: Any, wanted: bool) -> dict:
    """Generation.logprob from a CompletionOutput: the sum over its generated tokens (the end of turn
    included when it ended on one), when asked for."""
    if not wanted or out.cumulative_logprob is None or not out.token_ids:
        return {}
    return {"logprob": round(float(out.cumulative_logprob), 5), "logprob_tokens": len(out.token_ids)}
