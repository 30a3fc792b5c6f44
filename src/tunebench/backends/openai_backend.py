"""Prediction through any OpenAI-compatible chat endpoint: a frontier API, vLLM's or llama.cpp's
server, Ollama, `transformers serve`.

- The key comes from the environment (`api_key_env`, OPENAI_API_KEY by default) and nowhere else;
  it is never part of a cache key, a log line or a result.
- Requests run `concurrency` at a time. Transient failures (connection errors, 408/409/429/5xx) are
  retried by the OpenAI client with exponential backoff; after `breaker_failures` consecutive
  items fail even so, the circuit opens and the remaining items are not sent.
- Every answer is cached on disk under the hash of what was asked (endpoint, model, messages,
  generation settings), written as it arrives: a rerun costs zero requests and gives identical
  results, and a run cut short resends only what is missing.
- Streaming (the default) measures time to first token; token counts come from the server's usage.
- When the task wants a confidence (BackendContext.logprobs), requests ask for `logprobs`; a server
  that refuses the field is asked again without it, and a server that ignores it (`transformers
  serve`) gives answers without log-probs (Generation.logprob None).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunebench.backends.base import BackendBase, BackendContext, Conversation, Generation
from tunebench.backends.token_logprobs import api_logprob
from tunebench.core.atomic import read_json, write_json
from tunebench.core.errors import TunebenchError

log = logging.getLogger(__name__)


class BackendError(TunebenchError):
    """The endpoint failed for some items even after retries."""


class CircuitOpen(BackendError):
    """Too many consecutive failures: the remaining items were not sent."""


@dataclass(frozen=True)
class APIResult:  # as stored in the answer cache
    text: str
    tokens_in: int | None
    tokens_out: int | None
    latency_s: float  # wall time of this item's request (as first measured, when answered from the cache)
    ttft_s: float | None  # time to first token, when streamed
    cached: bool = False
    logprob: float | None = None  # sum of the answer's token log-probs, when asked for and given
    logprob_tokens: int | None = None


class OpenAIBackend(BackendBase):
    name = "openai"
    device = "remote"
    row_fields = ("ttft_s", "cached")

    def __init__(self, *, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 4,
                 max_retries: int = 3, timeout_s: float = 60.0, cache_dir: str | Path | None = None,
                 breaker_failures: int = 5, stream: bool = True, chat_template_kwargs: dict | None = None,
                 logprobs: bool = False, reasoning_effort: str | None = None, reasoning_tokens: int = 2048):
        import openai

        self.endpoint = base_url  # as configured, for the meta file
        self.base_url, self.model, self.stream = base_url.rstrip("/"), model, stream
        self.concurrency, self.breaker_failures = concurrency, breaker_failures
        # Local servers accept any key; a real API answers 401, which names the variable to set. The
        # loader refuses a run whose key variable is unset; api_key_env None: a server needing no key.
        key = os.environ.get(api_key_env) if api_key_env else None
        self.client: Any = openai.OpenAI(base_url=self.base_url, api_key=key or "not-set",
                                    max_retries=max_retries, timeout=timeout_s)
        self.api_key_env = api_key_env
        # vLLM's (and llama.cpp's) server read chat_template_kwargs from the request body; a frontier
        # API would refuse the unknown field, so it is sent only when the model's config sets some
        self.template_kwargs = dict(chat_template_kwargs or {})
        # token log-probs are asked for only when the task wants a confidence (it changes the cache
        # key); a server that refuses the field is asked again without it, and its answers have none
        self.logprobs, self.logprobs_refused = logprobs, False
        # a reasoning model (OpenAI's o-series, GPT-5) refuses max_tokens, a temperature other than its
        # default and stop strings; its completion budget also pays for the hidden reasoning tokens
        self.reasoning_effort, self.reasoning_tokens = reasoning_effort, reasoning_tokens
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.requests_sent = self.cache_hits = 0
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._warned_usage = False

    @classmethod
    def from_context(cls, ctx: BackendContext) -> OpenAIBackend:
        m = ctx.model
        return cls(base_url=m.source["base_url"], model=m.source["model"],
                   api_key_env=m.source.get("api_key_env", "OPENAI_API_KEY"), concurrency=m.concurrency,
                   stream=m.stream, cache_dir=ctx.cache_dir, chat_template_kwargs=m.chat_template_kwargs,
                   logprobs=ctx.logprobs, reasoning_effort=m.source.get("reasoning_effort"),
                   reasoning_tokens=m.source.get("reasoning_tokens", 2048))

    def run_meta(self) -> dict:
        return {**super().run_meta(), "endpoint": self.endpoint, "requests_sent": self.requests_sent,
                "cache_hits": self.cache_hits}

    def close(self) -> None:
        self.client.close()

    def request_key(self, messages: list[dict], params: dict) -> str:
        blob = json.dumps({"base_url": self.base_url, "model": self.model, "messages": messages,
                           "params": params}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _call(self, messages: list[dict], params: dict) -> APIResult:
        with self._lock:
            self.requests_sent += 1
        t0 = time.perf_counter()
        if not self.stream:
            r = self.client.chat.completions.create(model=self.model, messages=messages, **params)
            usage = r.usage
            logprob, counted = api_logprob(getattr(r.choices[0].logprobs, "content", None))
            return APIResult(text=r.choices[0].message.content or "", latency_s=round(time.perf_counter() - t0, 4),
                             tokens_in=usage.prompt_tokens if usage else None,
                             tokens_out=usage.completion_tokens if usage else None, ttft_s=None,
                             logprob=logprob, logprob_tokens=counted)
        first, parts, usage, entries = None, [], None, []
        events = self.client.chat.completions.create(model=self.model, messages=messages, stream=True,
                                                     stream_options={"include_usage": True}, **params)
        for event in events:
            if event.choices and event.choices[0].delta.content:
                first = first if first is not None else time.perf_counter() - t0
                parts.append(event.choices[0].delta.content)
            if event.choices and getattr(event.choices[0].logprobs, "content", None):
                entries.extend(event.choices[0].logprobs.content)
            if getattr(event, "usage", None):
                usage = event.usage
        if usage is None and not self._warned_usage:
            self._warned_usage = True  # llama.cpp's server, for one, ignores stream_options
            log.warning("%s reports no token usage when streaming: tokens and API cost stay unknown; set "
                        "`stream: false` in the model's config to get them (and lose time to first token)",
                        self.base_url)
        logprob, counted = api_logprob(entries)
        return APIResult(text="".join(parts), latency_s=round(time.perf_counter() - t0, 4),
                         ttft_s=round(first, 4) if first is not None else None,
                         tokens_in=usage.prompt_tokens if usage else None,
                         tokens_out=usage.completion_tokens if usage else None,
                         logprob=logprob, logprob_tokens=counted)

    def _one(self, messages: list[dict], params: dict) -> APIResult:
        if self.logprobs_refused:
            params = {k: v for k, v in params.items() if k != "logprobs"}
        key = self.request_key(messages, params)
        path = self._cache_path(key)
        if path is not None and path.is_file():
            with self._lock:
                self.cache_hits += 1
            return APIResult(**{**read_json(path)["result"], "cached": True})
        if self._consecutive_failures >= self.breaker_failures:
            raise CircuitOpen("circuit open: not sent")
        try:
            result = self._call(messages, params)
        except Exception as exc:
            if "logprobs" in params and type(exc).__name__ == "BadRequestError" and "logprob" in str(exc).lower():
                with self._lock:
                    if not self.logprobs_refused:
                        log.warning("%s refuses token log-probs: answers have no confidence", self.base_url)
                    self.logprobs_refused = True
                return self._one(messages, params)
            with self._lock:
                self._consecutive_failures += 1
            raise
        with self._lock:
            self._consecutive_failures = 0
        if path is not None:  # as it arrives: a run cut short keeps what it paid for
            write_json(path, {"model": self.model, "base_url": self.base_url, "result": asdict(result)})
        return result

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str] | None = None,
                 progress: bool = True, desc: str = "api", journal: str | Path | None = None,
                 stall_timeout_s: float | None = None) -> list[Generation]:
        """Greedy answers to each conversation, in input order. No journal: every answer is cached
        as it arrives, so a rerun sends only what is missing."""
        return [Generation(text=r.text, tokens_in=r.tokens_in, tokens_out=r.tokens_out, latency_s=r.latency_s,
                           ttft_s=r.ttft_s, cached=r.cached, logprob=r.logprob, logprob_tokens=r.logprob_tokens)
                for r in self.answers(conversations, max_new_tokens=max_new_tokens, stop=stop, progress=progress,
                                      desc=desc)]

    def answers(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str] | None = None,
                progress: bool = True, desc: str = "api") -> list[APIResult]:
        """Greedy answers to each conversation, in input order, as the endpoint (or the cache) gave them."""
        from tqdm import tqdm

        params: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": 0.0}
        if stop:
            params["stop"] = list(stop)
        if self.reasoning_effort:  # the answer is still cut at the task's stop strings, here
            params = {"max_completion_tokens": max_new_tokens + self.reasoning_tokens,
                      "reasoning_effort": self.reasoning_effort}
        if self.template_kwargs:
            params["extra_body"] = {"chat_template_kwargs": self.template_kwargs}
        if self.logprobs:
            params["logprobs"] = True
        results: list[APIResult | None] = [None] * len(conversations)
        errors: dict[int, BaseException] = {}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool, \
                tqdm(total=len(conversations), desc=desc, unit="item", disable=not progress) as bar:
            futures = {pool.submit(self._one, msgs, params): i for i, msgs in enumerate(conversations)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except Exception as exc:  # noqa: BLE001 - reported together below
                    errors[i] = exc
                bar.update()
        if errors:
            skipped = sum(isinstance(e, CircuitOpen) for e in errors.values())
            first = next(e for e in errors.values() if not isinstance(e, CircuitOpen)) if skipped < len(errors) \
                else next(iter(errors.values()))
            cls = CircuitOpen if skipped else BackendError
            raise cls(f"{len(errors)} of {len(conversations)} request(s) to {self.base_url} failed"
                      + (f" ({skipped} not sent: {self.breaker_failures} consecutive failures opened the circuit)"
                         if skipped else "") + f"; first error: {type(first).__name__}: {first}",
                      field="source.base_url",
                      fix=f"check the endpoint and ${self.api_key_env}; rerun to send only what is missing "
                          "(answers received so far are cached)")
        return results  # type: ignore[return-value]
