"""Predictions for one cell (system x task x prompting): one JSONL row per test item, plus a
meta file with how they were made."""

from __future__ import annotations

import json
import logging
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from tunebench.backends.transformers_backend import Generation
from tunebench.core.atomic import read_jsonl, write_json, write_jsonl
from tunebench.core.spec import Model, System, Task
from tunebench.data.models import GGUF_NAME
from tunebench.tasks.parsing import PARSERS
from tunebench.tasks.prompting import PromptTemplate, draw_shots, prompt_hash

log = logging.getLogger(__name__)


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The answer part of an output: leading whitespace dropped, cut at the first stop string."""
    text = text.lstrip()
    for s in stop:
        if s in text:
            text = text[:text.index(s)]
    return text


def eval_items(test_path: str | Path, max_items: int | None) -> list[dict]:
    """The evaluated items: the first `max_items` of the (already shuffled) test split."""
    rows = read_jsonl(test_path)
    return rows[:max_items] if max_items else rows


def generate_predictions(*, task: Task, model: Model, model_dir: str | Path, prompt_spec: dict,
                         train_path: str | Path, test_path: str | Path, shots: int, fewshot_seed: int,
                         max_items: int | None, threads: int, out_rows: str, out_meta: str,
                         system: str, prompting: str, progress: bool = True,
                         adapter_dir: str | Path | None = None, stall_timeout_s: float | None = None) -> dict:
    started = datetime.now(timezone.utc)
    items = eval_items(test_path, max_items)
    examples = draw_shots(read_jsonl(train_path), shots, fewshot_seed, task.name,
                          stratify=task.type == "classification")
    template = PromptTemplate.from_spec(prompt_spec)
    gen = task.generation
    conversations = [template.messages(item, examples, task.labels) for item in items]
    desc = f"{system}/{task.name}/{prompting}"
    method = task.method if model.backend == "transformers" and not model.is_api else "generate"
    if method != task.method:
        log.warning("%s: task %s asks for method %s; backend %s can only generate, so it does", desc,
                    task.name, task.method, "openai" if model.is_api else model.backend)
    logprobs = None
    journal = Path(out_rows).with_name(f".{Path(out_rows).name}.journal")  # finished batches, for a rerun
    t0 = time.perf_counter()
    if model.is_api or model.backend == "llamacpp":  # whole conversations in, the server's / GGUF's template
        if model.is_api:
            from tunebench.backends.openai_backend import OpenAIBackend

            src = model.source
            backend = OpenAIBackend(base_url=src["base_url"], model=src["model"],
                                    api_key_env=src.get("api_key_env", "OPENAI_API_KEY"),
                                    concurrency=model.spec["concurrency"], stream=model.spec["stream"],
                                    cache_dir=Path("resources") / "api_cache" / model.name)
        else:
            from tunebench.backends.llamacpp_backend import LlamaCppBackend

            backend = LlamaCppBackend(Path(model_dir) / GGUF_NAME, threads=threads, n_ctx=model.max_input_tokens)
        load_s = time.perf_counter() - t0
        prompts = [json.dumps(c, ensure_ascii=False) for c in conversations]  # what was sent, for its hash
        t0 = time.perf_counter()
        resumable = {} if model.is_api else {"journal": journal, "stall_timeout_s": stall_timeout_s}  # API: its cache
        outputs = backend.complete(conversations, max_new_tokens=gen["max_new_tokens"], stop=gen["stop"] or None,
                                   progress=progress, desc=desc, **resumable)
    else:
        if model.backend == "vllm":
            from tunebench.backends.vllm_backend import VLLMBackend

            backend = VLLMBackend(model_dir, dtype=model.dtype, chat_template=model.chat_template,
                                  max_input_tokens=model.max_input_tokens,
                                  max_new_tokens=gen["max_new_tokens"], adapter_dir=adapter_dir)
        else:
            from tunebench.backends.transformers_backend import TransformersBackend

            backend = TransformersBackend(model_dir, dtype=model.dtype, threads=threads,
                                          chat_template=model.chat_template,
                                          max_input_tokens=model.max_input_tokens, adapter_dir=adapter_dir)
        load_s = time.perf_counter() - t0
        prompts = [backend.render(c) for c in conversations]
        t0 = time.perf_counter()
        resumable = {"journal": journal, "stall_timeout_s": stall_timeout_s,
                     "batch_tokens": model.spec.get("batch_tokens")} if model.backend == "transformers" else {}
        if method == "loglik":
            answers = [template.answer(label, task.labels) for label in task.labels]
            continuations = [backend.answer_text(conversations[0], a) for a in answers] if conversations else []
            scored = backend.score_continuations(prompts, continuations, batch_size=model.batch_size,
                                                 progress=progress, desc=desc, **resumable)
            logprobs = [s.logprobs for s in scored]
            best = [max(range(len(lp)), key=lp.__getitem__) for lp in logprobs]
            outputs = [Generation(text=answers[b], tokens_in=s.tokens_in, tokens_out=0, latency_s=s.latency_s,
                                  batch_size=s.batch_size) for b, s in zip(best, scored)]
        else:
            outputs = backend.generate(prompts, max_new_tokens=gen["max_new_tokens"], stop=gen["stop"],
                                       batch_size=model.batch_size, progress=progress, desc=desc, **resumable)
    gen_s = time.perf_counter() - t0
    parse = PARSERS[task.parser]
    rows = []
    for n, (item, prompt, out) in enumerate(zip(items, prompts, outputs)):
        rows.append({
            "id": item["id"],
            "prompt_hash": prompt_hash(prompt),
            "output": out.text,
            "parsed": (task.labels[best[n]] if logprobs is not None
                       else parse(cut_at_stop(out.text, gen["stop"]), task.labels)),
            "latency_s": out.latency_s,
            "tokens_in": out.tokens_in,
            "tokens_out": out.tokens_out,
            "batch_size": getattr(out, "batch_size", 1),
            **({"ttft_s": out.ttft_s, "cached": out.cached} if model.is_api else {}),
            **({"label_logprobs": dict(zip(task.labels, logprobs[n]))} if logprobs is not None else {}),
        })
    meta = {
        "system": system, "model": model.name,
        "adapter": System.parse(system).adapter, "adapter_dir": str(adapter_dir) if adapter_dir else None,
        "task": task.name,
        "prompting": prompting, "shots": shots, "shot_ids": [e["id"] for e in examples],
        "backend": backend.name, "device": getattr(backend, "device", "remote"), "dtype": model.dtype,
        "threads": threads, "batch_size": model.batch_size,
        "batch_tokens": model.spec.get("batch_tokens"), "method": method,
        "parser": task.parser, "generation": gen, "chat_template": getattr(backend, "use_chat_template", True),
        "shared_prefix_tokens": getattr(backend, "last_prefix", {}).get("tokens"),
        **({"endpoint": model.source["base_url"], "requests_sent": backend.requests_sent,
            "cache_hits": backend.cache_hits} if model.is_api else {}),
        "n": len(rows), "model_load_s": round(load_s, 3), "generate_s": round(gen_s, 3),
        "items_per_s": round(len(rows) / gen_s, 3) if gen_s > 0 else None,
        "tokens_out_per_s": round(sum(r["tokens_out"] or 0 for r in rows) / gen_s, 2) if gen_s > 0 else None,
        "host": platform.node(),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_jsonl(out_rows, rows)
    write_json(out_meta, meta)
    journal.unlink(missing_ok=True)
    log.info("%s/%s/%s: %d items in %.1f s (%.2f items/s)", system, task.name, prompting,
             len(rows), gen_s, meta["items_per_s"] or 0)
    return meta
