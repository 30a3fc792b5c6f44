"""The GPU check (perf/gpu_check.py, `make gpu-check`) is never run by the test suite: here,
only its config layering and its refusal on a machine without CUDA."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tunebench.config.loader import load_project_from_file


def test_the_gpu_check_config_layers_vllm_and_unsloth_onto_the_test_suite(repo_root):
    project = load_project_from_file(repo_root, ["configs/config.yaml", "configs/gpu-check.yaml"],
                                     overrides={"suite": "test"})
    assert {m: project.models[m].backend for m in project.models} == {
        "smollm2-135m-instruct": "transformers", "smollm2-135m-instruct-vllm": "vllm"}
    assert project.training["trainer"] == "unsloth" and project.training["max_steps"] == 3
    assert project.results_dir == "results/gpu-check" and project.suite["max_eval_items"] == 6
    assert project.config["agreement"]["pairs"] == [["smollm2-135m-instruct", "smollm2-135m-instruct-vllm"]]
    assert "smollm2-135m-instruct-vllm+ticket_routing-16" in project.systems


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_the_gpu_check_refuses_a_machine_without_cuda_in_one_sentence(repo_root, tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(repo_root / "perf" / "gpu_check.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("gpu_check: no CUDA GPU here") and proc.stderr.count("\n") == 1
    assert not out.exists()
