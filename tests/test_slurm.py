"""The workflow on a real SLURM cluster: Debian's single-node slurmctld + slurmd + munge, started
here as root (tests/slurm_cluster.py), the `test` suite submitted through the SLURM executor plugin
with profiles/slurm-ci, to completion. Skipped, saying why, only where it cannot run because this is
not root; as root (CI is), a cluster that does not come up fails the test."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from slurm_cluster import Unavailable, cluster

from conftest import copy_repo, run
from tunebench.core.atomic import read_json

pytestmark = pytest.mark.e2e


def test_the_test_suite_runs_to_completion_on_a_real_slurm_cluster(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    # one task, one prompting condition and one general benchmark: every kind of job still goes
    # through sbatch, in less time
    (repo / "one-benchmark.yaml").write_text("suites: {test: {benchmarks: [ifbench]}}\ntasks: [ticket_routing]\n"
                                             "prompting: {shots: [0]}\n")
    try:
        with cluster(tmp_path / "slurm") as state:
            started = time.monotonic()
            proc = run([str(Path(sys.executable).with_name("snakemake")), "--profile", "profiles/slurm-ci",
                        "--config", "suite=test", "--configfile", "configs/config.yaml", "one-benchmark.yaml"],
                       cwd=repo, timeout=1500)
            wall = time.monotonic() - started
            logdir = repo / ".snakemake" / "slurm_logs"
            logs = sorted(logdir.rglob("*.log"))
            controller = (state / "slurmctld.log").read_text()
    except Unavailable as exc:
        if os.geteuid() == 0:  # as root (CI is) the cluster must come up: a start-up problem is a failure
            pytest.fail(f"the single-node SLURM cluster did not come up as root: {exc}")
        pytest.skip(f"no single-node SLURM here: {exc}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    summary = read_json(repo / "results/test/summary.json")
    jsonschema.validate(summary, read_json(repo / "configs/schema/summary.schema.json"))
    assert {c["task"] for c in summary["cells"]} == {"ticket_routing", "ifbench"}
    # every job went through sbatch (the profile groups small steps): one SLURM log per submission,
    # as many completions in the controller's log, and every kind of work among them
    submitted = " ".join(sorted({p.relative_to(logdir).parts[0] for p in logs}))
    for rule in ("raw_fetch", "model_materialize", "adapter_train", "predictions_generate", "predictions_score",
                 "lm_eval_run", "baseline_compare", "site_build", "summary_build"):
        assert rule in submitted, rule
    assert len(re.findall(r"_job_complete: JobId=\d+ done", controller)) == len(logs) >= 10
    print(f"SLURM run: {len(logs)} jobs in {wall:.0f} s")  # pytest -rP shows it


def test_the_slurm_profiles_keep_site_values_in_the_profile_only():
    from conftest import ROOT

    real = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert real["executor"] == "slurm" and real["software-deployment-method"] == "conda"
    assert set(real["default-resources"]) >= {"slurm_account", "slurm_partition", "runtime", "mem_mb"}
    ci = yaml.safe_load((ROOT / "profiles/slurm-ci/config.yaml").read_text())
    assert ci["slurm-status-command"] == "squeue"  # no accounting database on the CI cluster
    rules = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    assert "slurm_account" not in rules and "slurm_partition" not in rules
