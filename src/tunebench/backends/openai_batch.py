"""OpenAI's Batch API for an API model with `batch: true`: half the price, answers within 24 h.

One cell is two jobs (rules/batch.smk), each a run of tunebench.predict.generate with the backend in
a batch phase, so the conversations, request settings and cache keys are the synchronous path's:

- submit: every request whose answer is not already in the API answer cache goes into a JSONL file
  (one line per distinct request, its cache key as custom_id), uploaded with the files API, and a
  batch is created over it. The job's output is a small receipt (batch id, input file id, the
  request keys); it ends there (`Submitted`), before any row is written.
- collect: polls the receipt's batch until it is completed, failed, expired or cancelled, downloads
  its output (and error) file and writes each answer into the answer cache; then the cell is made
  exactly as the synchronous path makes it, every answer a cache hit, so predictions_score and the
  summary read it unchanged. Its meta names the batch and the backend `openai-batch`, which the cost
  table prices at the pricing file's batch rates.

Resumable: a kill after submit leaves the receipt, and collect picks the batch up from it (a rerun
never submits again while the receipt stands); a kill during collect reruns collect only, which
downloads again. Requests that failed inside the batch are named, their answers missing from the
cache: deleting the receipt resubmits those alone. A kill between the batch's creation and the
receipt's write (milliseconds) would leave a batch nobody collects: the one window not covered.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from tunebench.backends.base import Conversation
from tunebench.backends.token_logprobs import api_logprob
from tunebench.core.atomic import read_json, write_json, write_text
from tunebench.core.errors import DataError, TunebenchError

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
DONE = ("completed", "failed", "expired", "cancelled")


class Submitted(Exception):  # noqa: N818 - not a failure: the submit job's normal end
    """The batch is submitted (or nothing was left to submit): the receipt is written."""

    def __init__(self, receipt: dict):
        super().__init__(f"batch {receipt['batch_id']} submitted with {receipt['n']} request(s)")
        self.receipt = receipt


class BatchError(TunebenchError):
    """The batch ended without answering every request of the cell."""


class Host(Protocol):
    """What a batch phase uses of tunebench.backends.openai_backend.OpenAIBackend (which imports
    this module, so this one does not import it back)."""
    batch: dict | None
    batch_info: dict | None
    client: Any
    endpoint: str
    model: str

    def cached(self, messages: Conversation, params: dict) -> Path | None: ...

    def request_key(self, messages: list[dict], params: dict) -> str: ...

    def sent_params(self, params: dict) -> dict: ...

    def is_cached(self, key: str) -> bool: ...

    def store(self, key: str, result: dict, batch_id: str) -> None: ...


def request_body(backend: Host, messages: Conversation, params: dict) -> dict:
    """The chat request as one batch line sends it (extra_body's fields are the body's own)."""
    body = {"model": backend.model, "messages": messages, **{k: v for k, v in params.items() if k != "extra_body"}}
    return {**body, **params.get("extra_body", {})}


def run_phase(backend: Host, conversations: list[Conversation], params: dict) -> None:
    """Submit (ends in `Submitted`) or collect (fills the answer cache) the requests of a cell."""
    assert backend.batch is not None
    sent = backend.sent_params(params)
    missing: dict[str, Conversation] = {}
    for messages in conversations:
        if backend.cached(messages, params) is None:
            missing.setdefault(backend.request_key(messages, sent), messages)
    receipt = Path(backend.batch["receipt"])
    if backend.batch["phase"] == "submit":
        raise Submitted(submit(backend, missing, sent, receipt, backend.batch.get("requests")))
    collect(backend, missing, receipt, poll_s=float(backend.batch.get("poll_s", 30.0)),
            timeout_s=float(backend.batch.get("timeout_s", 26 * 3600.0)))


def submit(backend: Host, missing: dict[str, Conversation], params: dict, receipt_path: Path,
           requests_path: str | Path | None = None) -> dict:
    """Upload the missing requests and create their batch; the receipt is written and returned."""
    lines = [{"custom_id": key, "method": "POST", "url": ENDPOINT, "body": request_body(backend, msgs, params)}
             for key, msgs in missing.items()]
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if requests_path is not None:
        write_text(requests_path, data)
    receipt: dict[str, Any] = {"endpoint": backend.endpoint, "model": backend.model, "n": len(lines),
                               "requests": sorted(missing), "batch_id": None, "input_file_id": None,
                               "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if lines:
        upload = backend.client.files.create(file=("requests.jsonl", data.encode("utf-8"), "application/jsonl"),
                                             purpose="batch")
        batch = backend.client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h",
                                              metadata={"tunebench": "predictions"})
        receipt.update(batch_id=batch.id, input_file_id=upload.id)
        log.info("batch %s: %d request(s) submitted to %s", batch.id, len(lines), backend.endpoint)
    else:
        log.info("every request of the cell is answered in the cache: no batch submitted")
    write_json(receipt_path, receipt)
    return receipt


def poll(backend: Host, batch_id: str, poll_s: float, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = backend.client.batches.retrieve(batch_id)
        if batch.status in DONE:
            return batch
        if time.monotonic() > deadline:
            raise BatchError(f"batch {batch_id} is still {batch.status} after {timeout_s / 3600:.1f} h",
                               field="batch", fix="rerun later: collect picks the same batch up again")
        time.sleep(poll_s)


def result_of(response: dict, latency_s: float) -> dict:
    """One batch answer as the fields of the answer cache's record (openai_backend.APIResult)."""
    body = response["body"]
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    logprob, counted = api_logprob((choice.get("logprobs") or {}).get("content"))
    return {"text": choice["message"].get("content") or "", "tokens_in": usage.get("prompt_tokens"),
            "tokens_out": usage.get("completion_tokens"), "latency_s": latency_s, "ttft_s": None,
            "logprob": logprob, "logprob_tokens": counted}


def collect(backend: Host, missing: dict[str, Conversation], receipt_path: Path, *, poll_s: float,
            timeout_s: float) -> None:
    """Wait for the receipt's batch and put its answers in the cache; every missing request must
    then be answered, or the failures are named."""
    receipt = read_json(receipt_path)
    info: dict[str, Any] = {"id": receipt["batch_id"], "input_file_id": receipt["input_file_id"],
                            "submitted": receipt["n"], "status": None}
    backend.batch_info = info
    uncovered = sorted(set(missing) - set(receipt["requests"]))
    if uncovered:
        raise DataError(f"{len(uncovered)} request(s) of this cell are neither answered nor in batch "
                        f"{receipt['batch_id']}", file=str(receipt_path), field="requests",
                        fix="delete the receipt: the submit job then sends what is missing")
    if not missing:
        return
    batch = poll(backend, receipt["batch_id"], poll_s, timeout_s)
    # what a batch answer took: submission to completion, the same for every item of the batch
    latency_s = float(max(0, (batch.completed_at or batch.expired_at or int(time.time())) - batch.created_at))
    failures: dict[str, str] = {}
    answered = 0
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        for line in backend.client.files.content(file_id).text.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            key, response = entry["custom_id"], entry.get("response") or {}
            if key not in missing:
                continue
            if entry.get("error") or response.get("status_code") != 200:
                error = entry.get("error") or (response.get("body") or {}).get("error") or {}
                status = response.get("status_code") or error.get("code")
                failures[key] = f"{status}: {error.get('message', error)}"
                continue
            backend.store(key, result_of(response, latency_s), batch.id)
            answered += 1
    counts = batch.request_counts
    info.update(status=batch.status, answered=answered, failed=len(failures), turnaround_s=latency_s,
                request_counts=counts.model_dump() if counts is not None else None)
    unanswered = [k for k in missing if not backend.is_cached(k)]
    if batch.status != "completed" or unanswered:
        named = "; ".join(f"{k[:12]}: {failures.get(k, 'no answer in the output')}" for k in unanswered[:3])
        raise BatchError(f"batch {batch.id} ended {batch.status}: {len(unanswered)} of {len(missing)} request(s) "
                           f"unanswered" + (f" ({named})" if named else ""), field="batch", file=str(receipt_path),
                           fix="the answers received are cached: delete the receipt to resubmit only the rest")
    log.info("batch %s: %d answer(s) collected in %.0f s", batch.id, answered, latency_s)
