"""The GPU check: the workflow's `test` suite on one CUDA GPU through vLLM and Unsloth, then raw vLLM.

    python perf/gpu_check.py [--cores N] [--budget-s 480] [--out perf/results/gpu.json] [--keep]

(`make gpu-check` builds the GPU venv and runs this.) Steps, within --budget-s seconds in all:

1. `snakemake --cores N --resources gpu=1 results/gpu-check/summary.json --configfile
   configs/config.yaml configs/gpu-check.yaml --config suite=test`: SmolLM2-135M-Instruct through
   `backend: vllm` (configs/models/smollm2-135m-instruct-vllm.yaml) and through transformers, each
   with an adapter trained by `trainer: unsloth` (4-bit QLoRA), lm-eval's vllm backend on the
   benchmark, and the workflow's own agreement check between the two backends. results/gpu-check/
   is cleared first (unless --keep), so every job runs and is timed.
2. Raw vLLM (`LLM.generate`, text prompts, its defaults) on the same rendered prompts as the
   vLLM cells (checked by their prompt hashes), one engine for all cells.
3. perf/results/gpu.json:
   - vllm: items/s of our vLLM cells (each cell is one job: a fresh engine, then one generate call;
     items/s counts the generate call only, as the cell's meta does) vs raw vLLM's generate calls,
     per cell and in all; the share of raw vLLM's outputs identical to ours, and whether vLLM
     counted the same prompt tokens (it would count one more for a doubled BOS);
   - unsloth: each adapter's training record (train tokens/s, steps, peak GPU memory);
   - agreement: the share of items whose parsed answer from vLLM equals the transformers backend's,
     on the same items (results/gpu-check/agreement/*.json), per cell and in all.

Exits 2 with one message where there is no CUDA GPU (or vLLM/Unsloth are not installed), 1 when
the workflow fails, 3 when the budget runs out; it is no test (the test suite never runs it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/config.yaml", "configs/gpu-check.yaml"]
SUITE = "test"
VLLM_MODEL, HF_MODEL = "smollm2-135m-instruct-vllm", "smollm2-135m-instruct"
RAW_RESERVE_S = 120  # of the budget, kept for the raw vLLM engine and its generate calls


def fail(message: str, code: int = 2) -> None:
    print(f"gpu_check: {message}", file=sys.stderr)
    sys.exit(code)


class CheckStopped(Exception):
    """The check cannot go on: `status` for the record, `code` for the exit."""

    def __init__(self, status: str, message: str, code: int):
        super().__init__(message)
        self.status, self.code = status, code


def require_gpu_stack() -> dict:
    """One CUDA GPU, vLLM and Unsloth, or one sentence saying what is missing."""
    try:
        import torch
    except ImportError:
        fail("torch is not installed in this Python; run `make gpu-check` (it builds .venv-gpu)")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        fail(f"no CUDA GPU here (torch.cuda.is_available() is False; torch {torch.__version__}, {build}): "
             "the GPU check needs one CUDA GPU; run `make gpu-check` on a GPU machine")
    missing = [m for m in ("vllm", "unsloth") if importlib.util.find_spec(m) is None]
    if missing:
        fail(f"{' and '.join(missing)} not installed in this Python ({sys.executable}); "
             "`make gpu-check` installs the vllm and unsloth extras into .venv-gpu")
    return {name: importlib.metadata.version(name) for name in ("torch", "vllm", "unsloth", "transformers", "trl")}


def run_workflow(cores: int, timeout_s: float, results_dir: Path) -> tuple[str, float]:
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [str(snakemake)] if snakemake.is_file() else [sys.executable, "-m", "snakemake"]
    cmd += [f"{results_dir.relative_to(ROOT)}/summary.json", "--cores", str(cores), "--resources", "gpu=1",
            "--configfile", *CONFIGS, "--config", f"suite={SUITE}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
           "DO_NOT_TRACK": "1"}
    print("gpu_check:", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=max(timeout_s, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return "timeout", time.perf_counter() - t0
    return ("ok" if rc == 0 else f"failed (snakemake exit {rc})"), time.perf_counter() - t0


def cell_prompts(project, model, task_name: str, prompting: str) -> tuple[list[str], dict]:
    """The cell's rendered prompts, built as tunebench.predict.generate builds them (the rows' hashes must match)."""
    from transformers import AutoTokenizer

    from tunebench.backends.base import render_messages
    from tunebench.core.atomic import read_jsonl
    from tunebench.predict.generate import eval_items
    from tunebench.tasks.prompting import PromptTemplate, draw_shots

    task = project.tasks[task_name]
    items = eval_items(ROOT / f"data/prepared/{task_name}/test.jsonl", project.suite["max_eval_items"])
    shots = draw_shots(read_jsonl(ROOT / f"data/prepared/{task_name}/train.jsonl"),
                       int(prompting.removesuffix("shot")), project.config["prompting"]["fewshot_seed"], task_name,
                       stratify=task.type == "classification")
    template = PromptTemplate.from_spec(project.prompts[task_name])
    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / project.model_dir(model.name)))
    use_template = model.chat_template and tokenizer.chat_template is not None
    prompts = [render_messages(tokenizer, template.messages(item, shots, task.labels), use_template) for item in items]
    return prompts, task.generation


def raw_vllm(project, results: Path, budget_end: float) -> dict:
    """Raw vLLM on the vLLM cells' prompts: one engine, one generate call per cell."""
    from vllm import LLM, SamplingParams

    from tunebench.core.atomic import read_json, read_jsonl
    from tunebench.tasks.prompting import prompt_hash

    model = project.models[VLLM_MODEL]
    cells = []
    for task_name in project.tasks:
        for prompting in project.promptings:
            prompts, gen = cell_prompts(project, model, task_name, prompting)
            base = results / "predictions" / VLLM_MODEL / task_name / prompting
            rows, meta = read_jsonl(f"{base}.jsonl"), read_json(f"{base}.meta.json")
            if [prompt_hash(p) for p in prompts] != [r["prompt_hash"] for r in rows]:
                raise CheckStopped("failed", f"the rebuilt prompts of {task_name}/{prompting} differ from the "
                                   "ones the workflow used (prompt_hash): this script no longer builds prompts as "
                                   "tunebench.predict.generate does", 1)
            cells.append({"task": task_name, "prompting": prompting, "prompts": prompts, "gen": gen, "rows": rows,
                          "meta": meta})
    max_new = max(c["gen"]["max_new_tokens"] for c in cells)
    t0 = time.perf_counter()
    llm = LLM(model=str(ROOT / project.model_dir(VLLM_MODEL)), dtype=model.dtype, seed=0,
              max_model_len=model.max_input_tokens + max_new, gpu_memory_utilization=0.85)
    engine_start_s = time.perf_counter() - t0
    out = []
    for c in cells:
        if time.perf_counter() > budget_end:
            raise CheckStopped("timeout", "the time budget ran out during the raw vLLM run", 3)
        params = SamplingParams(temperature=0.0, max_tokens=c["gen"]["max_new_tokens"], stop=c["gen"]["stop"] or None,
                                seed=0)
        t0 = time.perf_counter()
        answers = llm.generate(c["prompts"], params, use_tqdm=False)
        seconds = time.perf_counter() - t0
        ours = c["rows"]
        out.append({
            "task": c["task"], "prompting": c["prompting"], "n": len(ours),
            "ours_generate_s": c["meta"]["generate_s"], "ours_engine_start_s": c["meta"]["model_load_s"],
            "ours_items_per_s": c["meta"]["items_per_s"],
            "raw_generate_s": round(seconds, 4), "raw_items_per_s": round(len(answers) / seconds, 3),
            "raw_same_output": sum(a.outputs[0].text == r["output"] for a, r in zip(answers, ours)),
            "raw_same_prompt_tokens": sum(len(a.prompt_token_ids) == r["tokens_in"] for a, r in zip(answers, ours)),
        })
    n = sum(c["n"] for c in out)
    ours_s, raw_s = sum(c["ours_generate_s"] for c in out), sum(c["raw_generate_s"] for c in out)
    return {
        "model": VLLM_MODEL, "dtype": model.dtype, "items": n,
        "ours_items_per_s": round(n / ours_s, 3) if ours_s else None,
        "raw_items_per_s": round(n / raw_s, 3) if raw_s else None,
        "ours_speed_vs_raw": round(raw_s / ours_s, 3) if ours_s else None,  # items/s ours / raw: >1, ours faster
        "raw_engine_start_s": round(engine_start_s, 2),
        "raw_same_output_share": round(sum(c["raw_same_output"] for c in out) / n, 4) if n else None,
        "raw_same_prompt_tokens_share": round(sum(c["raw_same_prompt_tokens"] for c in out) / n, 4) if n else None,
        "cells": out,
    }


def adapters(project, results: Path) -> list[dict]:
    from tunebench.core.atomic import read_json

    keep = ("trainer", "device", "steps", "n_train", "train_seconds", "train_tokens", "train_tokens_per_s",
            "peak_gpu_mb", "best_eval_loss")
    out = []
    for name, system in project.systems.items():
        if system.adapter:
            record = read_json(results / "adapters" / system.model / system.adapter / "training.json")
            out.append({"system": name, **{k: record.get(k) for k in keep}})
    return out


def agreement(results: Path) -> dict:
    from tunebench.core.atomic import read_json

    report = read_json(results / "agreement" / f"{HF_MODEL}__{VLLM_MODEL}.json")
    return {"systems": report["systems"], "backends": report["backends"],
            "same_answer_share": report["agreement_rate"], "flagged": report["flagged"], "flags": report["flags"],
            "cells": [{k: r[k] for k in ("task", "prompting", "n", "agreement_rate", "exact_output_rate")}
                      for r in report["rows"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--budget-s", type=float, default=480, help="the whole check, workflow and raw vLLM")
    parser.add_argument("--out", type=Path, default=ROOT / "perf" / "results" / "gpu.json")
    parser.add_argument("--keep", action="store_true", help="keep results/gpu-check (rerun only what is missing)")
    args = parser.parse_args()
    versions = require_gpu_stack()
    started, deadline = datetime.now(timezone.utc), time.perf_counter() + args.budget_s

    from tunebench.config.loader import load_project_from_file
    from tunebench.core.atomic import write_json

    project = load_project_from_file(ROOT, CONFIGS, overrides={"suite": SUITE})
    results = ROOT / project.results_dir
    assert results.name == "gpu-check", results  # configs/gpu-check.yaml's own folder: safe to clear
    if not args.keep:
        shutil.rmtree(results, ignore_errors=True)
    status, workflow_s = run_workflow(args.cores, args.budget_s - RAW_RESERVE_S, results)
    record = {"status": status, "workflow_s": round(workflow_s, 1), "budget_s": args.budget_s, "versions": versions,
              "command": f"snakemake --resources gpu=1 --configfile {' '.join(CONFIGS)} --config suite={SUITE}",
              "started_at": started.isoformat(timespec="seconds")}
    stopped = None
    if status == "ok":
        record["unsloth"] = adapters(project, results)
        record["agreement"] = agreement(results)
        try:
            record["vllm"] = raw_vllm(project, results, deadline)
        except CheckStopped as exc:
            stopped, status = exc, exc.status
        record["total_s"] = round(args.budget_s - (deadline - time.perf_counter()), 1)
        if status == "ok" and record["total_s"] > args.budget_s:
            status = "timeout"
        record["status"] = status
    import torch

    record["gpu"] = torch.cuda.get_device_name(0)
    record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(args.out, record)
    print(json.dumps({k: record.get(k) for k in ("status", "gpu", "workflow_s", "total_s")}), flush=True)
    if status == "ok":
        v = record["vllm"]
        print(f"gpu_check: vLLM items/s ours {v['ours_items_per_s']} vs raw {v['raw_items_per_s']}; "
              f"raw output identical {v['raw_same_output_share']:.0%}; same answer as transformers "
              f"{record['agreement']['same_answer_share']:.0%}; Unsloth train tokens/s "
              f"{[a['train_tokens_per_s'] for a in record['unsloth']]} -> {args.out}")
    elif stopped is not None:
        fail(f"{stopped} (record in {args.out})", stopped.code)
    elif status == "timeout":
        fail(f"over the {args.budget_s:.0f} s budget (workflow {workflow_s:.0f} s); partial record in {args.out}", 3)
    else:
        fail(f"the workflow {status}; see results/gpu-check/logs/ (record in {args.out})", 1)


if __name__ == "__main__":
    main()
