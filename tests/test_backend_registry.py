"""The backend registry: built-in backends found by name without importing their engines, and a new
backend registered from outside the package used by generate_predictions with no other edit."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml

from tunebench.backends import (
    BackendBase,
    BackendContext,
    Conversation,
    Generation,
    Scored,
    backend_for,
    backend_names,
    register_backend,
)
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.errors import ConfigError
from tunebench.predict.generate import cut_at_stop, generate_predictions
from tunebench.tasks.parsing import PARSERS

HEAVY = ("torch", "transformers", "vllm", "llama_cpp", "openai")


def test_importing_the_registry_and_looking_up_every_backend_imports_no_engine():
    code = ("import sys; from tunebench.backends import backend_for, backend_names; "
            "[backend_for(n) for n in backend_names()]; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_built_in_backends_follow_the_protocol_under_their_registered_names(repo_root):
    schema = yaml.safe_load((repo_root / "configs/schema/model.schema.yaml").read_text())
    assert set(backend_names()) >= set(schema["properties"]["backend"]["enum"])  # every configurable one
    for name in ("transformers", "llamacpp", "vllm", "openai"):
        cls = backend_for(name)
        assert cls.name == name
        for method in ("from_context", "prompt_text", "complete", "score_labels", "run_meta", "close"):
            assert callable(getattr(cls, method)), (name, method)
    assert [n for n in backend_names() if backend_for(n).supports_loglik] == ["transformers"]


def test_an_unknown_backend_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError) as info:
        backend_for("tensorrt")
    assert info.value.field == "backend" and "transformers" in info.value.fix


class EchoBackend(BackendBase):
    """Answers with the item's own text; scores each label by its length (the longest wins)."""
    name = "echo"
    supports_loglik = True
    row_fields = ("cached",)
    device = "nowhere"
    built: list[BackendContext] = []
    closed = 0

    @classmethod
    def from_context(cls, ctx: BackendContext) -> EchoBackend:
        cls.built.append(ctx)
        return cls()

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str],
                 progress: bool = True, desc: str = "predict", journal=None, stall_timeout_s=None,
                 settled=None) -> list[Generation]:
        return [Generation(text=" " + c[-1]["content"], tokens_in=len(c), tokens_out=1, latency_s=0.5)
                for c in conversations]

    def score_labels(self, conversations: list[Conversation], answers: list[str], *, progress: bool = True,
                     desc: str = "score", journal=None, stall_timeout_s=None) -> list[Scored]:
        return [Scored(logprobs=[float(len(a)) for a in answers], tokens_in=len(c), latency_s=0.25, batch_size=2)
                for c in conversations]

    def run_meta(self) -> dict:
        return {**super().run_meta(), "echoed": True}

    def close(self) -> None:
        type(self).closed += 1


@pytest.fixture
def echo():
    import tunebench.backends as backends

    register_backend("echo", EchoBackend)
    EchoBackend.built, EchoBackend.closed = [], 0
    yield EchoBackend
    del backends._REGISTRY["echo"]


def run_cell(project, task, tmp_path, name, **kw):
    model = dataclasses.replace(project.models["smollm2-135m-instruct"], backend="echo")
    return generate_predictions(
        task=task, model=model, model_dir=None, prompt_spec=project.prompts[task.name],
        train_path=tmp_path / "train.jsonl", test_path=tmp_path / "test.jsonl", shots=2, fewshot_seed=1,
        max_items=4, threads=3, out_rows=str(tmp_path / f"{name}.jsonl"), out_meta=str(tmp_path / f"{name}.meta.json"),
        system="echo-sys", prompting="2shot", progress=False, **kw)


def test_a_backend_registered_from_a_test_is_used_by_generate_predictions(echo, routing_split, tmp_path):
    project, task = routing_split
    meta = run_cell(project, task, tmp_path, "gen", adapter_dir=tmp_path / "adapter")
    (ctx,) = echo.built
    assert ctx.model.backend == "echo" and ctx.model_dir is None and ctx.threads == 3
    assert ctx.adapter_dir == tmp_path / "adapter" and ctx.max_new_tokens == task.generation["max_new_tokens"]
    assert echo.closed == 1
    rows = read_jsonl(tmp_path / "gen.jsonl")
    items = read_jsonl(tmp_path / "test.jsonl")[:4]
    assert [r["id"] for r in rows] == [i["id"] for i in items]
    for row in rows:
        assert list(row) == ["id", "prompt_hash", "output", "parsed", "latency_s", "tokens_in", "tokens_out",
                             "batch_size", "cached"]  # the backend's own row field last
        assert "ticket number" in row["output"]
        assert row["parsed"] == PARSERS[task.parser](cut_at_stop(row["output"], task.generation["stop"]), task.labels)
        assert (row["latency_s"], row["tokens_out"], row["batch_size"], row["cached"]) == (0.5, 1, 1, False)
    assert meta["backend"] == "echo" and meta["device"] == "nowhere" and meta["method"] == "generate"
    assert meta["chat_template"] is True and meta["shared_prefix_tokens"] is None and meta["echoed"] is True
    assert list(meta)[list(meta).index("generation") + 1:][:4] == ["chat_template", "shared_prefix_tokens",
                                                                    "echoed", "n"]
    assert read_json(tmp_path / "gen.meta.json") == meta


def test_a_registered_backend_that_scores_labels_gets_loglik_tasks(echo, routing_split, tmp_path):
    project, task = routing_split
    meta = run_cell(project, dataclasses.replace(task, method="loglik"), tmp_path, "ll")
    longest = max(task.labels, key=len)
    assert meta["method"] == "loglik"
    for row in read_jsonl(tmp_path / "ll.jsonl"):
        assert row["parsed"] == longest and row["tokens_out"] == 0 and row["batch_size"] == 2
        assert list(row["label_logprobs"]) == list(task.labels)


def test_a_backend_that_cannot_score_labels_generates_a_loglik_task(echo, monkeypatch, routing_split, tmp_path):
    project, task = routing_split
    monkeypatch.setattr(EchoBackend, "supports_loglik", False)
    meta = run_cell(project, dataclasses.replace(task, method="loglik"), tmp_path, "fallback")
    assert meta["method"] == "generate"
    assert all("label_logprobs" not in r for r in read_jsonl(tmp_path / "fallback.jsonl"))
