"""What every prediction backend shares: its results (`Generation`, `Scored`), the one way it is
built (`BackendContext`), the `Backend` protocol that `tunebench.predict.generate` relies on, and
`BackendBase` with the defaults most backends keep.

A backend takes whole conversations (lists of chat messages) and decides itself how they reach the
model: rendered with an HF chat template (transformers, vLLM) or sent as messages (llama.cpp's GGUF
template, an OpenAI-compatible server). `prompt_text` is what the backend counts as "the prompt", so
the rows' `prompt_hash` changes exactly when what the model sees does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from tunebench.core.errors import ConfigError

if TYPE_CHECKING:
    from tunebench.core.spec import Model

Message = dict[str, str]
Conversation = list[Message]


@dataclass(frozen=True)
class Generation:
    text: str
    tokens_in: int | None  # None: a server that does not report usage
    tokens_out: int | None
    latency_s: float  # wall time of the batch this item was generated in
    batch_size: int = 1
    ttft_s: float | None = None  # time to first token, when streamed
    cached: bool = False  # answered from a backend's own cache
    # the sum of the generated tokens' log-probs (asked for with BackendContext.logprobs), over
    # logprob_tokens tokens; None where the backend or its server gives none
    logprob: float | None = None
    logprob_tokens: int | None = None
    # how the answer was held to the task's labels (an API's response_format), when it was asked to be
    answer_constraint: str | None = None


@dataclass(frozen=True)
class Scored:
    """Label log-likelihoods for one item."""
    logprobs: list[float]  # per continuation, in the order given
    tokens_in: int
    latency_s: float  # wall time of the batch this item was scored in
    batch_size: int


@dataclass(frozen=True)
class Chosen:
    """One item's answer under `method: constrained`: the index of its label among those given."""
    index: int
    tokens_in: int
    tokens_out: int  # the label's tokens
    latency_s: float  # wall time of the batch this item was decoded in
    batch_size: int
    passes: int  # forward passes that batch took


@dataclass(frozen=True)
class BackendContext:
    """Everything a backend is built from: the same for every backend, so the caller never needs
    to know which one it is building."""
    model: Model
    model_dir: Path | None  # the weights (an HF folder, or the folder holding the GGUF); None for an API
    adapter_dir: Path | None = None  # a LoRA adapter to apply
    threads: int | None = None
    max_new_tokens: int = 256  # the task's; engines that size their context up front need it
    cache_dir: Path | None = None  # where a backend may keep answers across runs (the API's cache)
    logprobs: bool = False  # the task wants each generation's token log-probs (Generation.logprob)
    labels: tuple[str, ...] = ()  # a classification task's closed answer set (empty otherwise)
    # an API model with `batch: true`: {"phase": "submit"|"collect", "receipt": path, "poll_s": s}
    batch: dict | None = None


def render_messages(tokenizer: Any, messages: Conversation, use_chat_template: bool,
                    template_kwargs: dict | None = None) -> str:
    """The exact text the model sees (shared by the backends that hold an HF tokenizer);
    `template_kwargs`: the model's chat_template_kwargs (e.g. enable_thinking=False)."""
    if use_chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **(template_kwargs or {}))
    return "\n\n".join(m["content"] for m in messages) + "\n"


def check_lengths(lengths: list[int], max_input_tokens: int) -> None:
    """Prompts longer than the model's limit are an error, never silently truncated."""
    too_long = [i for i, n in enumerate(lengths) if n > max_input_tokens]
    if too_long:
        raise ConfigError(f"{len(too_long)} prompt(s) exceed max_input_tokens={max_input_tokens} "
                          f"(longest {max(lengths)} tokens)", field="max_input_tokens",
                          fix="raise max_input_tokens in the model's config, or use fewer shots")


B = TypeVar("B", bound="Backend")


class Backend(Protocol):
    name: ClassVar[str]  # the `backend:` value of a model config
    supports_loglik: ClassVar[bool]  # can score labels; otherwise a loglik task is generated
    supports_constrained: ClassVar[bool]  # can decode restricted to the labels; otherwise generates
    row_fields: ClassVar[tuple[str, ...]]  # Generation fields this backend adds to each prediction row
    # False: a model that reads the item itself (the classic baseline): each conversation is the
    # item's text as one user message, without the prompt template
    prompted: ClassVar[bool]
    device: str

    @classmethod
    def from_context(cls: type[B], ctx: BackendContext) -> B: ...

    def prompt_text(self, conversation: Conversation) -> str: ...

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str],
                 progress: bool = True, desc: str = "predict", journal: str | Path | None = None,
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        """Greedy answers in input order. `journal`: where finished work is kept so a rerun after a
        kill does only the rest (backends with their own cache may ignore it). `settled(i, text)`:
        whether conversation i's parsed answer can no longer change after `text`; a backend may end
        that answer there (transformers does) or ignore it (the answer then runs to its stop)."""
        ...

    def score_labels(self, conversations: list[Conversation], answers: list[str] | list[list[str]], *,
                     progress: bool = True, desc: str = "score", journal: str | Path | None = None,
                     stall_timeout_s: float | None = None) -> list[Scored]:
        """Log-likelihood of each answer (a label as the assistant would write it) after each
        conversation; `answers`: the same for every conversation, or one list per conversation (a
        multiple-choice item's own options, in its order); only where `supports_loglik`."""
        ...

    def choose_labels(self, conversations: list[Conversation], answers: list[str] | list[list[str]], *,
                      progress: bool = True, desc: str = "constrained", journal: str | Path | None = None,
                      stall_timeout_s: float | None = None) -> list[Chosen]:
        """Greedy decoding restricted to the answers (as for `score_labels`): each conversation's
        answer, always one of them; only where `supports_constrained`."""
        ...

    def run_meta(self) -> dict:
        """What the meta file records about this run beyond the model's settings, in this order:
        chat_template, shared_prefix_tokens, then anything the backend adds."""
        ...

    def close(self) -> None: ...


class BackendBase:
    """Defaults for a backend: generation only, the conversation's JSON as its prompt, nothing
    extra in rows or meta."""
    name: ClassVar[str]
    supports_loglik: ClassVar[bool] = False
    supports_constrained: ClassVar[bool] = False
    row_fields: ClassVar[tuple[str, ...]] = ()
    prompted: ClassVar[bool] = True
    device: str = "cpu"
    use_chat_template: bool = True  # a backend that sends messages: the server's / GGUF's template

    def prompt_text(self, conversation: Conversation) -> str:
        return json.dumps(conversation, ensure_ascii=False)

    def score_labels(self, conversations: list[Conversation], answers: list[str] | list[list[str]], *,
                     progress: bool = True, desc: str = "score", journal: str | Path | None = None,
                     stall_timeout_s: float | None = None) -> list[Scored]:
        raise ConfigError(f"backend {self.name} cannot score labels", field="method", fix="use method: generate")

    def choose_labels(self, conversations: list[Conversation], answers: list[str] | list[list[str]], *,
                      progress: bool = True, desc: str = "constrained", journal: str | Path | None = None,
                      stall_timeout_s: float | None = None) -> list[Chosen]:
        raise ConfigError(f"backend {self.name} cannot decode restricted to the labels", field="method",
                          fix="use method: generate")

    def shared_prefix_tokens(self) -> int | None:
        return None

    def run_meta(self) -> dict:
        return {"chat_template": self.use_chat_template, "shared_prefix_tokens": self.shared_prefix_tokens()}

    def close(self) -> None:
        return None
