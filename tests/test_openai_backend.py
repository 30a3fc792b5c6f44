"""The OpenAI-compatible backend against a REAL server process: `transformers serve` (the HF stack's
OpenAI-compatible server) serving a tiny random Llama on 127.0.0.1, started and stopped here.
No mocked HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail("transformers serve did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.5)
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


def test_snakemake_runs_an_api_model_and_a_rerun_costs_zero_requests(server, tmp_path):
    """A model served by an OpenAI-compatible endpoint is a system like any other: its task cells
    come from the real server, and after deleting the results a rerun is answered from the cache."""
    import shutil

    import yaml

    from conftest import copy_repo, run
    from tunebench.atomic import read_json, read_jsonl

    repo = copy_repo(tmp_path / "repo")
    (repo / "configs/models/served-tiny.yaml").write_text(yaml.safe_dump({
        "name": "served-tiny", "backend": "openai", "concurrency": 2,
        "source": {"kind": "api", "base_url": server["url"], "model": server["model"]}}))
    (repo / "extra.yaml").write_text(yaml.safe_dump({"models": ["served-tiny"], "tasks": ["ticket_routing"],
                                                     "finetune": {"tasks": []}}))
    snakemake = [str(Path(sys.executable).with_name("snakemake")), "--cores", "2", "--configfile",
                 "configs/config.yaml", "extra.yaml", "--config", "suite=test"]
    before = requests_seen(server)
    proc = run(snakemake, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert requests_seen(server) - before == 12  # 6 items x (0shot, 5shot)
    summary = read_json(repo / "results/test/summary.json")
    cells = [c for c in summary["cells"] if c["primary"]]
    assert {(c["system"], c["task"], c["prompting"]) for c in cells} == {
        ("served-tiny", "ticket_routing", "0shot"), ("served-tiny", "ticket_routing", "5shot")}
    assert all(c["latency_p50_s"] > 0 and c["tokens_in_mean"] > 0 for c in cells)
    rows = read_jsonl(repo / "results/test/predictions/served-tiny/ticket_routing/5shot.jsonl")
    assert all(r["ttft_s"] is not None and r["cached"] is False for r in rows)
    assert not (repo / "resources/models").exists()  # no weights were materialized for it
    shutil.rmtree(repo / "results")
    proc = run(snakemake, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert requests_seen(server) - before == 12  # the rerun sent nothing
    again = read_jsonl(repo / "results/test/predictions/served-tiny/ticket_routing/5shot.jsonl")
    assert [r["output"] for r in again] == [r["output"] for r in rows] and all(r["cached"] for r in again)
