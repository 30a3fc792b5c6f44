"""The baseweight suites plan as the seeds' benchmark runs: a real `snakemake -n` of the project,
offline (HF_HUB_OFFLINE=1, and as root in a network namespace with loopback only), no API server."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import copy_repo, offline_prefix, run

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TASKS = {"banking77", "cuad", "ledgar", "fpb", "medmcqa", "mbpp"}
OPEN = {"qwen3-8b", "gemma-3-4b", "phi-4-mini"}  # vLLM on a GPU, QLoRA adapters through Unsloth
API = "gpt-5.4-mini"  # the seed's frontier baseline: zero-shot and 5-shot only


def planned(repo: Path, suite: str) -> list[dict]:
    """Every job of a dry run: its rule, wildcards and resources."""
    proc = run([*offline_prefix(), SNAKEMAKE, "-n", "-p", "--cores", "1", "--config", f"suite={suite}"],
               cwd=repo, timeout=600, env={"OPENAI_API_KEY": ""})  # a dry run plans without the API key
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout):
        head = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not head:
            continue
        fields = {key: dict(part.split("=", 1) for part in value.split(", ") if "=" in part)
                  for key, value in re.findall(r"^\s+(wildcards|resources): (.+)$", block, re.M)}
        jobs.append({"rule": head.group(1), **fields.get("wildcards", {}),
                     "gpu": int(fields.get("resources", {}).get("gpu", 0)),
                     "output": (re.search(r"output: ([^\n]+)", block) or [None, ""])[1]})
    return jobs


@pytest.fixture(scope="module")
def plan_repo(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("baseweight") / "repo")


def test_the_baseweight_grid_is_planned_with_a_gpu_for_every_vllm_and_unsloth_job(plan_repo):
    jobs = planned(plan_repo, "baseweight")
    cells = [j for j in jobs if j["rule"] == "predictions_generate"]
    # the classic baseline: each classification task at both sizes, zero-shot, on the CPU
    classic = [j for j in cells if j["system"].startswith("classic+")]
    assert sorted((j["system"], j["task"], j["prompting"], j["gpu"]) for j in classic) == sorted(
        (f"classic+{t}-{s}", t, "0shot", 0) for t in ("banking77", "ledgar", "fpb") for s in ("500", "full"))
    assert sorted(j["rule"] for j in jobs if j["rule"] == "classic_fit") == ["classic_fit"] * 6
    cells = [j for j in cells if j not in classic]
    # condition of a cell: its prompting, and for an adapter its training size
    conditions = Counter((j["system"].partition("+")[0], j["task"],
                          j["prompting"] if "+" not in j["system"] else "lora-" + j["system"].rpartition("-")[2])
                         for j in cells)
    assert max(conditions.values()) == 1
    expected = {(m, t, c) for m in OPEN for t in TASKS for c in ("0shot", "5shot", "lora-500", "lora-full")}
    expected -= {(m, "mbpp", "lora-500") for m in OPEN}  # MBPP has 374 training problems: 500 is all of them
    expected |= {(API, t, c) for t in TASKS for c in ("0shot", "5shot")}
    assert set(conditions) == expected
    assert len(cells) == 6 * 3 * 4 - 3 + 6 * 2 == 81
    for j in cells:  # an adapter is evaluated on its own task, zero-shot
        if "+" in j["system"]:
            assert j["system"].split("+")[1].rpartition("-")[0] == j["task"] and j["prompting"] == "0shot"
    assert all(j["gpu"] == 1 for j in cells if j["system"].partition("+")[0] in OPEN)
    assert all(j["gpu"] == 0 for j in cells if j["system"] == API)  # an API cell needs no GPU

    trains = [j for j in jobs if j["rule"] == "adapter_train"]
    assert {(j["model"], j["task"], j["size"]) for j in trains} == {
        (m, t, s) for m in OPEN for t in TASKS for s in ("500", "full") if (t, s) != ("mbpp", "500")}
    assert len(trains) == 33 and all(j["gpu"] == 1 for j in trains)
    counts = Counter(j["rule"] for j in jobs)
    assert counts["model_materialize"] == 3  # the API model has no weights
    assert counts["raw_fetch"] == counts["split_prepare"] == 6 and counts["train_subset"] == 5  # the 500 caps
    assert "lm_eval_run" not in counts  # the seed scores its six tasks only
    assert all(j["output"].startswith(("results/baseweight/", "data/prepared/", "data/raw/", "resources/models/"))
               for j in jobs if j["output"])


def test_the_smoke_suite_plans_on_the_cpu_with_the_fixtures_in_its_own_data_folder(plan_repo):
    jobs = planned(plan_repo, "baseweight-smoke")
    cells = [j for j in jobs if j["rule"] == "predictions_generate"]
    assert {(j["task"], j["prompting"]) for j in cells if j["system"] == "smollm2-135m-instruct"} == {
        (t, p) for t in TASKS for p in ("0shot", "5shot")}
    trains = [j for j in jobs if j["rule"] == "adapter_train"]
    assert trains and {j["size"] for j in trains} == {"16"} and not any(j["gpu"] for j in jobs)
    fetched = [j["output"] for j in jobs if j["rule"] in ("raw_fetch", "split_prepare")]
    assert len(fetched) == 12 and all(o.startswith("data/baseweight-smoke/") for o in fetched)
