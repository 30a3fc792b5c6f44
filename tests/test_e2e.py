"""The real workflow, end to end: `snakemake --config suite=test` on the embedded model, offline."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import CANARY_SECRETS, copy_repo, files_containing, run
from tunebench.core.atomic import read_json, read_jsonl

pytestmark = pytest.mark.e2e
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TASKS = {"ticket_routing", "ticket_product"}
BASE = "smollm2-135m-instruct"
TUNED = "smollm2-135m-instruct+ticket_routing-16"  # the test suite's LoRA system


def snakemake(repo: Path, *args: str):
    proc = run([SNAKEMAKE, "--cores", "2", "--config", "suite=test", *args], cwd=repo)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def planned_jobs(repo: Path) -> list[tuple[str, str]]:
    """(rule, output) for every job a dry run would execute."""
    out = snakemake(repo, "-n").stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        head = re.match(r"(?:local)?rule (\w+):", block.strip())
        outputs = re.search(r"output: ([^\n]+)", block)
        if head:
            jobs.append((head.group(1), outputs.group(1) if outputs else ""))
    return jobs


def deterministic(prediction: dict) -> dict:
    return {k: v for k, v in prediction.items() if k not in ("latency_s",)}


def test_test_suite_writes_a_valid_summary_in_its_own_namespace(demo_run):
    repo = demo_run
    summary = read_json(repo / "results/test/summary.json")
    jsonschema.validate(summary, read_json(repo / "configs/schema/summary.schema.json"))
    assert summary["suite"] == "test"
    primary = {(c["task"], c["prompting"]): c for c in summary["cells"] if c["primary"] and c["system"] == BASE}
    assert set(primary) == {(t, p) for t in TASKS for p in ("0shot", "5shot")} | {("ifbench", "0shot"),
                                                                                   ("humaneval", "0shot")}
    ifbench = [c for c in summary["cells"] if c["task"] == "ifbench" and c["system"] == BASE]
    assert {c["metric"] for c in ifbench} == {"prompt_level_strict_acc", "inst_level_strict_acc",
                                              "prompt_level_loose_acc", "inst_level_loose_acc"}
    humaneval = [c for c in summary["cells"] if c["task"] == "humaneval" and c["system"] == BASE]
    assert [c["metric"] for c in humaneval] == ["pass@1"]
    for cell in ifbench + humaneval:  # through lm-eval: stderr, n, and unscored prompts counted apart
        assert cell["source"] == "benchmark" and cell["n"] + cell["unscored"] == 5 and cell["stderr"] >= 0
        assert cell["partial"] is False and cell["ci_method"] == "bootstrap"
    for name in ("ifbench", "humaneval"):
        assert summary["provenance"]["benchmarks"][name]["chat_template"] is True  # recorded, on by default
        assert summary["provenance"]["benchmarks"][name]["limit"] == 5
        assert list((repo / f"results/test/lm_eval/smollm2-135m-instruct/{name}").rglob("samples_*.jsonl"))
    executions = read_json(repo / "results/test/lm_eval/smollm2-135m-instruct/humaneval/tunebench_meta.json")
    assert len(executions["executions"]) == 5  # every completion ran, in the sandbox
    primary = {k: v for k, v in primary.items() if k[0] in TASKS}
    for cell in primary.values():
        assert cell["n"] == 6
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]
        assert cell["model"] == "smollm2-135m-instruct" and cell["adapter"] is None
        assert cell["tokens_in_mean"] > 0 and cell["latency_p50_s"] > 0
    assert primary[("ticket_routing", "5shot")]["tokens_in_mean"] > primary[("ticket_routing", "0shot")]["tokens_in_mean"]
    assert {c["metric"] for c in summary["cells"] if c["task"] == "ticket_routing"} == {"accuracy", "macro_f1", "weighted_f1"}
    prov = summary["provenance"]
    assert len(prov["config_hash"]) == 64 and prov["packages"]["torch"]
    assert prov["models"]["smollm2-135m-instruct"]["parameters"] > 100_000_000
    md = (repo / "results/test/summary.md").read_text()
    assert "## ticket_routing" in md and "## ifbench" in md and "## humaneval" in md and "| smollm2-135m-instruct | 5shot |" in md
    # the fine-tuned system: its own task zero-shot, every benchmark, and the paired comparison
    tuned = {(c["task"], c["prompting"]) for c in summary["cells"] if c["system"] == TUNED and c["primary"]}
    assert tuned == {("ticket_routing", "0shot"), ("ifbench", "0shot"), ("humaneval", "0shot")}
    assert all(c["adapter"] == "ticket_routing-16" for c in summary["cells"] if c["system"] == TUNED)
    (report,) = summary["comparisons"]
    assert report["system"] == TUNED and report["base_system"] == BASE
    roles = {(r["role"], r["task"], r["base_prompting"]) for r in report["rows"] if r["primary"]}
    assert roles == {("target", "ticket_routing", "0shot"), ("target", "ticket_routing", "5shot"),
                     ("general", "ifbench", "0shot"), ("general", "humaneval", "0shot")}
    assert all(r["ci_low_pp"] <= r["delta_pp"] <= r["ci_high_pp"] for r in report["rows"])
    assert summary["adapters"][TUNED]["steps"] == 1 and summary["adapters"][TUNED]["train_tokens_per_s"] > 0
    assert f"## Fine-tuned: {TUNED}" in md
    # the shipped demo baseline, compared on the items both runs scored (the test suite's first 6)
    gate = read_json(repo / f"results/test/comparisons/{BASE}.json")
    assert gate["baseline"]["file"] == f"baselines/{BASE}.json" and gate["baseline"]["suite"] == "demo"
    routing = [r for r in gate["rows"] if r["task"] == "ticket_routing" and r["metric"] == "accuracy"]
    assert [r["n"] for r in routing] == [6, 6] and all(r["verdict"] == "PASS" for r in routing)
    assert read_json(repo / f"results/test/comparisons/{TUNED}.json")["baseline"] is None
    assert "| ticket_routing | 5shot | accuracy |" in (repo / f"results/test/comparisons/{BASE}.md").read_text()
    assert (repo / "results/test/adapters" / BASE / "ticket_routing-16/adapter_model.safetensors").is_file()
    # the run window covers every timed job of the run, the adapters' training (before their predictions)
    # too: the LoRA's and the classic baseline's fit
    trainings = [read_json(p) for p in sorted((repo / "results/test/adapters").glob("*/*/training.json"))]
    assert len(trainings) == 2
    for training in trainings:
        assert prov["started_at"] <= training["started_at"] and training["finished_at"] <= prov["finished_at"]
    assert prov["started_at"] == min(*(t["started_at"] for t in trainings), *(
        read_json(p)["timing"]["started_at"] for p in (repo / "results/test/scores").rglob("*.json")))
    assert not (repo / "results/summary.json").exists()  # the demo's namespace is untouched
    assert (repo / "resources/models/smollm2-135m-instruct/model.safetensors").stat().st_size > 400e6


def test_the_test_suite_ran_with_no_network_but_loopback(demo_run):
    """The run above went through the whole DAG inside a network namespace with only `lo`: the
    workflow needs no network after `make install` (as root; CI runs as root, elsewhere it skips)."""
    interfaces = (demo_run.parent / "offline-run.txt").read_text().split()
    if not interfaces:
        pytest.skip("not root: `unshare -n` needs root, so this run had the network (CI runs as root)")
    assert interfaces == ["lo"]
    assert (demo_run / "results/test/summary.json").is_file() and (demo_run / "results/test/site/index.html").is_file()


def test_credentials_in_the_environment_reach_no_log_result_or_site(demo_run):
    folders = [demo_run / name for name in ("results", "logs", ".snakemake", "data")]
    for name, value in CANARY_SECRETS.items():
        assert files_containing(value, *folders) == [], name


def test_second_run_has_nothing_to_do(demo_run):
    assert planned_jobs(demo_run) == []


def test_editing_a_prompt_reruns_only_that_task(demo_run, tmp_path):
    repo = copy_repo(tmp_path / "repo")
    for folder in ("data", "resources", "results", ".snakemake"):
        shutil.copytree(demo_run / folder, repo / folder, symlinks=True, copy_function=shutil.copy2)
    assert planned_jobs(repo) == []
    prompt = repo / "prompts/ticket_product.yaml"
    prompt.write_text(prompt.read_text().replace("Which product", "What product"))
    jobs = planned_jobs(repo)
    rules = sorted(rule for rule, _ in jobs)
    assert rules == ["all", "baseline_compare", "plots_render", "predictions_generate", "predictions_generate",
                     "predictions_score", "predictions_score", "site_build", "summary_build", "summary_collect"], rules
    cells = [output for rule, output in jobs if rule.startswith("predictions_")]
    assert all(TUNED not in output for output in cells)  # the LoRA system never saw ticket_product
    assert all("ticket_routing" not in output for output in cells)


def outputs_are_whole(results: Path) -> None:
    """After a kill: every result file there is complete (writes are atomic; leftovers are hidden
    temporary files that nothing reads)."""
    for path in results.rglob("*"):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(results).parts):
            continue
        if path.suffix == ".json":
            read_json(path)
        elif path.suffix == ".jsonl":
            read_jsonl(path)


def test_a_run_killed_at_drawn_points_resumes_to_the_same_predictions_and_scores(demo_run, tmp_path):
    """Stop the whole run (snakemake and every job) at kill points drawn over the jobs it has left (a
    job's start, its body running, its end; SIGKILL, or the SIGTERM that SLURM and Kubernetes send
    first), rerunning the same command each time: nothing half-written is ever taken for a result, no
    run asks for `--unlock` (a killed run's stale locks are removed by the next), and every prediction
    and score equals the uninterrupted run's. The seed and the points hit are in the failure message
    and printed (-rP); TUNEBENCH_KILL_SEED repeats them. `make soak` draws 20+ points."""
    import os
    import random
    import time

    from kill_points import STALE_REMOVED, kill_and_resume, snakemake_lock_files

    repo = demo_run
    first = repo / "results/test"
    kept = tmp_path / "first"
    shutil.copytree(first, kept)
    shutil.rmtree(first)
    shutil.rmtree(repo / "data")
    seed = int(os.environ.get("TUNEBENCH_KILL_SEED") or time.time_ns() % 100_000)
    command = [SNAKEMAKE, "--cores", "2", "--config", "suite=test"]
    kills = kill_and_resume(repo, command, random.Random(seed), 3, tmp_path,
                            after_kill=lambda: first.exists() and outputs_are_whole(first))
    stale = snakemake_lock_files(repo)
    why = f"seed {seed}, kill points:\n" + "\n".join(kills)
    print(f"kill test: {why}")  # pytest -rP shows it
    proc = run(command, cwd=repo)
    assert proc.returncode == 0, why + proc.stderr[-4000:]
    assert "--unlock" not in proc.stdout + proc.stderr and (not stale or STALE_REMOVED in proc.stderr), why
    for pred in sorted(kept.glob("predictions/*/*/*.jsonl")):
        again = first / pred.relative_to(kept)
        assert [deterministic(r) for r in read_jsonl(pred)] == [deterministic(r) for r in read_jsonl(again)], why
    for score in sorted(kept.glob("scores/*/*/*.json")):
        a, b = read_json(score), read_json(first / score.relative_to(kept))
        a.pop("timing"), b.pop("timing")
        assert a == b, why
    # base: 2 tasks x 2 promptings + ifbench + humaneval; LoRA: its task zero-shot + ifbench + humaneval;
    # classic: its task zero-shot
    assert len(list(kept.glob("scores/*/*/*.json"))) == 10
