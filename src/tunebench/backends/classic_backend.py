"""Backend `classic`: the fitted TF-IDF + logistic regression pipeline (tunebench.train.classic)
answers each item with the label it predicts, as the generated text, so parsing and scoring are the
task's own.

It is not prompted (`prompted = False`): each conversation it gets is the item's own text as one
user message (tunebench.predict.generate builds it with tunebench.train.classic.item_text), which is
also what its rows' prompt_hash covers. Items are answered one at a time, as queries would be
served, so latency is per item and throughput prices it in the cost table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from tunebench.backends.base import BackendBase, BackendContext, Conversation, Generation
from tunebench.core.errors import ConfigError


class ClassicBackend(BackendBase):
    name: ClassVar[str] = "classic"
    prompted: ClassVar[bool] = False
    use_chat_template = False

    def __init__(self, adapter_dir: str | Path):
        from tunebench.train.classic import load_pipeline

        self.adapter_dir = Path(adapter_dir)
        self.pipeline: Any = load_pipeline(adapter_dir)

    @classmethod
    def from_context(cls, ctx: BackendContext) -> ClassicBackend:
        if ctx.adapter_dir is None:  # the system name classic+<task>-<size> names its fitted pipeline
            raise ConfigError("the classic baseline answers only with a fitted pipeline (system "
                              "classic+<task>-<size>)", field="system",
                              fix="ask for classic+<task>-<size>, a system the run lists")
        return cls(ctx.adapter_dir)

    def prompt_text(self, conversation: Conversation) -> str:
        return conversation[-1]["content"]

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str],
                 progress: bool = True, desc: str = "predict", journal: str | Path | None = None,
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        out = []
        for conversation in conversations:
            t0 = time.perf_counter()
            label = self.pipeline.predict([self.prompt_text(conversation)])[0]
            out.append(Generation(text=str(label), tokens_in=None, tokens_out=None,
                                  latency_s=time.perf_counter() - t0))
        return out

    def run_meta(self) -> dict:
        return {**super().run_meta(), "pipeline": str(self.adapter_dir)}
