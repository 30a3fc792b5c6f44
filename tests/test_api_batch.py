"""The Batch API path (`batch: true`) against tests/openai_standin.py, a STAND-IN for OpenAI's files
and batches endpoints (a local HTTP server answering with deterministic text, no model): submit and
collect, a partial failure named and resubmitted alone, batch prices in the cost table, and a real
Snakemake run killed between submit and collect that resumes without submitting again."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from openai_standin import OpenAIStandin

from tunebench.backends.openai_batch import BatchError, Submitted
from tunebench.core.atomic import read_json, read_jsonl


def batch_model(project, url: str, **source):
    return dataclasses.replace(project.models["smollm2-135m-instruct"], name="batched", backend="openai",
                               source={"kind": "api", "base_url": url, "model": "m", "api_key_env": None,
                                       "batch": True, "batch_poll_s": 0.01, **source})


def phase(project, task, model, tmp_path, name: str, **batch):
    from tunebench.predict.generate import generate_predictions

    return generate_predictions(
        task=task, model=model, model_dir=None, prompt_spec=project.prompts[task.name],
        train_path=tmp_path / "train.jsonl", test_path=tmp_path / "test.jsonl", shots=2, fewshot_seed=1,
        max_items=4, threads=1, out_rows=str(tmp_path / f"{name}.jsonl"), out_meta=str(tmp_path / f"{name}.meta.json"),
        system="batched", prompting="2shot", progress=False, batch=batch)


def test_submit_then_collect_makes_the_cell_and_a_failed_request_is_named_and_resubmitted_alone(
        routing_split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the answer cache lives under resources/ of the working directory
    project, task = routing_split
    receipt = tmp_path / "receipt.json"
    with OpenAIStandin(answer="refund") as standin:
        model = batch_model(project, standin.url, constrain="json_schema")
        with pytest.raises(Submitted):
            phase(project, task, model, tmp_path, "cell", phase="submit", receipt=receipt,
                  requests=tmp_path / "requests.jsonl")
        sent = read_json(receipt)
        assert (sent["batch_id"], sent["n"], standin.batches_created) == ("batch-1", 4, 1)
        lines = [json.loads(line) for line in standin.uploads[0].decode().splitlines()]
        assert sorted(line["custom_id"] for line in lines) == sent["requests"]
        assert all(line["url"] == "/v1/chat/completions" and line["body"]["model"] == "m" for line in lines)
        # the batch lines carry the label enum as the synchronous requests would
        assert all(line["body"]["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"]
                   == list(task.labels) for line in lines)
        assert (tmp_path / "requests.jsonl").read_bytes() == standin.uploads[0]
        assert standin.chat_bodies == [] and not (tmp_path / "cell.jsonl").exists()

        standin.fail = {lines[1]["custom_id"]}
        with pytest.raises(BatchError, match=r"(?s)batch batch-1 ended completed: 1 of 4 request\(s\) unanswered "
                                               r"\(\w{12}: server_error: the stand-in failed this request\).*"
                                               r"delete the receipt to resubmit only the rest"):
            phase(project, task, model, tmp_path, "cell", phase="collect", receipt=receipt)

        standin.fail = set()
        receipt.unlink()  # as the error says: the answers received are cached, only the failed one is resent
        with pytest.raises(Submitted):
            phase(project, task, model, tmp_path, "cell", phase="submit", receipt=receipt)
        assert read_json(receipt)["n"] == 1 and len(standin.uploads[1].decode().splitlines()) == 1
        meta = phase(project, task, model, tmp_path, "cell", phase="collect", receipt=receipt)
    assert standin.chat_bodies == []  # never a synchronous request
    rows = read_jsonl(tmp_path / "cell.jsonl")
    assert meta["backend"] == "openai-batch" and meta["batch"]["id"] == "batch-2"
    assert meta["batch"]["status"] == "completed" and meta["answer_constraint"] == "json_schema"
    assert meta["batch"]["turnaround_s"] == 60.0  # the stand-in completes a batch 60 s after its creation
    assert len(rows) == 4 and all(r["parsed"] in task.labels and r["latency_s"] == 60.0 for r in rows)
    assert all(r["answer_constraint"] == "json_schema" and r["tokens_in"] > 0 for r in rows)


def test_a_cell_already_answered_submits_no_batch(routing_split, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project, task = routing_split
    receipt = tmp_path / "receipt.json"
    with OpenAIStandin() as standin:
        model = batch_model(project, standin.url)
        for _ in (1, 2):
            with pytest.raises(Submitted):
                phase(project, task, model, tmp_path, "cell", phase="submit", receipt=receipt)
            meta = phase(project, task, model, tmp_path, "cell", phase="collect", receipt=receipt)
            assert standin.batches_created == 1 and meta["cache_hits"] == 4
    assert read_json(receipt)["batch_id"] is None  # the second submit found every answer cached


def test_batch_cells_are_priced_at_the_batch_rate():
    from tunebench.report.cost import cell_cost

    pricing = {"api": {"m": {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
                       "own": {"input_per_mtok": 2.0, "output_per_mtok": 8.0, "batch_input_per_mtok": 1.5,
                               "batch_output_per_mtok": 3.0}},
               "batch_discount": 0.5, "self_hosted": {"usd_per_hour": {"cpu": 0.1}, "utilization": 0.5},
               "tco": {"months": 1, "queries_per_day": 1}}

    def cost(model, backend):
        return cell_cost(model=model, is_api=True, device="remote", tokens_in_mean=1e6, tokens_out_mean=1e6,
                         items_per_s=None, pricing=pricing, backend=backend)

    sync, batch, own = cost("m", "openai"), cost("m", "openai-batch"), cost("own", "openai-batch")
    assert (sync["pricing"], sync["cost_per_query_usd"]) == ("api", 10.0)
    assert (batch["pricing"], batch["cost_per_query_usd"]) == ("api_batch", 5.0)
    assert (own["usd_per_mtok_in"], own["usd_per_mtok_out"], own["cost_per_query_usd"]) == (1.5, 3.0, 4.5)


def test_snakemake_killed_between_submit_and_collect_resumes_without_submitting_again(tmp_path):
    """A real Snakemake run of one batch cell: SIGKILLed (its whole process group) once collect is
    polling the submitted batch, then rerun: collect finishes the same batch, the stand-in saw one
    batch creation, and the cell is scored."""
    import yaml

    from conftest import copy_repo, run

    repo = copy_repo(tmp_path / "repo")
    standin = OpenAIStandin(answer="refund")
    standin.release.clear()  # the batch stays in progress until the run has been killed
    with standin:
        (repo / "configs/models/batched-api.yaml").write_text(yaml.safe_dump({
            "name": "batched-api", "backend": "openai", "source": {
                "kind": "api", "base_url": standin.url, "model": "m", "api_key_env": None,
                "batch": True, "batch_poll_s": 0.05}}))
        pricing = yaml.safe_load((repo / "configs/pricing.yaml").read_text())
        pricing["api"]["batched-api"] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        (repo / "configs/pricing.yaml").write_text(yaml.safe_dump(pricing))
        (repo / "extra.yaml").write_text(yaml.safe_dump({
            "models": ["batched-api"], "tasks": ["ticket_routing"], "finetune": {"tasks": []},
            "suites": {"test": {"benchmarks": []}}}))
        score = "results/test/scores/batched-api/ticket_routing/0shot.json"
        snakemake = [str(Path(sys.executable).with_name("snakemake")), score, "--cores", "2", "--configfile",
                     "configs/config.yaml", "extra.yaml", "--config", "suite=test"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        with open(tmp_path / "first.log", "w") as out:
            proc = subprocess.Popen(snakemake, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            # collect polls only after submit finished: the receipt is then on disk
            while not standin.polled.wait(timeout=1):
                assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        receipt = read_json(repo / "results/test/batches/batched-api/ticket_routing/0shot.json")
        assert standin.batches_created == 1 and receipt["batch_id"] == "batch-1"
        assert not (repo / "results/test/predictions/batched-api/ticket_routing/0shot.jsonl").exists()

        standin.release.set()
        proc2 = run(snakemake, cwd=repo)
        assert proc2.returncode == 0, proc2.stderr[-4000:]
    assert standin.batches_created == 1 and standin.chat_bodies == []  # collected, never resubmitted
    assert "api_batch_submit" not in proc2.stderr.split("Job stats:")[1].split("\n\n")[0]
    meta = read_json(repo / "results/test/predictions/batched-api/ticket_routing/0shot.meta.json")
    assert meta["backend"] == "openai-batch" and meta["batch"]["id"] == "batch-1"
    record = read_json(repo / score)
    assert record["backend"] == "openai-batch" and record["n"] == meta["n"] > 0
    assert record["timing"]["latency_p50_s"] == 60.0


def test_the_budget_preview_prices_a_batch_model_at_batch_rates(repo_root, tmp_path):
    from tunebench.config.loader import load_project_from_file
    from tunebench.plan.dag import PlannedJob
    from tunebench.plan.estimate import Estimator
    from tunebench.plan.records import PredictionRecord, Records

    project = load_project_from_file(repo_root, overrides={"models": ["smollm2-135m-instruct", "gpt-5.4-mini"]})
    wildcards = {"system": "gpt-5.4-mini", "task": "ticket_routing", "prompting": "0shot"}
    measured = PredictionRecord(results_dir="results", model="gpt-5.4-mini", adapter=None, method="generate",
                                backend="openai", device=None, n=40, generate_s=20.0, model_load_s=0.1, wall_s=26.0,
                                tokens_in_mean=212.5, tokens_out_mean=3.25, **wildcards)

    def usd(rule):
        job = PlannedJob(jobid=0, rule=rule, wildcards=wildcards, outputs=("out",), benchmark=None, gpu=0, threads=1,
                         deps=())
        return Estimator(project, Records(predictions=[measured]), tmp_path).estimate(job).usd

    synchronous = usd("predictions_generate")
    model = project.models["gpt-5.4-mini"]
    project.models["gpt-5.4-mini"] = dataclasses.replace(model, source={**model.source, "batch": True})
    assert synchronous and usd("api_batch_submit") == pytest.approx(synchronous * (1 - project.pricing["batch_discount"]))
