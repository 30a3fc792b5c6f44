"""The process that runs lm-evaluation-harness for one benchmark: `python -m tunebench.benchmarks.worker
REQUEST.json`. tunebench.benchmarks.run starts it and watches it (a hung generation cannot be stopped from
inside its own process, so the watchdog lives in the parent).

Every completed request is committed to an lm-eval request cache (its CachingLM, SQLite) as it
finishes and reported in a heartbeat file: what the parent reads to see progress, to say which
task and document stalled, and, after a stall, which documents are complete. A rerun with the same
cache answers completed requests from it, so only missing items are generated again.

The heartbeat's `stage` tells the parent which limit applies: `start-up` (importing lm-eval,
building the task, loading the model, building requests), `requests` (planned requests are not
all answered yet: the stall limit, restarted by every completed request) and `finishing` (every
request is answered: lm-eval scores and the results are written). Each `phase` change is progress.

Modes: `run` (the model answers what the cache lacks) and `replay` (every answer must come from the
cache: lm-eval scores the documents that were complete when the run stalled).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from tunebench.core.atomic import write_json

GENERATION_ATTRS = ("generate_until", "loglikelihood", "loglikelihood_rolling")


class Heartbeat:
    """Progress of the run, in a JSON file the parent polls. Phase changes are written at once;
    completed requests at most every `interval_s` (a flusher thread writes the latest state), so
    a run of 50k requests does not rewrite a growing file 50k times."""

    def __init__(self, path: str | Path, interval_s: float = 0.5):
        self.path = Path(path)
        self.interval_s = interval_s
        self.state: dict[str, Any] = {"phase": "starting", "stage": "start-up", "done": 0, "total": 0,
                                      "pending": None, "docs_done": {}, "pid": os.getpid()}
        self._owner: dict[str, tuple[str, int]] = {}  # request hash -> (task, doc)
        self._left: dict[tuple[str, int], int] = {}  # (task, doc) -> requests still to answer
        self._order: deque[tuple[str, int]] = deque()
        self._lock = threading.RLock()  # completed() changes the state the flusher serializes
        self._dirty, self._written = False, 0.0
        self.beat()
        threading.Thread(target=self._flush_loop, daemon=True).start()

    def beat(self, *, force: bool = True, **changes) -> None:
        with self._lock:
            self.state.update(changes, updated_at=time.time())
            self._dirty = True
            if force or time.monotonic() - self._written >= self.interval_s:
                self._write()

    def _write(self) -> None:
        write_json(self.path, self.state)
        self._dirty, self._written = False, time.monotonic()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(self.interval_s)
            with self._lock:
                if self._dirty:
                    self._write()

    def plan(self, attr: str, requests: list) -> None:
        from lm_eval.api.model import hash_args

        with self._lock:
            for req in requests:
                doc = (req.task_name, int(req.doc_id))
                self._owner[hash_args(attr, req.args)] = doc
                if doc not in self._left:
                    self._order.append(doc)
                self._left[doc] = self._left.get(doc, 0) + 1
            total = self.state["total"] + len(requests)
            self.beat(phase=attr, total=total, stage=_stage(self.state["done"], total),
                      pending=self._first_pending())

    def completed(self, attr: str, args) -> None:
        from lm_eval.api.model import hash_args

        doc = self._owner.get(hash_args(attr, args))
        with self._lock:
            if doc is not None and self._left.get(doc, 0) > 0:
                self._left[doc] -= 1
                if self._left[doc] == 0:
                    self.state["docs_done"].setdefault(doc[0], []).append(doc[1])
            last = {"task": doc[0], "doc_id": doc[1]} if doc else self.state.get("last_done")
            done = self.state["done"] + 1
            stage = _stage(done, self.state["total"])
            # the end of the requests is written at once: the parent's limit changes with it
            self.beat(force=stage != self.state["stage"], done=done, stage=stage,
                      pending=self._first_pending(), last_done=last)

    def _first_pending(self) -> dict | None:
        while self._order and self._left[self._order[0]] == 0:  # amortised O(1): finished ones leave
            self._order.popleft()
        if not self._order:
            return None
        task, doc = self._order[0]
        return {"task": task, "doc_id": doc}


def _stage(done: int, total: int) -> str:
    """`requests` while a planned request is unanswered, else `finishing` (scoring, or between
    lm-eval's request types)."""
    return "requests" if done < total else "finishing"


class _ProgressHook:
    """lm-eval calls `lm.cache_hook.add_partial` as each request completes: commit and report it."""

    def __init__(self, inner, heartbeat: Heartbeat):
        self.inner, self.heartbeat = inner, heartbeat

    def add_partial(self, attr, req, res):
        self.inner.add_partial(attr, req, res)
        self.heartbeat.completed(attr, req)


class _Originals:
    """The model's own generation methods, for CachingLM to call once the instance is patched."""

    def __init__(self, lm):
        self._lm = lm
        for attr in GENERATION_ATTRS:
            setattr(self, attr, getattr(lm, attr))

    def set_cache_hook(self, hook) -> None:
        self._lm.set_cache_hook(hook)


def make_resumable(lm, cache_db: str, heartbeat: Heartbeat):
    """Patch `lm` (still an lm-eval LM, as simple_evaluate requires) so that its requests go through
    lm-eval's CachingLM (committed per request) and every completion beats the heartbeat."""
    from lm_eval.api.model import CachingLM, hash_args

    caching = CachingLM(_Originals(lm), cache_db)
    lm.set_cache_hook(_ProgressHook(lm.cache_hook, heartbeat))

    def patched(attr):
        def run(requests, *args, **kwargs):
            heartbeat.plan(attr, requests)
            for req in requests:  # answered from the cache: complete already
                if hash_args(attr, req.args) in caching.dbdict:
                    heartbeat.completed(attr, req.args)
            return getattr(caching, attr)(requests)

        return run

    for attr in GENERATION_ATTRS:
        setattr(lm, attr, patched(attr))
    return lm


def _replay_model():
    from lm_eval.api.model import LM

    class CacheOnlyLM(LM):
        """After a stall: every answer must come from the request cache; the model is never called."""

        def _missing(self, requests, *args, **kwargs):
            raise RuntimeError(f"{len(requests)} request(s) not in the cache during replay")

        generate_until = loglikelihood = loglikelihood_rolling = _missing

    return CacheOnlyLM()


def _model(request: dict):
    import lm_eval.api.registry as registry

    import tunebench.benchmarks.lm_model  # noqa: F401  registers tunebench-hf

    for module in request.get("imports", []):
        importlib.import_module(module)  # registers a user's (or a test's) lm-eval model
    if request["mode"] == "replay":
        return _replay_model()
    spec = request["model"]
    cls = registry.get_model(spec["name"])
    return cls.create_from_arg_obj(dict(spec.get("args", {})),
                                   {"batch_size": request["batch_size"], "device": request["device"]})


def run(request: dict) -> None:
    heartbeat = Heartbeat(request["heartbeat"])  # first: the parent sees the worker is up
    heartbeat.beat(phase="importing lm-eval")
    import lm_eval
    import torch
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from tunebench.benchmarks.tasks import NOTES, build_task

    torch.set_num_threads(request["threads"])
    request["device"] = request.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    heartbeat.beat(phase="building the task")
    task = build_task(request["benchmark"], request["spec"], nltk_dir=request["nltk_dir"],
                      sandbox=request.get("sandbox"),
                      data_files=request.get("data_files"))
    heartbeat.beat(phase="loading model")
    lm = make_resumable(_model(request), request["cache_db"], heartbeat)
    heartbeat.beat(phase="building requests")
    out = Path(request["out_dir"])
    tracker = EvaluationTracker(output_path=str(out))
    # A task given as its config needs no index of lm-eval's own ~14,000 task files: building that
    # index (simple_evaluate's default) took most of a demo job (60-75 s of ~80 on 2 busy cores)
    manager = TaskManager(include_defaults=False) if isinstance(task, dict) else None
    results = lm_eval.simple_evaluate(
        model=lm, tasks=[task], task_manager=manager, limit=request["limit"], samples=request.get("samples"),
        num_fewshot=request["spec"].get("num_fewshot"), batch_size=request["batch_size"],
        device=request["device"], log_samples=True, apply_chat_template=request["chat_template"],
        evaluation_tracker=tracker, bootstrap_iters=request.get("bootstrap_iters", 100000),
    )
    heartbeat.beat(phase="writing results", stage="finishing")
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    write_json(out / "tunebench_notes.json", {k: dict(sorted(v.items())) for k, v in NOTES.items()})
    heartbeat.beat(phase="finished", stage="finishing")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    with open(argv[0], encoding="utf-8") as fh:
        request = json.load(fh)
    run(request)
    return 0


if __name__ == "__main__":
    # Before torch is imported: with the default (spinning) OpenMP wait policy, generation ran 7-50x
    # slower on 2 cores when another process kept one of them busy.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())

