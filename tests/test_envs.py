"""Every rule that runs code names its conda environment, every environment is pinned, and the rules
that need a GPU say so (`resources: gpu=1`) and get the environment that has the GPU stack."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

RULE = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)


def rules() -> dict[str, str]:
    return {name: body for path in sorted((ROOT / "rules").glob("*.smk"))
            for name, body in RULE.findall(path.read_text())}


def test_every_rule_that_runs_code_has_a_conda_env_and_every_env_is_used():
    found = rules()
    assert len(found) >= 18
    missing = [name for name, body in found.items()
               if re.search(r"^\s+(script|shell|run):", body, re.M) and "    conda:" not in body]
    assert missing == []
    text = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    referenced = set(re.findall(r"\.\./envs/([\w.-]+\.yaml)", text))
    assert referenced == {p.name for p in (ROOT / "envs").glob("*.yaml")}


def test_every_environment_is_pinned():
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        assert env["channels"][0] == "conda-forge" and "nodefaults" in env["channels"], path.name
        for dep in env["dependencies"]:
            if isinstance(dep, dict):
                for req in dep["pip"]:
                    if req.startswith(("-e ", "--")):
                        continue
                    assert "==" in req, f"{path.name}: pip {req} is not pinned"
            elif dep != "pip":
                assert re.search(r"[^=<>]=[0-9]", dep), f"{path.name}: {dep} is not pinned"


def test_gpu_rules_are_tagged_and_cpu_torch_never_reaches_them():
    found = rules()
    assert "gpu=TRAIN_GPUS" in found["adapter_train"]
    assert "gpu=get_predict_gpus" in found["predictions_generate"] and "conda:\n        get_predict_env" in found[
        "predictions_generate"]
    assert "gpu=get_predict_gpus" in found["lm_eval_run"]
    for name in ("vllm.yaml", "train-unsloth.yaml"):  # their CUDA torch comes with vLLM / Unsloth
        assert "torch==2.13.0" not in (ROOT / "envs" / name).read_text()
    for name in ("model_materialize", "adapter_train", "predictions_generate", "lm_eval_run"):  # the heavy ones
        assert "mem_mb=" in found[name] and "threads:" in found[name], name
