"""Predictions for one cell (system x task x prompting): one JSONL row per test item, plus a
meta file with how they were made.

conversations (prompt template + shots + items) -> the model's backend from the registry
(tunebench.backends) -> rows -> meta. Nothing here knows which backend it is talking to.
"""

from __future__ import annotations

import logging
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from tunebench.backends import BackendContext, Generation, backend_for
from tunebench.core.atomic import read_jsonl, write_json, write_jsonl
from tunebench.core.integrity import digest
from tunebench.core.layout import Layout
from tunebench.core.spec import Model, System, Task
from tunebench.predict.windows import finish_rows, wants_confidence, window_cell, windows_meta
from tunebench.tasks import task_type
from tunebench.tasks.prompting import PromptTemplate, draw_shots, prompt_hash
from tunebench.train.classic import item_text

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


def generate_predictions(*, task: Task, model: Model, model_dir: str | Path | None, prompt_spec: dict,
                         train_path: str | Path, test_path: str | Path, shots: int, fewshot_seed: int,
                         max_items: int | None, threads: int, out_rows: str, out_meta: str,
                         system: str, prompting: str, progress: bool = True,
                         adapter_dir: str | Path | None = None, stall_timeout_s: float | None = None,
                         batch: dict | None = None) -> dict:
    started = datetime.now(timezone.utc)
    items = eval_items(test_path, max_items)
    kind = task_type(task.type)
    examples = draw_shots(read_jsonl(train_path), shots, fewshot_seed, task.name, stratify=kind.stratify)
    items, examples, owner = window_cell(task, items, examples)  # long documents: one item per window
    template = PromptTemplate.from_spec(prompt_spec, task.abstain)
    gen = task.generation
    labels = list(task.labels or [])
    backend_cls = backend_for(model.backend)
    if backend_cls.prompted:
        conversations = [template.messages(item, examples, labels, task.answer_format) for item in items]
    else:  # the classic baseline reads the item's own text, as it was fitted
        conversations = [[{"role": "user", "content": item_text(item)}] for item in items]
    desc = f"{system}/{task.name}/{prompting}"
    able = {"loglik": backend_cls.supports_loglik, "constrained": getattr(backend_cls, "supports_constrained", False)}
    method = task.method if able.get(task.method, True) else "generate"
    if method != task.method:
        log.warning("%s: task %s asks for method %s; backend %s cannot use it, so it generates", desc,
                    task.name, task.method, model.backend)
    journal = Path(out_rows).with_name(f".{Path(out_rows).name}.journal")  # finished batches, for a rerun
    ctx = BackendContext(model=model, model_dir=Path(model_dir) if model_dir else None,
                         adapter_dir=Path(adapter_dir) if adapter_dir else None, threads=threads,
                         max_new_tokens=gen["max_new_tokens"], cache_dir=Path(Layout.api_cache(model.name)),
                         logprobs=wants_confidence(task), batch=batch,
                         labels=tuple(labels) if kind.labelled else ())
    t0 = time.perf_counter()
    backend = backend_cls.from_context(ctx)
    try:
        load_s = time.perf_counter() - t0
        prompts = [backend.prompt_text(c) for c in conversations]  # what the model is given, for its hash
        t0 = time.perf_counter()
        logprobs: list[dict[str, float]] | None = None  # per item: answer -> log-likelihood, when scored
        picked: list[str] | None = None  # per item: the answer constrained decoding chose
        if method in ("loglik", "constrained"):
            # each answer -> the assistant's turn scored for it: the task's labels, or an item's own options
            shared = {label: template.answer(label, labels) for label in labels}
            choices = [kind.loglik_answers(task, item, template) or shared for item in items]
            answers = (list(shared.values()) if all(c is shared for c in choices)
                       else [list(c.values()) for c in choices])
        if method == "constrained":
            chosen = backend.choose_labels(conversations, answers, progress=progress, desc=desc, journal=journal,
                                           stall_timeout_s=stall_timeout_s)
            picked = [list(c)[x.index] for c, x in zip(choices, chosen)]
            outputs = [Generation(text=c[p], tokens_in=x.tokens_in, tokens_out=x.tokens_out, latency_s=x.latency_s,
                                  batch_size=x.batch_size) for c, p, x in zip(choices, picked, chosen)]
        elif method == "loglik":
            scored = backend.score_labels(conversations, answers, progress=progress, desc=desc, journal=journal,
                                          stall_timeout_s=stall_timeout_s)
            logprobs = [dict(zip(c, s.logprobs)) for c, s in zip(choices, scored)]
            outputs = [Generation(text=c[best(lp)], tokens_in=s.tokens_in, tokens_out=0, latency_s=s.latency_s,
                                  batch_size=s.batch_size) for c, lp, s in zip(choices, logprobs, scored)]
        else:
            # a row ends once its parsed answer is settled; not when its token log-probs make a confidence
            settled = None if ctx.logprobs else kind.early_stop(task, items)
            outputs = backend.complete(conversations, max_new_tokens=gen["max_new_tokens"], stop=gen["stop"],
                                       progress=progress, desc=desc, journal=journal,
                                       stall_timeout_s=stall_timeout_s, settled=settled)
        gen_s = time.perf_counter() - t0
        rows = finish_rows(task, prediction_rows(task, items, prompts, outputs, backend.row_fields, logprobs,
                                                 picked),
                           outputs, owner)
        meta = {
            "system": system, "model": model.name,
            "adapter": System.parse(system).adapter, "adapter_dir": str(adapter_dir) if adapter_dir else None,
            "task": task.name,
            "prompting": prompting, "shots": shots, "shot_ids": [e["id"] for e in examples],
            "backend": backend.name, "device": backend.device, "dtype": model.dtype,
            "threads": threads, "batch_size": model.batch_size,
            "batch_tokens": model.batch_tokens, "method": method,
            "parser": task.parser, "generation": gen, **backend.run_meta(),
            **({"windows": windows_meta(owner, task.context_window or {})} if owner is not None else {}),
            "n": len(rows), "model_load_s": round(load_s, 3), "generate_s": round(gen_s, 3),
            "items_per_s": round(len(rows) / gen_s, 3) if gen_s > 0 else None,
            "tokens_out_per_s": round(sum(r["tokens_out"] or 0 for r in rows) / gen_s, 2) if gen_s > 0 else None,
            "host": platform.node(),
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    finally:
        backend.close()
    write_jsonl(out_rows, rows)
    meta["rows_file"] = digest(out_rows)  # checked where the rows are read (core.integrity.verify_rows)
    write_json(out_meta, meta)
    journal.unlink(missing_ok=True)
    log.info("%s/%s/%s: %d items in %.1f s (%.2f items/s)", system, task.name, prompting,
             len(rows), gen_s, meta["items_per_s"] or 0)
    return meta


def best(logprobs: dict[str, float]) -> str:
    """The first answer with the largest log-likelihood."""
    return max(logprobs, key=logprobs.__getitem__)


def prediction_rows(task: Task, items: list[dict], prompts: list[str], outputs: list[Generation],
                    row_fields: tuple[str, ...], logprobs: list[dict[str, float]] | None,
                    picked: list[str] | None = None) -> list[dict]:
    """One row per item. With scored answers the answer is the most likely one; with `picked`
    (constrained decoding) that answer; otherwise the task's parser reads it from the output.
    `row_fields`: what the backend adds to each row."""
    kind = task_type(task.type)
    stop = task.generation["stop"]
    rows = []
    for n, (item, prompt, out) in enumerate(zip(items, prompts, outputs)):
        rows.append({
            "id": item["id"],
            "prompt_hash": prompt_hash(prompt),
            "output": out.text,
            "parsed": (best(logprobs[n]) if logprobs is not None else picked[n] if picked is not None
                       else kind.parse(task, item, cut_at_stop(out.text, stop))),
            "latency_s": out.latency_s,
            "tokens_in": out.tokens_in,
            "tokens_out": out.tokens_out,
            "batch_size": out.batch_size,
            **{name: getattr(out, name) for name in row_fields},
            **({kind.loglik_field: logprobs[n]} if logprobs is not None else {}),
        })
    return rows
