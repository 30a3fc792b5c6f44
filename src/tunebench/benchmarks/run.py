"""General benchmarks through lm-evaluation-harness itself (`simple_evaluate`, `log_samples=True`).

`run_lm_eval` starts tunebench.benchmarks.worker in its own process and watches its heartbeat. A run
whose requests make no progress for `stall_timeout_s` is killed; the documents that were complete
are scored by lm-eval from the request cache (a replay run) and the result is marked partial, naming
the task and document that stalled. The cache outlives the run, so a rerun generates only what is
missing. The stall clock runs only while requests are being answered, restarting with each one
answered: importing lm-eval, loading the model and building requests (slow on a busy machine) and
scoring afterwards are each bounded by the much larger `phase_timeout_s` instead.

The files are scored by tunebench.benchmarks.score.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tunebench.benchmarks.tasks import lm_eval_task_name
from tunebench.core.atomic import atomic_dir, read_json, write_json
from tunebench.core.errors import DataError, TunebenchError

log = logging.getLogger(__name__)


class StallError(TunebenchError):
    """The watchdog stopped a run that made no progress, and nothing was complete to keep."""


class WorkerError(TunebenchError):
    """The lm-eval process failed."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resume_cache_path(cache_dir: str | Path, request_key: dict) -> Path:
    """One request cache per (model, benchmark settings): a cache never answers for another model."""
    digest = hashlib.sha256(json.dumps(request_key, sort_keys=True, default=str).encode()).hexdigest()
    return Path(cache_dir) / f"requests-{digest[:16]}.db"


def _model_identity(model: dict) -> dict:
    """What makes the model's answers what they are (its folder's manifest, when it has one)."""
    ident = {"name": model["name"], "args": model.get("args", {})}
    for role, name in (("pretrained", "tunebench_model.json"), ("peft", "adapter_model.safetensors")):
        folder = model.get("args", {}).get(role)
        if folder and (Path(folder) / name).is_file():
            ident[role] = hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest() \
                if name.endswith(".safetensors") else (Path(folder) / name).read_text(encoding="utf-8")
    return ident


def _read_heartbeat(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (FileNotFoundError, DataError):  # not there yet, or caught mid-write by a reader
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _die_with_parent() -> None:
    """In the worker, before exec: the kernel kills it when the job process dies (e.g. SIGKILLed by
    Snakemake), since its own session keeps it out of the job's process group."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


def _spawn(request: dict, request_path: Path, log_path: str | None, pythonpath: list[str]) -> subprocess.Popen:
    write_json(request_path, request)
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if request["spec"]["kind"] != "lm_eval":  # offline benchmarks read local files: never the Hub
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    threads = str(request["threads"])
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = open(log_path, "a", encoding="utf-8") if log_path else None  # the child writes to it; closed here
    try:
        return subprocess.Popen([sys.executable, "-m", "tunebench.benchmarks.worker", str(request_path)],
                                stdout=out, stderr=subprocess.STDOUT if out else None, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        if out:
            out.close()


PHASE_TIMEOUT_S = 3600  # the least time any one phase outside request execution may take


def phase_limit(stall_timeout_s: float, phase_timeout_s: float | None) -> float:
    """The limit on one phase outside request execution: by default the larger of an hour and four
    stall limits (a raised stall limit, for a slow machine, raises it too); math.inf: none."""
    return max(PHASE_TIMEOUT_S, 4 * stall_timeout_s) if phase_timeout_s is None else phase_timeout_s


def _watch(proc: subprocess.Popen, heartbeat: Path, stall_timeout_s: float, phase_timeout_s: float,
           label: str, poll_s: float = 0.5) -> dict | None:
    """Wait for the worker; None when it ended by itself, else the heartbeat at the stall (with
    `limit_s`, the limit that ran out). Any change of the heartbeat (phase, stage, requests answered)
    is progress and restarts the clock; the limit is `stall_timeout_s` in the `requests` stage (see
    tunebench.benchmarks.worker), `phase_timeout_s` in the others (start-up, finishing)."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=label, unit="req", disable=None, file=sys.stderr)
    last_change, last_seen = time.monotonic(), None
    try:
        while proc.poll() is None:
            time.sleep(poll_s)
            beat = _read_heartbeat(heartbeat) or {"phase": "starting", "stage": "start-up", "done": 0,
                                                   "total": 0, "pending": None, "docs_done": {}}
            seen = (beat["phase"], beat.get("stage"), beat["done"], beat["total"])
            if seen != last_seen:
                last_change, last_seen = time.monotonic(), seen
                if beat["total"] != bar.total:
                    bar.total = beat["total"]
                bar.n = beat["done"]
                bar.set_postfix_str(beat["phase"], refresh=True)
                continue
            limit = stall_timeout_s if beat.get("stage") == "requests" else phase_timeout_s
            if time.monotonic() - last_change > limit:
                _kill_group(proc)
                return {**beat, "limit_s": limit}
    finally:
        bar.close()
    return None


def _log_tail(log_path: str | None, lines: int = 25) -> str:
    if not log_path or not Path(log_path).is_file():
        return "(see the output above)"
    return "\n".join(Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def template_args(chat_template_kwargs: dict | None) -> dict:
    """A model's chat_template_kwargs as lm-eval's hf and vllm models take them (lm-eval 0.4.13):
    `enable_thinking` as its own argument, the rest as `chat_template_args`. Both models pass
    `chat_template_args` to apply_chat_template, but the vllm one pops `enable_thinking` out of it
    and then overwrites it with its own `enable_thinking` argument (None by default), so inside
    chat_template_args it would be lost."""
    rest = dict(chat_template_kwargs or {})
    out: dict = {}
    if "enable_thinking" in rest:
        out["enable_thinking"] = rest.pop("enable_thinking")
    if rest:
        out["chat_template_args"] = rest
    return out


TUNEBENCH_HF = "tunebench-hf"  # registered by tunebench.benchmarks.lm_model (imported in the worker only)


def hf_model(model_dir: str, adapter_dir: str | None = None, dtype: str = "float32",
             chat_template_kwargs: dict | None = None) -> dict:
    """lm-eval's hf backend on a model folder, with a LoRA adapter applied through its `peft=`."""
    args = {"pretrained": str(Path(model_dir).resolve()), "dtype": dtype, **template_args(chat_template_kwargs)}
    if adapter_dir:
        args["peft"] = str(Path(adapter_dir).resolve())
    return {"name": "hf", "args": args}


def generating_model(model: dict, spec: dict) -> dict:
    """lm-eval's hf model, or by default `tunebench-hf` (tunebench.benchmarks.lm_model): the same
    model whose greedy generate_until runs on tunebench's generation, with HFLM's strings. A
    benchmark's `generate_with: lm_eval` keeps lm-eval's own."""
    if model["name"] == "hf" and spec.get("generate_with", "tunebench") == "tunebench":
        return {**model, "name": TUNEBENCH_HF}
    return model


def vllm_model(model_dir: str, adapter_dir: str | None = None, dtype: str = "bfloat16",
               chat_template_kwargs: dict | None = None) -> dict:
    """lm-eval's vllm backend (GPU) on a model folder, a LoRA adapter through its `lora_local_path`."""
    args = {"pretrained": str(Path(model_dir).resolve()), "dtype": dtype, "seed": 0, "gpu_memory_utilization": 0.85,
            **template_args(chat_template_kwargs)}
    if adapter_dir:
        args.update(lora_local_path=str(Path(adapter_dir).resolve()), max_lora_rank=64)
    return {"name": "vllm", "args": args}


def run_lm_eval(*, benchmark: str, spec: dict, out_dir: str, nltk_dir: str, cache_dir: str,
                model: dict | None = None, model_dir: str | None = None, adapter_dir: str | None = None,
                limit: int | float | None,
                threads: int = 1, stall_timeout_s: float = 900, phase_timeout_s: float | None = None,
                log_path: str | None = None,
                data_files: dict[str, str] | None = None, sandbox: dict | None = None,
                imports: list[str] | None = None, pythonpath: list[str] | None = None) -> dict:
    """Run one benchmark for one model with lm-eval in a watched worker; lm-eval's files land in
    `out_dir` (atomically) with tunebench_meta.json beside them. `model`: an lm-eval model name and
    args; by default the hf backend on `model_dir` (+ `adapter_dir`, a PEFT adapter).
    `stall_timeout_s`: the longest wait for the next answered request; `phase_timeout_s`: for
    any one phase before or after the requests (see `phase_limit`)."""
    if model is None:
        if model_dir is None:
            raise ValueError("run_lm_eval needs model_dir (an HF folder) or an lm-eval `model`")
        model = hf_model(model_dir, adapter_dir)
    model = generating_model(model, spec)
    phase_timeout_s = phase_limit(stall_timeout_s, phase_timeout_s)
    cache = resume_cache_path(cache_dir, {"model": _model_identity(model), "benchmark": benchmark,
                                          "spec": spec, "limit": limit})
    cache.parent.mkdir(parents=True, exist_ok=True)
    task_name = lm_eval_task_name(benchmark, spec)
    started, t0 = _now(), time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        work = tmp / "worker"
        work.mkdir()
        request = {
            "mode": "run", "benchmark": benchmark, "spec": spec, "model": model, "limit": limit,
            "batch_size": spec["batch_size"], "device": None, "threads": threads,
            "chat_template": spec["chat_template"], "nltk_dir": str(Path(nltk_dir).resolve()),
            "cache_db": str(cache.resolve()), "heartbeat": str(work / "heartbeat.json"),
            "out_dir": str(tmp), "data_files": data_files, "sandbox": sandbox or {}, "imports": imports or [],
        }
        proc = _spawn(request, work / "request.json", log_path, pythonpath or [])
        stalled = _watch(proc, work / "heartbeat.json", stall_timeout_s, phase_timeout_s, f"{benchmark} (lm-eval)")
        partial = None
        if stalled is None and proc.returncode != 0:
            raise WorkerError(f"lm-eval failed on benchmark {benchmark!r} (exit status {proc.returncode}); "
                              f"completed requests are kept in {cache} for a rerun:\n{_log_tail(log_path)}",
                              fix="see the log above; rerun to continue from the completed requests")
        if stalled is not None and stalled.get("stage") != "requests":
            raise StallError(f"watchdog: lm-eval made no progress for {stalled['limit_s']:g} s in phase "
                             f"{stalled['phase']!r} of benchmark {benchmark!r}, outside its requests "
                             f"({stalled['done']} of {stalled['total']} were complete; they are kept "
                             f"in {cache} for a rerun):\n{_log_tail(log_path)}",
                             fix="see the log above for where it stopped; on a slow machine, raise "
                                 "watchdog.stall_timeout_s in configs/config.yaml (a phase outside the "
                                 f"requests may take {PHASE_TIMEOUT_S:g} s or four times that limit)")
        if stalled is not None:
            pending = stalled.get("pending") or {}
            where = (f"lm-eval task {pending.get('task', task_name)}, document {pending['doc_id']}"
                     if "doc_id" in pending else f"phase {stalled['phase']!r}")
            docs = {t: sorted(ids) for t, ids in stalled.get("docs_done", {}).items() if ids}
            kept = sum(len(ids) for ids in docs.values())
            last = stalled.get("last_done")
            if last:  # backends reorder requests (by length): the last one answered helps to find it
                where += f"; the last completed was document {last['doc_id']}"
            message = (f"watchdog: no progress for {stall_timeout_s:g} s in benchmark {benchmark!r} "
                       f"(first incomplete: {where}); {stalled['done']} of {stalled['total']} requests "
                       f"were complete")
            if not kept:
                raise StallError(message + "; nothing complete to keep",
                                 fix=f"find why that item hangs (log: {log_path or 'stderr'}), or raise "
                                     "watchdog.stall_timeout_s in configs/config.yaml")
            log.warning("%s; scoring the %d complete document(s), marked partial", message, kept)
            for stale in tmp.iterdir():
                if stale.name != "worker":
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            replay = {**request, "mode": "replay", "limit": None, "samples": docs,
                      "heartbeat": str(work / "replay-heartbeat.json")}
            proc = _spawn(replay, work / "replay-request.json", log_path, pythonpath or [])
            if _watch(proc, work / "replay-heartbeat.json", stall_timeout_s, phase_timeout_s,
                      f"{benchmark} (replay)") is not None or proc.returncode != 0:
                raise StallError(message + "; scoring the complete documents failed too:\n" + _log_tail(log_path))
            partial = {"stalled_at": pending or None, "phase": stalled["phase"], "documents_kept": kept,
                       "requests_done": stalled["done"], "requests_total": stalled["total"],
                       "stall_timeout_s": stall_timeout_s, "message": message,
                       "resume": f"delete {out_dir} (or run snakemake with --forcerun lm_eval_run): the "
                                 f"completed requests are answered from {cache}"}
        notes = read_json(tmp / "tunebench_notes.json")
        meta = {
            "benchmark": benchmark, "kind": spec["kind"], "lm_eval_task": task_name, "limit": limit,
            "spec": spec, "model": {"name": model["name"], "args": model.get("args", {})},
            "threads": threads, "chat_template": spec["chat_template"], "partial": partial,
            "unscored": notes["unscored"], "executions": notes["executions"],
            "seconds": round(time.perf_counter() - t0, 2), "started_at": started, "finished_at": _now(),
        }
        write_json(tmp / "tunebench_meta.json", meta)
        shutil.rmtree(work)
    if partial is None:
        cache.unlink(missing_ok=True)  # complete: nothing to resume
    return meta
