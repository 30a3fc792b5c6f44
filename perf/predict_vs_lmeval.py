"""Our predict path against lm-eval's `hf` backend, in one process, on the same items and model.

    python perf/predict_vs_lmeval.py [--items 48] [--threads 2] [--out perf/results/predict.json]

For each prompting condition of the task (0-shot, 5-shot), on the same N test items:
  generation       tunebench's TransformersBackend.generate vs lm-eval HFLM.generate_until
                   (the same rendered prompts, stop strings and max new tokens; greedy), ours as
                   the predict path runs it: each row ends once its parsed answer is settled
                   (tasks.parsing.EarlyStop); the parsed answers must be 100 % lm-eval's. Also
                   ours without early stopping, to show what it buys. Each side: the fastest of
                   --repeats interleaved runs
  classification   tunebench's label log-likelihood (score_continuations) vs its own free
                   generation, with the accuracy of each; and vs lm-eval HFLM.loglikelihood on the
                   same (prompt, label) pairs, which must pick the same labels
Then: the no-op rerun of the workflow (`snakemake results/summary.json` with nothing to do) and a
CPU roofline: single-stream decode tokens/s against the memory-bandwidth limit for the model.

Speeds are ratios between peers measured in this run (never absolute timings compared across
machines). Peak memory is the RSS high-water mark above the level before each phase (a 5 ms
sampler), so phases in one process can be told apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# generate_vs_lm_eval: on every condition, with the same parsed answers
GOALS = {"generate_vs_lm_eval": 3.0, "loglik_vs_generate": 5.0, "noop_rerun_s": 3.0}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Phase:
    """Wall time and peak RSS above the starting level of one measured phase."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.005):
                self.peak = max(self.peak, rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        # CPU seconds of this process: on a shared, oversubscribed machine less disturbed than wall time
        self.cpu_seconds = time.process_time() - self.cpu0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.peak_mb = round(self.peak - self.base, 1)


class Work:
    """Forward passes of a model and the token positions they computed (rows x width, padding
    included): what bounds a ratio of times when the work is compute-bound."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.passes = self.tokens = 0

        def count(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None:
                self.passes += 1
                self.tokens += int(ids.numel())

        self._hook = self.model.register_forward_pre_hook(count, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self._hook.remove()


def ensure_inputs(task: str, model: str, cores: int) -> None:
    """The prepared split and the materialized model come from the workflow's own rules."""
    # the model folder is a directory() output: snakemake builds the folder, not a file in it
    targets = [f"data/prepared/{task}/test.jsonl", f"data/prepared/{task}/train.jsonl", f"resources/models/{model}"]
    if all((ROOT / t).exists() for t in targets[:2]) and (ROOT / targets[2] / "model.safetensors").exists():
        return
    print(f"building {' '.join(targets)} with snakemake", flush=True)
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), *targets], cwd=ROOT, check=True)


def agreement(a: list[str | None], b: list[str | None]) -> float:
    return round(sum(x == y for x, y in zip(a, b)) / max(len(a), 1), 4)


def bench_condition(backend, lm, *, task, model, template, items, train, shots, seed, batch_size,
                    batch_tokens, peer_loglik_items, repeats: int = 1, generate_only: bool = False) -> dict:
    from lm_eval.api.instance import Instance

    from tunebench.predict.generate import cut_at_stop
    from tunebench.tasks import task_type
    from tunebench.tasks.prompting import draw_shots

    examples = draw_shots(train, shots, seed, task.name, stratify=task.type == "classification")
    conversations = [template.messages(item, examples, task.labels) for item in items]
    prompts = [backend.render(c) for c in conversations]
    targets = [item["target"] for item in items]
    gen = task.generation
    kind = task_type(task.type)
    settled = kind.early_stop(task, items)  # what predict hands the backend
    n = len(items)
    out: dict = {"shots": shots, "items": n,
                 "prompt_tokens_mean": round(sum(len(backend.tokenizer(p)["input_ids"]) for p in prompts) / n, 1)}

    def parsed(texts):
        return [kind.parse(task, item, cut_at_stop(t, gen["stop"])) for item, t in zip(items, texts)]

    def accuracy(labels):
        return round(sum(p == t for p, t in zip(labels, targets)) / n, 4)

    def ours_generate(stop_early):
        return backend.generate(prompts, max_new_tokens=gen["max_new_tokens"], stop=gen["stop"],
                                batch_size=batch_size, batch_tokens=batch_tokens, progress=False,
                                settled=settled if stop_early else None)

    requests = [Instance("generate_until", {}, (p, {"until": gen["stop"], "max_gen_toks": gen["max_new_tokens"],
                                                    "do_sample": False}), i) for i, p in enumerate(prompts)]
    phases = {}
    work = {}
    for _ in range(repeats):  # interleaved, so a burst of load from elsewhere hits both sides
        for name, fn, model in (("tunebench", lambda: ours_generate(True), backend.model),
                                ("lm_eval_hf", lambda: lm.generate_until(requests, disable_tqdm=True), lm.model),
                                ("tunebench_no_early_stop", lambda: ours_generate(False), backend.model)):
            print(f"  {shots}-shot: {name}", flush=True)
            with Work(model) as counted, Phase(name) as phase:
                result = fn()
            work[name] = {"forward_passes": counted.passes, "tokens_computed": counted.tokens}
            print(f"    {phase.seconds:.2f} s ({phase.cpu_seconds:.2f} CPU s), {counted.passes} forward passes, "
                  f"{counted.tokens} token positions", flush=True)
            if name not in phases or phase.seconds < phases[name][0].seconds:
                phases[name] = (phase, result)
    (ours, gens), (peer, peer_texts), (plain, plain_gens) = (
        phases["tunebench"], phases["lm_eval_hf"], phases["tunebench_no_early_stop"])
    ours_labels = parsed([g.text for g in gens])
    peer_labels = parsed(peer_texts)
    plain_labels = parsed([g.text for g in plain_gens])
    out["generate"] = {
        "tunebench": {"seconds": round(ours.seconds, 3), "items_per_s": round(n / ours.seconds, 3),
                      "peak_rss_mb": ours.peak_mb, "accuracy": accuracy(ours_labels),
                      "tokens_out_mean": round(sum(g.tokens_out for g in gens) / n, 2),
                      "shared_prefix_tokens": backend.last_prefix["tokens"], "early_stop": settled is not None},
        "lm_eval_hf": {"seconds": round(peer.seconds, 3), "items_per_s": round(n / peer.seconds, 3),
                       "peak_rss_mb": peer.peak_mb, "accuracy": accuracy(peer_labels)},
        "tunebench_no_early_stop": {"seconds": round(plain.seconds, 3), "items_per_s": round(n / plain.seconds, 3),
                                    "tokens_out_mean": round(sum(g.tokens_out for g in plain_gens) / n, 2),
                                    "same_answer_rate_vs_lm_eval": agreement(plain_labels, peer_labels)},
        "speedup": round(peer.seconds / ours.seconds, 2),
        "speedup_no_early_stop": round(peer.seconds / plain.seconds, 2),
        "cpu_seconds": {"tunebench": round(ours.cpu_seconds, 2), "lm_eval_hf": round(peer.cpu_seconds, 2),
                        "tunebench_no_early_stop": round(plain.cpu_seconds, 2)},
        "speedup_cpu": round(peer.cpu_seconds / ours.cpu_seconds, 2),
        "same_answer_rate": agreement(ours_labels, peer_labels),
        "repeats": repeats,
        "work": work,
        # were the time proportional to the token positions computed, the ratio would be this: the
        # prompt tokens each side computes bound the speedup (decode passes cost more than their tokens)
        "tokens_computed_ratio": round(work["lm_eval_hf"]["tokens_computed"] / work["tunebench"]["tokens_computed"], 2),
    }
    if task.type != "classification" or generate_only:
        return out

    answers = [template.answer(label, task.labels) for label in task.labels]
    continuations = [backend.answer_text(conversations[0], a) for a in answers]
    print(f"  {shots}-shot: tunebench label log-likelihood", flush=True)
    with Phase("tunebench_loglik") as ll:
        scored = backend.score_continuations(prompts, continuations, batch_size=batch_size,
                                             batch_tokens=batch_tokens, progress=False)
    ll_labels = [task.labels[max(range(len(s.logprobs)), key=s.logprobs.__getitem__)] for s in scored]
    m = min(n, peer_loglik_items)  # lm-eval scores every (item, label) pair alone: a subset
    print(f"  {shots}-shot: lm-eval hf loglikelihood ({m} x {len(continuations)} requests)", flush=True)
    pairs = [Instance("loglikelihood", {}, (p, c), i) for i, p in enumerate(prompts[:m]) for c in continuations]
    with Phase("lm_eval_loglikelihood") as peer_ll:
        peer_scores = lm.loglikelihood(pairs, disable_tqdm=True)
    k = len(continuations)
    peer_ll_labels = [task.labels[max(range(k), key=lambda j: peer_scores[i * k + j][0])] for i in range(m)]
    diffs = [[s.logprobs[j] - peer_scores[i * k + j][0] for j in range(k)] for i, s in enumerate(scored[:m])]
    max_diff = max(abs(d) for row in diffs for d in row)
    # lm-eval moves a prompt's trailing whitespace into the continuation (here the "\n" after
    # "assistant"): a per-item constant, the same for every label, so it never changes the answer
    max_label_diff = max(max(row) - min(row) for row in diffs)
    ours_per_item = ll.seconds / n
    out["classify"] = {
        "tunebench_loglik": {"seconds": round(ll.seconds, 3), "items_per_s": round(n / ll.seconds, 3),
                             "peak_rss_mb": ll.peak_mb, "accuracy": accuracy(ll_labels)},
        "tunebench_generate": out["generate"]["tunebench"],
        "speedup_vs_generate": round(ours.seconds / ll.seconds, 2),
        "accuracy_gain_pp": round(100 * (accuracy(ll_labels) - accuracy(ours_labels)), 2),
        "continuation_tokens": sum(len(backend.tokenizer(c, add_special_tokens=False)["input_ids"])
                                   for c in continuations),
        "lm_eval_loglikelihood": {"items": m, "seconds": round(peer_ll.seconds, 3),
                                  "items_per_s": round(m / peer_ll.seconds, 3), "peak_rss_mb": peer_ll.peak_mb},
        "speedup_vs_lm_eval_loglikelihood": round(peer_ll.seconds / m / ours_per_item, 2),
        "same_label_as_lm_eval": agreement(ll_labels[:m], peer_ll_labels),
        "max_abs_logprob_diff_vs_lm_eval": round(max_diff, 5),
        "max_label_spread_of_diff_vs_lm_eval": round(max_label_diff, 5),
    }
    return out


def noop_rerun(cores: int, repeats: int = 3) -> dict | None:
    """Seconds for `snakemake results/summary.json` when every output is up to date (checked first
    with a dry run, so this never runs jobs); None when the demo's results are missing or stale."""
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    target = ["--cores", str(cores), "results/summary.json"]
    dry = subprocess.run([snakemake, "-n", *target], cwd=ROOT, capture_output=True, text=True)
    if dry.returncode != 0 or "Nothing to be done" not in dry.stdout + dry.stderr:
        print("no-op rerun skipped: results/summary.json is missing or out of date (make demo first)")
        return None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = subprocess.run([snakemake, *target], cwd=ROOT, capture_output=True, text=True)
        times.append(round(time.perf_counter() - t0, 3))
        if run.returncode != 0 or "Nothing to be done" not in run.stdout + run.stderr:
            raise RuntimeError(f"the rerun was not a no-op:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return {"seconds": sorted(times)[len(times) // 2], "runs": times}


def roofline(backend, threads: int, new_tokens: int = 64) -> dict:
    """Decode tokens/s (one stream, and a batch of 8) vs the limit set by reading every weight once per step."""
    import torch

    model = backend.model
    params = sum(p.numel() for p in model.parameters())
    bytes_per_param = next(model.parameters()).element_size()
    embed = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight.data_ptr() == embed.data_ptr()
    # a decode step reads every matrix once; the input embedding only one row (unless it is also the head)
    step_bytes = (params - (0 if tied else embed.numel())) * bytes_per_param
    def best_of(fn, repeats: int = 5) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    # two bandwidths, both far larger than any cache: a plain read (sum over 256 MiB), and what a
    # matrix-vector product (a decode step's kernel) streams from a 256 MiB weight matrix
    big = torch.ones(64 * 2**20, dtype=torch.float32)
    read_bw = big.numel() * 4 / best_of(big.sum)
    del big
    weight, vector = torch.randn(16384, 4096), torch.randn(1, 4096)
    with torch.inference_mode():
        gemv_bw = weight.numel() * 4 / best_of(lambda: torch.nn.functional.linear(vector, weight))
    prompt = backend.render([{"role": "user", "content": "Write a long story about a lighthouse keeper."}])
    ids = backend.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)

    def decode(batch: int) -> float:
        input_ids = ids["input_ids"].repeat(batch, 1)
        kwargs = dict(attention_mask=torch.ones_like(input_ids), do_sample=False, temperature=None, top_p=None,
                      top_k=None, pad_token_id=backend.tokenizer.pad_token_id)
        with torch.inference_mode():
            t0 = time.perf_counter()
            backend.model.generate(input_ids=input_ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
            prefill = time.perf_counter() - t0
            t0 = time.perf_counter()
            backend.model.generate(input_ids=input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
            total = time.perf_counter() - t0
        return batch * (new_tokens - 1) / (total - prefill)

    single = decode(1)
    batched = decode(8)
    limit = read_bw / step_bytes
    return {
        "threads": threads, "params": params, "bytes_per_param": bytes_per_param, "tied_embeddings": tied,
        "bytes_read_per_step_mb": round(step_bytes / 2**20, 1),
        "memory_read_bandwidth_gb_s": round(read_bw / 1e9, 2),
        "gemv_bandwidth_gb_s": round(gemv_bw / 1e9, 2),
        "decode_limit_tokens_s": round(limit, 1),
        "decode_limit_gemv_tokens_s": round(gemv_bw / step_bytes, 1),
        "decode_tokens_s_batch1": round(single, 1),
        "fraction_of_limit_batch1": round(single / limit, 3),
        "fraction_of_gemv_limit_batch1": round(single / (gemv_bw / step_bytes), 3),
        "decode_tokens_s_batch8": round(batched, 1),
        "batch8_vs_batch1": round(batched / single, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="ticket_routing")
    parser.add_argument("--model", default=None, help="default: the config's first model")
    parser.add_argument("--items", type=int, default=48, help="test items per condition")
    parser.add_argument("--shots", type=int, nargs="+", default=None, help="default: the config's shots")
    parser.add_argument("--peer-loglik-items", type=int, default=16,
                        help="items for lm-eval's loglikelihood (it runs items x labels requests)")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    parser.add_argument("--out", default="perf/results/predict.json")
    parser.add_argument("--skip-noop", action="store_true", help="skip the no-op rerun timing")
    parser.add_argument("--repeats", type=int, default=2,
                        help="generation runs per side and condition (interleaved; the fastest counts)")
    parser.add_argument("--generate-only", action="store_true",
                        help="only the generation comparison (no log-likelihood, roofline or no-op rerun)")
    args = parser.parse_args(argv)

    import torch

    from tunebench.config.loader import load_project_from_file
    from tunebench.core.atomic import read_jsonl, write_json
    from tunebench.predict.generate import eval_items
    from tunebench.tasks.prompting import PromptTemplate

    project = load_project_from_file(ROOT)
    config = project.config
    task = project.tasks[args.task]
    model = project.models[args.model or config["models"][0]]
    if model.backend != "transformers" or model.is_api:
        parser.error(f"model {model.name} has backend {model.backend}: the benchmark compares transformers models")
    ensure_inputs(task.name, model.name, args.threads)
    torch.set_num_threads(args.threads)
    model_dir = ROOT / "resources" / "models" / model.name
    items = eval_items(ROOT / f"data/prepared/{task.name}/test.jsonl", args.items)
    train = read_jsonl(ROOT / f"data/prepared/{task.name}/train.jsonl")
    template = PromptTemplate.from_spec(project.prompts[task.name])

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tunebench.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(model_dir, dtype=model.dtype, threads=args.threads,
                                  chat_template=model.chat_template, max_input_tokens=model.max_input_tokens)
    lm = HFLM(pretrained=str(model_dir), device="cpu", dtype=model.dtype, batch_size=model.batch_size,
              max_length=model.max_input_tokens)
    batch_tokens = model.batch_tokens
    # warm-up: the first forward passes allocate; no measured phase should pay for that
    warm = [backend.render([{"role": "user", "content": f"warm up {i}"}]) for i in range(2)]
    backend.generate(warm, max_new_tokens=4, stop=["\n"], batch_size=2, progress=False)
    backend.score_continuations(warm, ["a", "b"], batch_size=2, progress=False)
    lm.generate_until([Instance("generate_until", {}, (warm[0], {"until": ["\n"], "max_gen_toks": 4, "do_sample": False}), 0)],
        disable_tqdm=True)
    result: dict = {
        "what": "tunebench predict path vs lm-eval hf backend, same items, model, prompts, threads",
        "task": task.name, "model": model.name, "items": len(items), "threads": args.threads,
        "batch_size": model.batch_size, "batch_tokens": batch_tokens, "goals": GOALS,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                 "torch": torch.__version__, "lm_eval": __import__("lm_eval").__version__,
                 "transformers": __import__("transformers").__version__},
        "conditions": {},
    }
    for shots in args.shots or config["prompting"]["shots"]:
        print(f"{task.name}, {shots}-shot, {len(items)} items, {args.threads} thread(s)", flush=True)
        result["conditions"][f"{shots}shot"] = bench_condition(
            backend, lm, task=task, model=model, template=template, items=items, train=train, shots=shots,
            seed=config["prompting"]["fewshot_seed"], batch_size=model.batch_size, batch_tokens=batch_tokens,
            peer_loglik_items=args.peer_loglik_items, repeats=args.repeats, generate_only=args.generate_only)
    conds = result["conditions"].values()
    ours = sum(c["generate"]["tunebench"]["seconds"] for c in conds)
    peer = sum(c["generate"]["lm_eval_hf"]["seconds"] for c in conds)
    result["generate_vs_lm_eval"] = round(peer / ours, 2)
    # the goal holds on every condition, not only on the total
    result["generate_vs_lm_eval_min"] = min(c["generate"]["speedup"] for c in conds)
    result["generate_same_answers"] = all(c["generate"]["same_answer_rate"] == 1.0 for c in conds)
    if all("classify" in c for c in conds):
        gen_s = sum(c["classify"]["tunebench_generate"]["seconds"] for c in conds)
        ll_s = sum(c["classify"]["tunebench_loglik"]["seconds"] for c in conds)
        result["loglik_vs_generate"] = round(gen_s / ll_s, 2)
        result["loglik_accuracy_at_least_generate"] = all(
            c["classify"]["tunebench_loglik"]["accuracy"] >= c["classify"]["tunebench_generate"]["accuracy"]
            for c in conds)
    if not args.generate_only:
        print("roofline", flush=True)
        result["roofline"] = roofline(backend, args.threads)
    if not args.skip_noop and not args.generate_only:
        print("no-op rerun", flush=True)
        result["noop_rerun"] = noop_rerun(args.threads)
    result["verdict"] = {
        "generate_vs_lm_eval": (result["generate_vs_lm_eval_min"] >= GOALS["generate_vs_lm_eval"]
                                and result["generate_same_answers"]),
        **({"loglik_vs_generate": result["loglik_vs_generate"] >= GOALS["loglik_vs_generate"]
            and result["loglik_accuracy_at_least_generate"]} if "loglik_vs_generate" in result else {}),
        **({"noop_rerun_s": result["noop_rerun"]["seconds"] <= GOALS["noop_rerun_s"]}
           if result.get("noop_rerun") else {}),
    }
    write_json(ROOT / args.out, result)
    print(table(result))
    print(f"written to {args.out}")
    return 0


def table(result: dict) -> str:
    lines = ["", f"{'condition':<10} {'measure':<34} {'tunebench':>12} {'peer':>12} {'ratio':>7}"]
    for name, c in result["conditions"].items():
        g = c["generate"]
        lines.append(f"{name:<10} {'generate items/s vs lm-eval hf':<34} {g['tunebench']['items_per_s']:>12} "
                     f"{g['lm_eval_hf']['items_per_s']:>12} {g['speedup']:>7}")
        lines.append(f"{'':<10} {'  without early stop':<34} {g['tunebench_no_early_stop']['items_per_s']:>12} "
                     f"{g['lm_eval_hf']['items_per_s']:>12} {g['speedup_no_early_stop']:>7}")
        lines.append(f"{'':<10} {'tokens out / item (early stop, not)':<34} {g['tunebench']['tokens_out_mean']:>12} "
                     f"{g['tunebench_no_early_stop']['tokens_out_mean']:>12}")
        lines.append(f"{'':<10} {'same parsed answers as lm-eval':<34} {g['same_answer_rate']:>12}")
        lines.append(f"{'':<10} {'peak RSS MB':<34} {g['tunebench']['peak_rss_mb']:>12} "
                     f"{g['lm_eval_hf']['peak_rss_mb']:>12}")
        if "classify" in c:
            k = c["classify"]
            lines.append(f"{'':<10} {'loglik items/s vs our generate':<34} {k['tunebench_loglik']['items_per_s']:>12} "
                         f"{k['tunebench_generate']['items_per_s']:>12} {k['speedup_vs_generate']:>7}")
            lines.append(f"{'':<10} {'accuracy loglik vs generate':<34} {k['tunebench_loglik']['accuracy']:>12} "
                         f"{k['tunebench_generate']['accuracy']:>12}")
            lines.append(f"{'':<10} {'loglik items/s vs lm-eval':<34} {k['tunebench_loglik']['items_per_s']:>12} "
                         f"{k['lm_eval_loglikelihood']['items_per_s']:>12} {k['speedup_vs_lm_eval_loglikelihood']:>7}")
    r = result.get("roofline")
    if r:
        lines.append(f"roofline: decode {r['decode_tokens_s_batch1']} tok/s (batch 1) = {r['fraction_of_limit_batch1']:.0%} "
                     f"of {r['decode_limit_tokens_s']} tok/s ({r['memory_read_bandwidth_gb_s']} GB/s / "
                     f"{r['bytes_read_per_step_mb']} MB per step); {r['fraction_of_gemv_limit_batch1']:.0%} of the "
                     f"{r['decode_limit_gemv_tokens_s']} tok/s a GEMV streams ({r['gemv_bandwidth_gb_s']} GB/s); "
                     f"batch 8: {r['decode_tokens_s_batch8']} tok/s")
    if result.get("noop_rerun"):
        lines.append(f"no-op rerun: {result['noop_rerun']['seconds']} s (goal {GOALS['noop_rerun_s']} s)")
    lines.append(f"verdict: {result['verdict']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
