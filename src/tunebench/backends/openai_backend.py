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
- Answers in the label set (`constrain`, classification tasks): tunebench.backends.openai_constraint.
- `batch: true` sends the cell through OpenAI's Batch API instead (tunebench.backends.openai_batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tunebench.backends import openai_batch
from tunebench.backends.base import BackendBase, BackendContext, Conversation, Generation
from tunebench.backends.openai_constraint import (
    CONSTRAINTS,
    FORMS,
    JSON_TOKENS,
    Refusals,
    hold_to_labels,
    refusal,
    response_format,
)
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
    answer_constraint: str | None = None  # set per answer after reading it, never cached


class OpenAIBackend(BackendBase):
    name = "openai"
    device = "remote"
    row_fields = ("ttft_s", "cached", "answer_constraint")

    def __init__(self, *, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 4,
                 max_retries: int = 3, timeout_s: float = 60.0, cache_dir: str | Path | None = None,
                 breaker_failures: int = 5, stream: bool = True, chat_template_kwargs: dict | None = None,
                 logprobs: bool = False, reasoning_effort: str | None = None, reasoning_tokens: int = 2048,
                 labels: tuple[str, ...] | list[str] = (), constrain: str = "none", batch: dict | None = None):
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
        if constrain not in CONSTRAINTS:
            raise TunebenchError(f"constrain: {constrain!r} is not one of {', '.join(CONSTRAINTS)}",
                                 field="constrain", fix="set constrain: auto, json_schema, json_object or none")
        self.labels = tuple(labels)
        self.forms: tuple[str, ...] = () if not self.labels or constrain == "none" else (
            FORMS if constrain == "auto" else (constrain,))
        self.answer_constraint = "none"  # the cell's, for the meta: a form, fallback:<reason>, or none
        self.batch = batch
        self.batch_info: dict | None = None  # the collected batch, for the meta

    @classmethod
    def from_context(cls, ctx: BackendContext) -> OpenAIBackend:
        if ctx.batch is not None and cls is OpenAIBackend:
            return OpenAIBatchBackend.from_context(ctx)
        m = ctx.model
        return cls(base_url=m.source["base_url"], model=m.source["model"],
                   api_key_env=m.source.get("api_key_env", "OPENAI_API_KEY"), concurrency=m.concurrency,
                   stream=m.stream, cache_dir=ctx.cache_dir, chat_template_kwargs=m.chat_template_kwargs,
                   logprobs=ctx.logprobs, reasoning_effort=m.source.get("reasoning_effort"),
                   reasoning_tokens=m.source.get("reasoning_tokens", 2048), labels=ctx.labels,
                   constrain=m.source.get("constrain", "none"), batch=ctx.batch)

    def run_meta(self) -> dict:
        return {**super().run_meta(), "endpoint": self.endpoint, "requests_sent": self.requests_sent,
                "cache_hits": self.cache_hits, "answer_constraint": self.answer_constraint}

    def close(self) -> None:
        self.client.close()

    def request_key(self, messages: list[dict], params: dict) -> str:
        blob = json.dumps({"base_url": self.base_url, "model": self.model, "messages": messages,
                           "params": params}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _call(self, messages: list[dict], params: dict, client: Any = None) -> APIResult:
        with self._lock:
            self.requests_sent += 1
        client = client or self.client
        t0 = time.perf_counter()
        if not self.stream:
            r = client.chat.completions.create(model=self.model, messages=messages, **params)
            usage = r.usage
            logprob, counted = api_logprob(getattr(r.choices[0].logprobs, "content", None))
            return APIResult(text=r.choices[0].message.content or "", latency_s=round(time.perf_counter() - t0, 4),
                             tokens_in=usage.prompt_tokens if usage else None,
                             tokens_out=usage.completion_tokens if usage else None, ttft_s=None,
                             logprob=logprob, logprob_tokens=counted)
        first, parts, usage, entries = None, [], None, []
        events = client.chat.completions.create(model=self.model, messages=messages, stream=True,
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

    def cached(self, messages: list[dict], params: dict) -> Path | None:
        """Where this request's answer is cached, if it is."""
        path = self._cache_path(self.request_key(messages, self.sent_params(params)))
        return path if path is not None and path.is_file() else None

    def is_cached(self, key: str) -> bool:
        path = self._cache_path(key)
        return path is not None and path.is_file()

    def store(self, key: str, result: dict, batch_id: str | None = None) -> None:
        """An answer (APIResult's fields) into the cache under its request key."""
        path = self._cache_path(key)
        if path is not None:
            write_json(path, {"model": self.model, "base_url": self.base_url, "result": asdict(APIResult(**result)),
                              **({"batch_id": batch_id} if batch_id else {})})

    def sent_params(self, params: dict) -> dict:
        """The settings as sent: without logprobs once the server refused them."""
        return {k: v for k, v in params.items() if k != "logprobs"} if self.logprobs_refused else params

    def _one(self, messages: list[dict], params: dict, probe: bool = False) -> APIResult:
        params = self.sent_params(params)
        key = self.request_key(messages, params)
        path = self._cache_path(key)
        if path is not None and path.is_file():
            with self._lock:
                self.cache_hits += 1
            return APIResult(**{**read_json(path)["result"], "cached": True})
        if self._consecutive_failures >= self.breaker_failures:
            raise CircuitOpen("circuit open: not sent")
        try:
            # a probe of response_format is not retried: llama-cpp-python refuses it with a 500,
            # which the client would otherwise retry with backoff
            result = (self._call(messages, params, client=self.client.with_options(max_retries=0)) if probe
                      else self._call(messages, params))
        except Exception as exc:
            if probe and refusal(exc):
                raise
            if "logprobs" in params and type(exc).__name__ == "BadRequestError" and "logprob" in str(exc).lower():
                with self._lock:
                    if not self.logprobs_refused:
                        log.warning("%s refuses token log-probs: answers have no confidence", self.base_url)
                    self.logprobs_refused = True
                return self._one(messages, params, probe)
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
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        """Greedy answers to each conversation, in input order. No journal: every answer is cached
        as it arrives, so a rerun sends only what is missing."""
        return [Generation(text=r.text, tokens_in=r.tokens_in, tokens_out=r.tokens_out, latency_s=r.latency_s,
                           ttft_s=r.ttft_s, cached=r.cached, logprob=r.logprob, logprob_tokens=r.logprob_tokens,
                           answer_constraint=r.answer_constraint)
                for r in self.answers(conversations, max_new_tokens=max_new_tokens, stop=stop, progress=progress,
                                      desc=desc)]

    def params(self, max_new_tokens: int, stop: list[str] | None, form: str | None) -> dict[str, Any]:
        """The request's generation settings (everything but model and messages); `form`: the
        response_format that holds the answer to the labels, or None for free text."""
        budget = max_new_tokens + (JSON_TOKENS if form else 0)
        params: dict[str, Any] = {"max_tokens": budget, "temperature": 0.0}
        if stop and not form:  # a stop string could cut the JSON; the schema ends the answer itself
            params["stop"] = list(stop)
        if self.reasoning_effort:  # the answer is still cut at the task's stop strings, here
            params = {"max_completion_tokens": budget + self.reasoning_tokens,
                      "reasoning_effort": self.reasoning_effort}
        if form:
            params["response_format"] = response_format(form, self.labels)
        if self.template_kwargs:
            params["extra_body"] = {"chat_template_kwargs": self.template_kwargs}
        if self.logprobs:
            params["logprobs"] = True
        return params

    def choose_form(self, conversations: list[Conversation], max_new_tokens: int,
                    stop: list[str] | None) -> tuple[str | None, dict[int, APIResult]]:
        """The response_format form this cell uses (None: free text), settled by sending the first
        unanswered item under each form in turn until the server takes one, and that item's answer
        by its index. Sets answer_constraint to the fallback and its reasons when none is taken."""
        if not self.forms:
            return None, {}
        memory = Refusals(self.cache_dir, self.base_url, self.model)
        refused, reasons = memory.read(), []
        for form in self.forms:
            if form in refused:
                reasons.append(f"{form} refused before ({refused[form]})")
                continue
            params = self.params(max_new_tokens, stop, form)
            probe = next((i for i, c in enumerate(conversations) if self.cached(c, params) is None), None)
            if self.batch is not None or probe is None:
                return form, {}  # a batch cannot ask first; every item already answered under this form
            try:
                return form, {probe: self._one(conversations[probe], params, probe=True)}
            except Exception as exc:  # noqa: BLE001 - anything but a refusal is the pool's to retry
                reason = refusal(exc)
                if reason is None:
                    return form, {}
                memory.add(form, reason)
                reasons.append(f"{form} refused ({reason})")
        self.answer_constraint = "fallback:" + "; ".join(reasons)
        log.warning("%s: answers are free text, not held to the labels: %s", self.base_url, "; ".join(reasons))
        return None, {}

    def answers(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str] | None = None,
                progress: bool = True, desc: str = "api") -> list[APIResult]:
        """Greedy answers to each conversation, in input order, as the endpoint (or the cache) gave
        them; a constrained answer's text is its label."""
        form, done = self.choose_form(conversations, max_new_tokens, stop)
        params = self.params(max_new_tokens, stop, form)
        if self.batch is not None:  # the answers come from a batch, into the cache: none is sent here
            openai_batch.run_phase(self, conversations, params)
        results = self._answer_all(conversations, params, progress, desc, done)
        if form:
            results, self.answer_constraint = hold_to_labels(results, self.labels, form)
            if self.answer_constraint != form:
                log.warning("%s: %s", self.base_url, self.answer_constraint.removeprefix("fallback:"))
            return results
        if self.forms:  # asked for and refused: the meta has the reasons
            return [replace(r, answer_constraint="fallback:refused") for r in results]
        return results

    def _answer_all(self, conversations: list[Conversation], params: dict, progress: bool,
                    desc: str, done: dict[int, APIResult]) -> list[APIResult]:
        from tqdm import tqdm

        results: list[APIResult | None] = [done.get(i) for i in range(len(conversations))]
        errors: dict[int, BaseException] = {}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool, \
                tqdm(total=len(conversations), initial=len(done), desc=desc, unit="item", disable=not progress) as bar:
            futures = {pool.submit(self._one, msgs, params): i for i, msgs in enumerate(conversations)
                       if i not in done}
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


class OpenAIBatchBackend(OpenAIBackend):
    """The OpenAI backend in a Batch API phase (tunebench.backends.openai_batch); its name marks the
    cell's meta, and so its price in the cost table."""
    name = "openai-batch"

    def run_meta(self) -> dict:
        return {**super().run_meta(), "batch": self.batch_info}
