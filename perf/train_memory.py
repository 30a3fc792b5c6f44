"""Training memory and time: the LoRA path (tunebench.train.lora.train_adapter) on SmolLM2-135M-Instruct.

Memory: 128 synthetic ticket_routing examples of ~600 tokens (deterministic), trained for a few steps with
the cpu-lora hyperparameters (max_length raised to 1,024 to hold them); the peak RSS of each run (VmHWM
of its own child process) against the estimate the job checks before training. The path before this
change (TRL's own loss over every position, the whole batch in one pass: `lean=False`) needed ~22 GiB
there, more than a shared 24 GiB machine can give: it is measured on the same rows at shorter lengths
(~150 and ~300 tokens) and extrapolated linearly in tokens per pass (its activations and logit tiles
grow with them), as stated in the results.

Time: the demo's training set (ticket_routing train-128, cpu-lora, 2 threads), 4 optimizer steps (--quick: 2) and
one evaluation per run, old path and new path back to back in alternating order; the ratio is the number
(the machine is shared, so absolute seconds drift).

    .venv/bin/python perf/train_memory.py            # writes perf/results/train_memory.json
    .venv/bin/python perf/train_memory.py --quick    # fewer steps, no old-path timing
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
TASK = "ticket_routing"
GOAL_MB = 4096
WORDS = ("order parcel refund charged twice card account login password delivery courier tracking number "
         "address invoice receipt subscription cancel upgrade plan warranty broken screen battery app crash "
         "update email phone support agent week yesterday morning again still never arrived late wrong item "
         "size colour return label box damaged missing part").split()


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_rows(n: int, words: int, labels: list[str], seed: int) -> list[dict]:
    """`n` tickets of `words` words each (~1.1 tokens a word with the prompt), labels in turn."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [{"id": f"s{seed}-{i:04d}", "input": " ".join(rng.choice(WORDS, size=words)) + ".",
             "target": labels[i % len(labels)]} for i in range(n)]


def model_dir(arg: str | None) -> Path:
    """The demo's materialized model (as perf/predict_vs_lmeval.py finds it), built the workflow's way if absent."""
    folder = Path(arg) if arg else ROOT / "resources" / "models" / MODEL
    if not (folder / "model.safetensors").is_file():
        print(f"building {folder} with snakemake", flush=True)
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", str(folder.relative_to(ROOT))],
                       cwd=ROOT, check=True)
    return folder


def demo_data(data_dir: str | None) -> tuple[Path, Path]:
    folder = Path(data_dir) if data_dir else ROOT / "data" / "prepared" / TASK
    targets = [folder / "train-128.jsonl", folder / "val.jsonl"]
    if not all(t.is_file() for t in targets):
        print(f"building {' '.join(map(str, targets))} with snakemake", flush=True)
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2",
                        *[str(t.relative_to(ROOT)) for t in targets]], cwd=ROOT, check=True)
    return targets[0], targets[1]


def child(spec: dict) -> dict:
    """One training run in this (fresh) process: its record, and this process's own peak RSS."""
    import yaml

    from tunebench.config.loader import load_project_from_file
    from tunebench.core.atomic import write_jsonl
    from tunebench.train.lora import train_adapter

    project = load_project_from_file(ROOT)
    task, prompt = project.tasks[TASK], project.prompts[TASK]
    hp = {**yaml.safe_load((ROOT / "configs" / "training" / "cpu-lora.yaml").read_text()), **spec["hp"]}
    work = Path(spec["work"])
    if spec.get("train"):
        train, val = Path(spec["train"]), Path(spec["val"])
    else:
        labels = list(task.labels)
        train, val = work / "train.jsonl", work / "val.jsonl"
        write_jsonl(train, synthetic_rows(spec["n"], spec["words"], labels, 0))
        write_jsonl(val, synthetic_rows(hp["max_val_items"], spec["words"], labels, 1))
    t0 = time.perf_counter()
    record = train_adapter(task=task, prompt_spec=prompt, hp=hp, hp_file="configs/training/cpu-lora.yaml",
                           model_dir=spec["model_dir"], train_path=train, val_path=val, out_dir=work / "adapter",
                           work_root=work / "work", threads=spec["threads"], progress=False,
                           mem_mb=spec.get("mem_mb"), lean=spec["lean"])
    return {"peak_rss_mb": round(peak_rss_mb(), 1), "wall_s": round(time.perf_counter() - t0, 2),
            "train_seconds": record["train_seconds"], "steps": record["steps"],
            "estimate_mb": record["memory_estimate"]["peak_mb"], "estimate_parts_mb": record["memory_estimate"]["parts_mb"],
            "micro_batch_rows": record["micro_batch_rows"], "padded_length": record["memory_estimate"]["padded_length"],
            "tokens_per_example_mean": record["tokens_per_example_mean"],
            "loss_curve": [round(p["loss"], 4) for p in record["loss_curve"]],
            "eval_curve": [round(p["eval_loss"], 4) for p in record["eval_curve"]]}


def run(name: str, spec: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="train-memory-") as work:
        spec = {**spec, "work": work}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                              text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                                              "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    err = (result["estimate_mb"] - result["peak_rss_mb"]) / result["peak_rss_mb"]
    result["estimate_error_pct"] = round(100 * err, 1)
    print(f"{name}: peak {result['peak_rss_mb']:.0f} MB, estimate {result['estimate_mb']} MB ({100 * err:+.0f} %), "
          f"{result['micro_batch_rows']} rows x {result['padded_length']} tokens per pass, "
          f"train {result['train_seconds']} s", flush=True)
    return {"case": name, **spec, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="demo timing: 2 steps, old and new once each")
    parser.add_argument("--no-timing", action="store_true", help="memory only")
    parser.add_argument("--model-dir", help=f"default: resources/models/{MODEL} (built if absent)")
    parser.add_argument("--data-dir", help=f"the demo's prepared {TASK} folder (default data/prepared/{TASK})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "perf" / "results" / "train_memory.json"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from tunebench.core.atomic import write_json

    model = str(model_dir(args.model_dir))
    base = {"model_dir": model, "threads": args.threads}
    # 128 examples of ~600 tokens (520 words), 8 rows per optimizer step, one step (a step's peak is every
    # step's: the same rows and lengths) and one evaluation on 8 of the same length
    long_hp = {"max_length": 1024, "max_steps": 1, "eval_steps": 1, "max_val_items": 8}
    cases = [run("new: 128 x ~600 tokens", {**base, "n": 128, "words": 520, "lean": True, "hp": long_hp})]
    # the old path where it fits: 8 rows of ~110 and ~190 tokens, one step each (a step's peak does not
    # depend on how many examples follow); the new path on the same rows for the estimate's error
    short = []
    for words in (50, 110):
        hp = {"max_length": 1024, "max_steps": 1, "eval_steps": 1, "max_val_items": 8}
        for lean in (False, True):
            short.append(run(f"{'new' if lean else 'old'}: 8 x {words} words", {**base, "n": 8, "words": words,
                                                                                 "lean": lean, "hp": hp}))
    old = [c for c in short if not c["lean"]]
    # linear in tokens per pass: peak = a + b * tokens, through the two old-path points
    (t1, p1), (t2, p2) = [(c["micro_batch_rows"] * c["padded_length"], c["peak_rss_mb"]) for c in old]
    slope = (p2 - p1) / (t2 - t1)
    target = cases[0]
    target_tokens = 8 * target["padded_length"]
    old_extrapolated = round(p1 + slope * (target_tokens - t1))
    timing = []
    if not args.no_timing:
        train, val = demo_data(args.data_dir)
        demo_hp = {"max_steps": 2 if args.quick else 4, "eval_steps": 2 if args.quick else 4}
        for lean in (False, True) if args.quick else (False, True, False, True):  # alternating: load drifts
            timing.append(run(f"demo {'new' if lean else 'old'}", {**base, "train": str(train), "val": str(val),
                                                                    "lean": lean, "hp": demo_hp}))
    report = {
        "what": "LoRA training peak RSS and time, tunebench.train.lora.train_adapter on SmolLM2-135M-Instruct "
                "(fp32, CPU), the path before (TRL loss over every position, whole batch per pass) and after "
                "(loss at answer tokens only, micro-batches of batch_tokens, gradient accumulation)",
        "goal_mb": GOAL_MB, "threads": args.threads, "cpu_count": os.cpu_count(),
        "target": {"case": target["case"], "peak_rss_mb": target["peak_rss_mb"], "estimate_mb": target["estimate_mb"],
                   "estimate_error_pct": target["estimate_error_pct"], "micro_batch_rows": target["micro_batch_rows"],
                   "padded_length": target["padded_length"], "meets_goal": target["peak_rss_mb"] <= GOAL_MB,
                   "old_path_peak_mb_extrapolated": old_extrapolated,
                   "old_path_extrapolation": f"linear in tokens per pass through the old path's two measured points "
                                             f"({t1} and {t2} tokens); {target_tokens} tokens per pass at 8 rows"},
        "runs": cases + short + timing,
    }
    if timing:
        def median_train_s(lean: bool) -> float:
            xs = sorted(c["train_seconds"] for c in timing if c["lean"] == lean)
            return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

        old_s, new_s = median_train_s(False), median_train_s(True)
        first = timing[0]["loss_curve"]
        report["demo_time"] = {"steps": demo_hp["max_steps"], "evaluations": 1, "old_train_s": old_s,
                               "new_train_s": new_s, "speedup": round(old_s / new_s, 2),
                               "loss_curves_max_abs_diff": max(abs(a - b) for c in timing
                                                               for a, b in zip(c["loss_curve"], first)),
                               "eval_loss_max_abs_diff": max(abs(a - b) for c in timing
                                                             for a, b in zip(c["eval_curve"], timing[0]["eval_curve"]))}
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
