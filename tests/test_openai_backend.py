"""The OpenAI-compatible backend against a REAL server process: `transformers serve` (the HF stack's
OpenAI-compatible server) serving a tiny random Llama on 127.0.0.1, started and stopped here.
No mocked HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_for_server
from tunebench.backends.openai_backend import CircuitOpen, OpenAIBackend

CONVERSATIONS = [[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": q}]
                 for q in ("Name a fruit.", "Name a colour.", "Name a city.", "Name a river.")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_llama_dir):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cli = str(Path(sys.executable).with_name("transformers"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                                 "--dtype", "float32", str(tiny_llama_dir)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_server(f"{url}/health", proc, log, "transformers serve")
    yield {"url": f"{url}/v1", "model": str(tiny_llama_dir), "log": log}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def requests_seen(server) -> int:
    return server["log"].read_text().count("POST /v1/chat/completions")


def test_answers_with_latency_ttft_and_tokens_then_a_rerun_sends_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_API_KEY", "sk-canary-0123456789")
    backend = OpenAIBackend(base_url=server["url"], model=server["model"], api_key_env="TEST_API_KEY",
                            concurrency=2, cache_dir=tmp_path / "cache")
    before = requests_seen(server)
    first = backend.complete(CONVERSATIONS, max_new_tokens=6, progress=False)
    assert requests_seen(server) - before == 4 and backend.requests_sent == 4
    for r in first:
        assert r.tokens_in > 5 and 0 < r.tokens_out <= 6 and r.text
        assert 0 < r.ttft_s <= r.latency_s and not r.cached
    again = OpenAIBackend(base_url=server["url"], model=server["model"], api_key_env="TEST_API_KEY",
                          cache_dir=tmp_path / "cache")
    second = again.complete(CONVERSATIONS, max_new_tokens=6, progress=False)
    assert requests_seen(server) - before == 4 and again.requests_sent == 0 and again.cache_hits == 4
    assert [r.text for r in second] == [r.text for r in first] and all(r.cached for r in second)
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "sk-canary" not in cached  # the key never lands on disk


def test_the_served_model_agrees_with_the_transformers_backend(server, tiny_llama_dir):
    from tunebench.backends.transformers_backend import TransformersBackend

    local = TransformersBackend(tiny_llama_dir, threads=1)
    prompts = [local.render(c) for c in CONVERSATIONS[:3]]
    ours = [g.text for g in local.generate(prompts, max_new_tokens=6, stop=[], batch_size=1, progress=False)]
    served = OpenAIBackend(base_url=server["url"], model=server["model"], stream=False, concurrency=1)
    theirs = [r.text for r in served.complete(CONVERSATIONS[:3], max_new_tokens=6, progress=False)]
    assert theirs == ours  # greedy, fp32, same chat template: the same answers


def test_a_dead_endpoint_opens_the_circuit_and_stops_sending(tmp_path):
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=1,
                            timeout_s=2, concurrency=1, breaker_failures=2, cache_dir=tmp_path / "cache")
    with pytest.raises(CircuitOpen) as err:
        backend.complete(CONVERSATIONS, max_new_tokens=4, progress=False)
    assert backend.requests_sent == 2  # then the circuit opened: the other 2 items were never sent
    assert "2 not sent" in str(err.value) and "Fix:" in str(err.value)


def test_snakemake_runs_an_api_model_with_costs_and_agreement_and_a_rerun_costs_zero_requests(
        server, tmp_path, tiny_llama_dir):
    """A model served by an OpenAI-compatible endpoint is a system like any other: its task cells
    come from the real server and carry latency, cost per query and TCO; the same weights run
    locally through transformers are checked against it (backend agreement); after deleting the
    results a rerun is answered from the cache and gives identical results."""
    import shutil

    import yaml

    from conftest import CANARY_SECRETS, copy_repo, files_containing, run
    from tunebench.core.atomic import read_json, read_jsonl

    repo = copy_repo(tmp_path / "repo")
    (repo / "configs/models/served-tiny.yaml").write_text(yaml.safe_dump({
        "name": "served-tiny", "backend": "openai", "concurrency": 2,
        "source": {"kind": "api", "base_url": server["url"], "model": server["model"]}}))
    (repo / "configs/models/tiny-local.yaml").write_text(yaml.safe_dump({
        "name": "tiny-local", "backend": "transformers", "source": {"kind": "local", "path": str(tiny_llama_dir)}}))
    pricing = yaml.safe_load((repo / "configs/pricing.yaml").read_text())
    pricing["api"]["served-tiny"] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    (repo / "configs/pricing.yaml").write_text(yaml.safe_dump(pricing))
    (repo / "extra.yaml").write_text(yaml.safe_dump({
        "models": ["tiny-local", "served-tiny"], "tasks": ["ticket_routing"], "finetune": {"tasks": []},
        "suites": {"test": {"benchmarks": []}}, "agreement": {"pairs": [["tiny-local", "served-tiny"]]}}))
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "--cores", "2", "--configfile",
                 "configs/config.yaml", "extra.yaml", "--config", "suite=test"]
    before = requests_seen(server)
    proc = run(snakemake, cwd=repo, env=CANARY_SECRETS)  # the client sends OPENAI_API_KEY; nothing keeps it
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert requests_seen(server) - before == 12  # 6 items x (0shot, 5shot)
    for value in CANARY_SECRETS.values():
        assert files_containing(value, repo) == []
    summary = read_json(repo / "results/test/summary.json")
    cells = [c for c in summary["cells"] if c["primary"] and c["system"] == "served-tiny"]
    assert {(c["task"], c["prompting"]) for c in cells} == {("ticket_routing", "0shot"), ("ticket_routing", "5shot")}
    assert all(c["latency_p50_s"] > 0 and c["tokens_in_mean"] > 0 and c["ttft_p50_s"] > 0 for c in cells)
    rows = read_jsonl(repo / "results/test/predictions/served-tiny/ticket_routing/5shot.jsonl")
    assert all(r["ttft_s"] is not None and r["cached"] is False for r in rows)
    assert not (repo / "resources/models/served-tiny").exists()  # no weights were materialized for it

    costs = {(r["system"], r["prompting"]): r for r in summary["costs"]["rows"]}
    days = 12 * 365 / 12
    for prompting in ("0shot", "5shot"):
        api = costs[("served-tiny", prompting)]
        expected = (api["tokens_in_mean"] * 1.0 + api["tokens_out_mean"] * 2.0) / 1e6
        assert api["pricing"] == "api" and api["cost_per_query_usd"] == pytest.approx(expected, rel=1e-6)
        assert api["tco_usd"] == pytest.approx(expected * 10000 * days, rel=1e-5)
        local = costs[("tiny-local", prompting)]
        assert local["pricing"] == "self_hosted" and local["device"] == "cpu"
        assert local["cost_per_query_usd"] == pytest.approx(0.10 / 3600 / local["items_per_s"], rel=1e-6)
        assert local["tco_usd"] == pytest.approx(local["machines"] * 0.10 * 24 * days, rel=1e-5)
    assert costs[("served-tiny", "5shot")]["cost_per_query_usd"] > costs[("served-tiny", "0shot")]["cost_per_query_usd"]

    (agreement,) = summary["agreement"]
    assert agreement["systems"] == ["tiny-local", "served-tiny"]
    assert agreement["backends"] == ["transformers", "openai"]
    assert [(r["prompting"], r["n"]) for r in agreement["rows"]] == [("0shot", 6), ("5shot", 6)]
    # greedy, fp32, the same chat template: the served model says what the local one says
    assert all(r["agreement_rate"] == 1.0 and r["exact_output_rate"] == 1.0 for r in agreement["rows"])
    assert not agreement["flagged"]
    md = (repo / "results/test/summary.md").read_text()
    assert "## Cost and latency" in md and "## Backend agreement: tiny-local vs served-tiny" in md

    shutil.rmtree(repo / "results")
    proc = run(snakemake, cwd=repo, env=CANARY_SECRETS)  # a run needs the model's key variable set, even when cached
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert requests_seen(server) - before == 12  # the rerun sent nothing
    again = read_jsonl(repo / "results/test/predictions/served-tiny/ticket_routing/5shot.jsonl")
    assert [r["output"] for r in again] == [r["output"] for r in rows] and all(r["cached"] for r in again)
    rerun = read_json(repo / "results/test/summary.json")
    same = [(r["prompting"], r["value"], r["latency_p50_s"], r["ttft_p50_s"], r["cost_per_query_usd"], r["tco_usd"])
            for r in rerun["costs"]["rows"] if r["system"] == "served-tiny"]
    assert same == [(r["prompting"], r["value"], r["latency_p50_s"], r["ttft_p50_s"], r["cost_per_query_usd"],
                     r["tco_usd"]) for r in summary["costs"]["rows"] if r["system"] == "served-tiny"]


def test_an_api_cell_through_generate_predictions_records_ttft_cache_and_endpoint(routing_split, tmp_path,
                                                                                   monkeypatch):
    """No server needed: the transport is replaced, so this checks what generate_predictions makes
    of the backend's answers (rows hash the messages sent, carry ttft_s and cached; the meta names
    the endpoint and counts requests and cache hits) and that a rerun is answered from the cache."""
    import dataclasses
    import json

    from tunebench.backends.openai_backend import APIResult
    from tunebench.core.atomic import read_jsonl
    from tunebench.predict.generate import generate_predictions

    def fake_call(self, messages, params):
        with self._lock:
            self.requests_sent += 1
        return APIResult(text=f" refund\n{len(messages)}", tokens_in=11, tokens_out=2, latency_s=0.5, ttft_s=0.1)

    monkeypatch.setattr(OpenAIBackend, "_call", fake_call)
    monkeypatch.chdir(tmp_path)  # the answer cache lives under resources/ of the working directory
    project, task = routing_split
    model = dataclasses.replace(project.models["smollm2-135m-instruct"], name="fake-api", backend="openai",
                                source={"kind": "api", "base_url": "http://127.0.0.1:9/v1/", "model": "m"})

    def cell(name):
        meta = generate_predictions(
            task=dataclasses.replace(task, method="loglik"), model=model, model_dir=None,
            prompt_spec=project.prompts[task.name], train_path=tmp_path / "train.jsonl",
            test_path=tmp_path / "test.jsonl", shots=2, fewshot_seed=1, max_items=3, threads=1,
            out_rows=str(tmp_path / f"{name}.jsonl"), out_meta=str(tmp_path / f"{name}.meta.json"), system="fake-api",
            prompting="2shot", progress=False)
        return meta, read_jsonl(tmp_path / f"{name}.jsonl")

    meta, rows = cell("first")
    assert (meta["backend"], meta["device"], meta["method"]) == ("openai", "remote", "generate")
    assert (meta["endpoint"], meta["requests_sent"], meta["cache_hits"]) == ("http://127.0.0.1:9/v1/", 3, 0)
    assert list(meta)[list(meta).index("shared_prefix_tokens"):][:6] == [
        "shared_prefix_tokens", "endpoint", "requests_sent", "cache_hits", "answer_constraint", "n"]
    assert meta["answer_constraint"] == "none"  # the model sets no `constrain`
    for row in rows:
        assert list(row)[-3:] == ["ttft_s", "cached", "answer_constraint"] and row["answer_constraint"] is None
        assert row["ttft_s"] == 0.1 and row["cached"] is False
        assert row["parsed"] == "refund" and row["tokens_in"] == 11 and row["batch_size"] == 1
    assert rows[0]["prompt_hash"] != rows[1]["prompt_hash"]
    stored = json.loads(next((tmp_path / "resources/api_cache/fake-api").rglob("*.json")).read_text())
    assert stored["base_url"] == "http://127.0.0.1:9/v1"  # the cache keys on the normalized endpoint
    meta, again = cell("again")
    assert (meta["requests_sent"], meta["cache_hits"]) == (0, 3)
    assert [r["output"] for r in again] == [r["output"] for r in rows] and all(r["cached"] for r in again)
