"""Prediction with vLLM on a CUDA GPU: the whole cell in one call (vLLM schedules its own
continuous batches), greedy, the model folder's chat template, a LoRA adapter through a
LoRARequest (no merge needed).

vLLM lives in the `vllm` extra and in envs/vllm.yaml (the rules using it run in that conda env
with `resources: gpu=1`); it is never part of the default CPU install.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tunebench.backends.transformers_backend import Generation, check_lengths, render_messages
from tunebench.errors import ConfigError

log = logging.getLogger(__name__)


class VLLMBackend:
    name = "vllm"
    device = "cuda"

    def __init__(self, model_dir: str | Path, *, dtype: str = "bfloat16", chat_template: bool = True,
                 max_input_tokens: int = 4096, max_new_tokens: int = 256, adapter_dir: str | Path | None = None,
                 gpu_memory_utilization: float = 0.85, seed: int = 0):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ConfigError("backend vllm needs vLLM and a CUDA GPU", field="backend",
                              fix="pip install -e '.[vllm]' on a GPU machine, or run with --sdm conda "
                                  "(envs/vllm.yaml)") from exc
        self.llm = LLM(model=str(model_dir), dtype=dtype, seed=seed, enable_lora=adapter_dir is not None,
                       max_lora_rank=64, max_model_len=max_input_tokens + max_new_tokens,
                       gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()
        self.use_chat_template = chat_template and getattr(self.tokenizer, "chat_template", None) is not None
        self.max_input_tokens = max_input_tokens
        self.adapter_dir = adapter_dir
        self.last_prefix = {"tokens": None}  # vLLM's own prefix caching handles shared prefixes

    def render(self, messages: list[dict]) -> str:
        return render_messages(self.tokenizer, messages, self.use_chat_template)

    def generate(self, prompts: list[str], *, max_new_tokens: int, stop: list[str], batch_size: int,
                 progress: bool = True, desc: str = "predict") -> list[Generation]:
        from vllm import SamplingParams

        lora = None
        if self.adapter_dir is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, str(self.adapter_dir))
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        check_lengths(lengths, self.max_input_tokens)
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop or None, seed=0)
        t0 = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=progress, lora_request=lora)
        wall = round(time.perf_counter() - t0, 4)
        return [Generation(text=o.outputs[0].text, tokens_in=len(o.prompt_token_ids),
                           tokens_out=len(o.outputs[0].token_ids), latency_s=_latency(o, wall),
                           batch_size=len(prompts))
                for o in outputs]


def _latency(output, wall: float) -> float:
    """The request's own arrival-to-finish time when vLLM reports it, else the call's wall time."""
    m = getattr(output, "metrics", None)
    arrival, finished = getattr(m, "arrival_time", None), getattr(m, "finished_time", None)
    if isinstance(arrival, (int, float)) and isinstance(finished, (int, float)) and finished >= arrival:
        return round(finished - arrival, 4)
    return wall
