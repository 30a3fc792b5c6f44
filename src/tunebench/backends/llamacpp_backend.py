"""Prediction with llama.cpp (llama-cpp-python) on a GGUF file, on CPU: the quantized weights as
shipped, the chat template stored in the GGUF, greedy decoding, one item at a time.

Installed by the `llamacpp` extra (a source build of llama.cpp, ~10 minutes on 2 cores once;
pip's wheel cache makes later installs instant). The thread count is pinned: llama.cpp's spinning
threads collapse when they outnumber free cores (measured: SmolLM2 decoded 86 tokens/s with one
thread, 2.2 tokens/s with two while another process kept a core busy).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunebench.backends.base import BackendBase, BackendContext, Conversation, Generation
from tunebench.core.errors import ConfigError

log = logging.getLogger(__name__)

INSTALL_HINT = "make llamacpp (builds llama.cpp once, ~10 min on 2 cores), or pip install -e '.[llamacpp]'"


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class LlamaCppBackend(BackendBase):
    """Whole conversations in: the GGUF's own chat template renders them."""
    name = "llamacpp"
    device = "cpu"

    def __init__(self, gguf_path: str | Path, *, threads: int = 1, n_ctx: int = 4096, seed: int = 0):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError("backend llamacpp needs llama-cpp-python, which is not installed",
                              field="backend", fix=INSTALL_HINT) from exc
        self.gguf_path = Path(gguf_path)
        self.llm: Any = Llama(model_path=str(self.gguf_path), n_ctx=n_ctx, n_threads=threads,
                         n_threads_batch=threads, seed=seed, verbose=False)
        self.n_ctx = n_ctx
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template")

    @classmethod
    def from_context(cls, ctx: BackendContext) -> LlamaCppBackend:
        from tunebench.data.models import GGUF_NAME

        return cls(Path(ctx.model_dir or "") / GGUF_NAME, threads=ctx.threads or 1, n_ctx=ctx.model.max_input_tokens)

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str] | None,
                 progress: bool = True, desc: str = "predict", journal: str | Path | None = None,
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        """One greedy answer per conversation; `journal` keeps finished items for a rerun after a
        kill or a stall, `stall_timeout_s` is the watchdog's limit per item (tunebench.core.resume)."""
        from dataclasses import asdict

        from tqdm import tqdm

        from tunebench.core.resume import Journal, Watchdog, journal_key, weights_identity

        stop = stop or None  # [] and None mean the same: one spelling in the journal key

        done = Journal(journal, journal_key(conversations, max_new_tokens, stop, self.name,
                                            weights_identity(self.gguf_path)) if journal else "")
        out = []
        with Watchdog(stall_timeout_s, desc, kept=journal) as dog:
            for number, messages in enumerate(tqdm(conversations, desc=desc, unit="item", disable=not progress)):
                kept: Any = done.done.get(number)  # one item's Generation as a dict (the journal holds any JSON)
                if kept is not None:
                    out.append(Generation(**kept))
                    continue
                out.append(self._answer(messages, max_new_tokens, stop))
                entry: Any = asdict(out[-1])
                done.add(number, entry)
                dog.beat()
        return out

    def _answer(self, messages: list[dict], max_new_tokens: int, stop: list[str] | None) -> Generation:
        t0 = time.perf_counter()
        r = self.llm.create_chat_completion(messages=messages, max_tokens=max_new_tokens, temperature=0.0,
                                            top_k=1, seed=0, stop=stop or None)
        usage = r["usage"]
        if usage["prompt_tokens"] + max_new_tokens > self.n_ctx:
            log.warning("prompt of %d tokens + %d new may exceed the context of %d",
                        usage["prompt_tokens"], max_new_tokens, self.n_ctx)
        return Generation(text=r["choices"][0]["message"]["content"] or "",
                          tokens_in=usage["prompt_tokens"], tokens_out=usage["completion_tokens"],
                          latency_s=round(time.perf_counter() - t0, 4), batch_size=1)

    def close(self) -> None:
        self.llm.close()
