"""A STAND-IN for an OpenAI-compatible API, for tests: a small local HTTP server (stdlib, in a thread
of the test process, on 127.0.0.1) with the endpoints tunebench uses, answering with deterministic
text, never a model:

- POST /v1/chat/completions: a free-text answer (`answer`), or, when the request carries a
  response_format with a label enum, {"label": <one of them, chosen by the messages' hash>}. With
  `refuse_response_format` it answers any request carrying response_format with a 400 naming the
  field, as a server without structured outputs does; with `ignore_response_format` it answers
  free text whatever the request asks (as `transformers serve` does).
- POST /v1/files (multipart upload, purpose batch), GET /v1/files/{id}/content.
- POST /v1/batches, GET /v1/batches/{id}: a batch is `in_progress` until `release` is set (at once
  by default), then `completed`, its output file answering each line as the chat endpoint would;
  the custom_ids in `fail` get an error line instead.

It records what it was sent (`chat_bodies`, `uploads`), counts batch creations (`batches_created`),
and sets `polled` on the first poll of a batch.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStandin:
    def __init__(self, *, answer: str = "refund", refuse_response_format: bool = False,
                 ignore_response_format: bool = False):
        self.answer, self.refuse_response_format = answer, refuse_response_format
        self.ignore_response_format = ignore_response_format
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.chat_bodies: list[dict] = []
        self.uploads: list[bytes] = []
        self.batches_created = 0
        self.fail: set[str] = set()
        self.release = threading.Event()
        self.release.set()
        self.polled = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OpenAIStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # answers ---------------------------------------------------------------------------------
    def completion(self, body: dict) -> dict:
        text = self.answer
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") \
            or (body.get("response_format") or {}).get("schema")
        if schema and not self.ignore_response_format:
            labels = schema["properties"]["label"]["enum"]
            digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
            text = json.dumps({"label": labels[digest[0] % len(labels)]})
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        return {"id": "chatcmpl-standin", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                                     "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split()),
                          "total_tokens": prompt + len(text.split())}}

    def _finish(self, batch: dict) -> None:
        lines, errors = [], []
        for raw in self.files[batch["input_file_id"]].decode().splitlines():
            request = json.loads(raw)
            if request["custom_id"] in self.fail:
                errors.append({"id": "req", "custom_id": request["custom_id"], "response": None,
                               "error": {"code": "server_error", "message": "the stand-in failed this request"}})
            else:
                lines.append({"id": "req", "custom_id": request["custom_id"], "error": None,
                              "response": {"status_code": 200, "request_id": "r", "body": self.completion(request["body"])}})
        for kind, rows in (("output_file_id", lines), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files)}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[kind] = file_id
        batch.update(status="completed", completed_at=batch["created_at"] + 60,
                     request_counts={"total": len(lines) + len(errors), "completed": len(lines), "failed": len(errors)})

    # HTTP --------------------------------------------------------------------------------------
    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return None

            def _send(self, status: int, doc: dict | bytes, content_type: str = "application/json") -> None:
                data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self._body()
                if self.path == "/v1/chat/completions":
                    body = json.loads(raw)
                    with standin._lock:
                        standin.chat_bodies.append(body)
                    if standin.refuse_response_format and "response_format" in body:
                        return self._send(400, {"error": {"message": "response_format is not supported",
                                                          "type": "invalid_request_error", "param": "response_format"}})
                    answer = standin.completion(body)
                    if not body.get("stream"):
                        return self._send(200, answer)
                    text = answer["choices"][0]["message"]["content"]
                    events = [{"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                              {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
                    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                    return self._send(200, sse.encode(), "text/event-stream")
                if self.path == "/v1/files":
                    message = email.parser.BytesParser().parsebytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
                    part = next(p for p in message.get_payload() if p.get_param("name", header="content-disposition") == "file")
                    content = part.get_payload(decode=True)
                    with standin._lock:
                        file_id = f"file-{len(standin.files)}"
                        standin.files[file_id] = content
                        standin.uploads.append(content)
                    return self._send(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                                            "filename": "requests.jsonl", "purpose": "batch", "status": "processed"})
                if self.path == "/v1/batches":
                    body = json.loads(raw)
                    with standin._lock:
                        standin.batches_created += 1
                        batch_id = f"batch-{standin.batches_created}"
                        standin.batches[batch_id] = {
                            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                            "status": "in_progress", "created_at": int(time.time()), "output_file_id": None,
                            "error_file_id": None, "metadata": body.get("metadata"),
                            "request_counts": {"total": 0, "completed": 0, "failed": 0}}
                    return self._send(200, standin.batches[batch_id])
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                if parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in standin.batches:
                    standin.polled.set()
                    with standin._lock:
                        batch = standin.batches[parts[2]]
                        if batch["status"] == "in_progress" and standin.release.is_set():
                            standin._finish(batch)
                    return self._send(200, batch)
                if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content" and parts[2] in standin.files:
                    return self._send(200, standin.files[parts[2]], "application/octet-stream")
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

        return Handler
