"""API models answer in the label set: a classification cell's requests carry the labels as a
JSON-schema enum in response_format, read back to the label.

Against a REAL llama-cpp-python server (`python -m llama_cpp.server`, the shipped SmolLM2 GGUF, on
127.0.0.1): what is sent is captured off the wire with an HTTP client event hook (no mock). That server
answers OpenAI's `json_schema` form with a 500 and honours `json_object` with a `schema` (a grammar),
so `constrain: auto` settles on json_object. The fallback cases run against tests/openai_standin.py,
a STAND-IN server (deterministic text, no model) that refuses or ignores response_format.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys

import pytest
from openai_standin import OpenAIStandin
from test_backends import needs_llama_cpp, shipped_gguf
from test_openai_backend import free_port

from tunebench.backends.openai_backend import OpenAIBackend
from tunebench.core.atomic import read_jsonl

LABELS = ("billing", "refund", "login_problem")
CONVERSATIONS = [[{"role": "user", "content": f"Route this ticket to billing, refund or login_problem: {t}"}]
                 for t in ("I was charged twice.", "Give me my money back.", "My password is not accepted.")]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    from conftest import wait_for_server

    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(shipped_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048",
                                 "--model_alias", "smollm2"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait_for_server(f"http://127.0.0.1:{port}/v1/models", proc, log, "llama_cpp.server")
    yield f"http://127.0.0.1:{port}/v1"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture
def wire(monkeypatch):
    """Every chat request body the OpenAI client puts on the wire, from an httpx event hook."""
    import httpx2
    import openai

    sent: list[dict] = []
    real = openai.OpenAI

    def hook(request) -> None:
        if request.url.path.endswith("/chat/completions"):
            sent.append(json.loads(request.content))

    monkeypatch.setattr(openai, "OpenAI", lambda **kw: real(**kw, http_client=httpx2.Client(event_hooks={"request": [hook]})))
    return sent


def api_model(project, url: str, **source):
    return dataclasses.replace(project.models["smollm2-135m-instruct"], name="served", backend="openai", stream=False,
                               source={"kind": "api", "base_url": url, "model": "smollm2", "api_key_env": None, **source})


def cell(project, task, model, tmp_path, name: str = "cell"):
    from tunebench.predict.generate import generate_predictions

    meta = generate_predictions(
        task=task, model=model, model_dir=None, prompt_spec=project.prompts[task.name],
        train_path=tmp_path / "train.jsonl", test_path=tmp_path / "test.jsonl", shots=0, fewshot_seed=1,
        max_items=4, threads=1, out_rows=str(tmp_path / f"{name}.jsonl"), out_meta=str(tmp_path / f"{name}.meta.json"),
        system="served", prompting="0shot", progress=False)
    return meta, read_jsonl(tmp_path / f"{name}.jsonl")


@needs_llama_cpp
def test_a_classification_cell_sends_the_labels_as_an_enum_and_every_answer_is_a_label(
        llama_server, wire, routing_split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the answer cache lives under resources/ of the working directory
    project, task = routing_split
    meta, rows = cell(project, task, api_model(project, llama_server, constrain="auto"), tmp_path)
    # json_schema first: llama-cpp-python's server refuses it (500 naming response_format); then
    # json_object with the schema, which it turns into a grammar
    first, *rest = wire
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == list(task.labels)
    assert len(rest) == 4 and all(b["response_format"]["type"] == "json_object" for b in rest)
    assert all(b["response_format"]["schema"]["properties"]["label"]["enum"] == list(task.labels) for b in rest)
    assert all("stop" not in b for b in rest)  # a stop string could cut the JSON
    assert (meta["answer_constraint"], meta["requests_sent"], meta["cache_hits"]) == ("json_object", 5, 0)
    for row in rows:
        assert row["output"] in task.labels and row["parsed"] == row["output"]
        assert row["answer_constraint"] == "json_object" and row["tokens_out"] > 0

    wire.clear()  # a rerun: the refusal is remembered and every answer is cached
    meta, again = cell(project, task, api_model(project, llama_server, constrain="auto"), tmp_path, "again")
    assert wire == [] and meta["requests_sent"] == 0 and meta["answer_constraint"] == "json_object"
    assert [r["parsed"] for r in again] == [r["parsed"] for r in rows]


@needs_llama_cpp
def test_free_text_and_enum_answers_are_cached_apart_and_a_task_without_labels_sends_no_enum(
        llama_server, wire, tmp_path):
    free = OpenAIBackend(base_url=llama_server, model="smollm2", api_key_env=None, stream=False, concurrency=1,
                         cache_dir=tmp_path, labels=LABELS, constrain="none")
    free.complete(CONVERSATIONS[:1], max_new_tokens=8, stop=["\n"], progress=False)
    held = OpenAIBackend(base_url=llama_server, model="smollm2", api_key_env=None, stream=False, concurrency=1,
                         cache_dir=tmp_path, labels=LABELS, constrain="json_object")
    (answer,) = held.complete(CONVERSATIONS[:1], max_new_tokens=8, stop=["\n"], progress=False)
    assert (held.requests_sent, held.cache_hits) == (1, 0)  # the constraint is part of the cache key
    assert answer.text in LABELS and answer.answer_constraint == "json_object"
    unlabelled = OpenAIBackend(base_url=llama_server, model="smollm2", api_key_env=None, stream=False,
                               concurrency=1, cache_dir=tmp_path / "u", constrain="auto")
    unlabelled.complete(CONVERSATIONS[:1], max_new_tokens=8, stop=["\n"], progress=False)
    assert ["response_format" in b for b in wire] == [False, True, False]
    assert unlabelled.run_meta()["answer_constraint"] == "none"


def test_standin_refusing_response_format_falls_back_to_free_text_recorded_in_meta_and_rows(
        routing_split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project, task = routing_split
    with OpenAIStandin(answer="refund", refuse_response_format=True) as standin:
        meta, rows = cell(project, task, api_model(project, standin.url, constrain="auto"), tmp_path)
        assert meta["answer_constraint"].startswith("fallback:")
        assert "json_schema refused (HTTP 400" in meta["answer_constraint"]
        assert "json_object refused (HTTP 400" in meta["answer_constraint"]
        assert all(r["answer_constraint"] == "fallback:refused" and r["parsed"] == "refund" for r in rows)
        # both probes refused, then the 4 items as free text (with the task's stop strings)
        assert [b.get("response_format", {}).get("type") for b in standin.chat_bodies] == [
            "json_schema", "json_object", None, None, None, None]
        assert standin.chat_bodies[-1]["stop"] == task.generation["stop"]
        sent = len(standin.chat_bodies)
        meta, _ = cell(project, task, api_model(project, standin.url, constrain="auto"), tmp_path, "again")
        assert len(standin.chat_bodies) == sent  # the refusals are remembered: nothing is asked again
        assert meta["answer_constraint"].startswith("fallback:") and "refused before" in meta["answer_constraint"]


def test_standin_ignoring_response_format_is_a_recorded_fallback_read_as_free_text(tmp_path):
    with OpenAIStandin(answer="refund, I think", ignore_response_format=True) as standin:
        backend = OpenAIBackend(base_url=standin.url, model="m", api_key_env=None, concurrency=2,
                                cache_dir=tmp_path, labels=LABELS, constrain="json_schema")
        answers = backend.complete(CONVERSATIONS, max_new_tokens=8, stop=["\n"], progress=False)
    assert all(b["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == list(LABELS)
               for b in standin.chat_bodies)
    assert [a.text for a in answers] == ["refund, I think"] * 3
    assert all(a.answer_constraint == "fallback:not a label" for a in answers)
    assert backend.run_meta()["answer_constraint"] == (
        "fallback:3 of 3 answers under json_schema are not a label (read as free text)")


def test_an_unknown_constrain_value_is_one_clear_error():
    from tunebench.core.errors import TunebenchError

    with pytest.raises(TunebenchError, match="constrain: 'grammar' is not one of auto, json_schema"):
        OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=None, labels=LABELS, constrain="grammar")
