"""Faults around the whole run, through the real `snakemake` command: preemption (SIGTERM to the whole
run, what SLURM and Kubernetes send before they kill), a kill (SIGKILL: no cleanup at all), and two
runs started at once in one folder. A user never removes a lock by hand where tunebench can tell it
is stale, and a second run is refused in one line while the first lives (tunebench.core.runlock).

The runs that must be held at a known point hold on an event, never a sleep: a test-only rule added to
a copy of the project (`hold_for_test`) reads a FIFO that the test opens for writing, and that open
returns exactly when the job has started reading."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import copy_repo, run
from kill_points import (
    ENV,
    STALE_REMOVED,
    KillPoint,
    draw_point,
    kill_and_resume,
    planned_rules,
    run_to_point,
    snakemake_lock_files,
)
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.runlock import RunBusyError, RunLock, command_mode, is_snakemake_cli

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SUITE = ["--config", "suite=test"]
HOLD_RULE = '''

rule hold_for_test:  # test-only (tests/test_faults.py): a job that waits until the test writes to hold.fifo
    output:
        "hold.done",
    shell:
        "cat hold.fifo > {output}"
'''


def test_command_mode_reads_a_command_line_as_snakemake_does():
    assert command_mode(["--cores", "2", "--config", "suite=test"]) == "run"
    assert command_mode(["--cores", "1", "results/summary.json", "--touch"]) == "run"
    assert command_mode(["--unlock", "--config", "suite=test"]) == "unlock"
    for quiet in (["-n"], ["--dry-run"], ["--lint"], ["--list-rules"], ["--summary"], ["--dag"], ["--nolock"],
                  ["--report", "report.html"], ["--cleanup-metadata", "x"], ["--delete-all-output"]):
        assert command_mode(["--cores", "2", *quiet]) is None, quiet
    assert command_mode(["--cores", "2", "--report", "r.html", "--report-after-run"]) == "run"
    # the command itself (also as `python -m snakemake`), not a program that parses a workflow through the API
    assert is_snakemake_cli([SNAKEMAKE]) and is_snakemake_cli(["/venv/lib/site-packages/snakemake/__main__.py"])
    assert not is_snakemake_cli(["/venv/bin/pytest"]) and not is_snakemake_cli(["-c"])


HOLDER = """
import sys
from tunebench.core.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire(["--cores", "2", "--config", "suite=test"], "results/test")
print("locked", flush=True)
sys.stdin.read()  # holds the lock until the test closes stdin or kills it
"""


def test_the_run_lock_is_held_by_one_process_and_freed_by_the_kernel_when_it_dies(tmp_path):
    locks = tmp_path / ".snakemake/locks"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusyError) as busy:
            RunLock(tmp_path).acquire()
        message = str(busy.value)
        assert message.startswith(f"{tmp_path}: another run (pid {holder.pid}, started ")
        assert "snakemake --cores 2 --config suite=test" in message and "is using this folder" in message
        assert message.count("\n") == 1 and f"  Fix: wait for that run to end, or stop it (`kill {holder.pid}`" in message
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the flock
        holder.wait()
    locks.mkdir(parents=True)
    for name in ("0.input.lock", "0.output.lock", "notes.txt"):
        (locks / name).write_text("results/test/summary.json\n")
    lock = RunLock(tmp_path).acquire()
    assert lock.remove_stale_snakemake_locks() == ["0.input.lock", "0.output.lock"]
    assert sorted(p.name for p in locks.iterdir()) == ["notes.txt"]  # only Snakemake's own lock files
    with pytest.raises(RunBusyError):
        RunLock(tmp_path).acquire()  # even from the same process: one holder
    lock.release()
    RunLock(tmp_path).acquire().release()


RELAY = """
import os, signal, threading
from tunebench.core.runlock import relay_sigterm
lock, done = threading.Lock(), threading.Event()
def exit_gracefully(*args):  # what Snakemake's SIGTERM handler does: take the scheduler's lock
    with lock:
        done.set()
assert relay_sigterm(exit_gracefully)
with lock:  # the main thread holds that lock when the SIGTERM lands (it finishes a job)
    os.kill(os.getpid(), signal.SIGTERM)
    print("handled inside the lock", flush=True)  # called right here, Snakemake's handler deadlocks
assert done.wait(600), "the relayed handler never ran"
print("relayed", flush=True)
"""


def test_sigterm_while_the_scheduler_holds_its_lock_is_relayed_not_deadlocked():
    """Snakemake 9.27.1's SIGTERM handler takes the scheduler's non-reentrant lock; a SIGTERM landing
    while the main thread held it froze a kill-test run for good. The relay calls it from a thread."""
    out = subprocess.run([sys.executable, "-c", RELAY], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.split() == ["handled", "inside", "the", "lock", "relayed"], out


def hold_copy(tmp_path: Path) -> Path:
    """A copy of the project with the test-only `hold_for_test` rule and its FIFO."""
    repo = copy_repo(tmp_path / "repo")
    with open(repo / "Snakefile", "a") as snakefile:
        snakefile.write(HOLD_RULE)
    os.mkfifo(repo / "hold.fifo")
    return repo


def start_held_run(repo: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """`snakemake --cores 1 hold.done` in its own process group, returned once its job is reading the FIFO
    (the open for writing returns then), with the FIFO's write end: closing it lets the job end."""
    out = open(log, "w")
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "1", "hold.done", *SUITE], cwd=repo, env=ENV, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    opened: dict = {}
    opener = threading.Thread(target=lambda: opened.setdefault("fd", os.open(repo / "hold.fifo", os.O_WRONLY)),
                              daemon=True)
    opener.start()
    while opener.is_alive():
        opener.join(timeout=1)
        if opener.is_alive() and proc.poll() is not None:
            os.close(os.open(repo / "hold.fifo", os.O_RDONLY | os.O_NONBLOCK))  # frees the opener
            opener.join()
            pytest.fail("the held run ended before its job started:\n" + log.read_text()[-3000:])
    return proc, opened["fd"]


def one_line_refusal(text: str, pid: int) -> str:
    lines = text.splitlines()
    ours = [i for i, line in enumerate(lines) if line.startswith("tunebench:")]
    assert len(ours) == 1, text
    line = lines[ours[0]]
    assert re.fullmatch(rf"tunebench: .+: another run \(pid {pid}, started .+\) is using this folder", line), line
    assert lines[ours[0] + 1].startswith("  Fix: wait for that run to end"), text
    assert "--unlock" not in text and "LockException" not in text and "Traceback" not in text, text
    return line


def test_a_second_run_in_the_same_folder_is_refused_in_one_line_while_the_first_lives(tmp_path):
    repo = hold_copy(tmp_path)
    first, fifo = start_held_run(repo, tmp_path / "first.log")
    try:
        held = snakemake_lock_files(repo)
        assert held  # the first run's own Snakemake locks
        second = run([SNAKEMAKE, "--cores", "2", *SUITE], cwd=repo)
        assert second.returncode != 0
        line = one_line_refusal(second.stdout + second.stderr, first.pid)
        assert f"{repo}: " in line and "`snakemake --cores 1 hold.done --config suite=test`" in line
        unlock = run([SNAKEMAKE, "--unlock", *SUITE], cwd=repo)  # would break the live run: refused too
        assert unlock.returncode != 0
        one_line_refusal(unlock.stdout + unlock.stderr, first.pid)
        assert snakemake_lock_files(repo) == held  # nothing taken from the live run
        dry = run([SNAKEMAKE, "-n", "hold.done", *SUITE], cwd=repo)  # a dry run only looks: allowed
        assert dry.returncode == 0 and "tunebench:" not in dry.stderr, dry.stderr[-2000:]
    finally:
        os.write(fifo, b"released\n")
        os.close(fifo)
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert (repo / "hold.done").read_text() == "released\n"
    assert snakemake_lock_files(repo) == []
    again = run([SNAKEMAKE, "--cores", "1", "hold.done", *SUITE], cwd=repo)  # the folder is free again
    assert again.returncode == 0 and "tunebench:" not in again.stderr, again.stderr[-3000:]


def test_sigterm_lets_the_run_clean_up_and_a_killed_runs_locks_go_with_the_next_run(tmp_path):
    """Snakemake 9 on SIGTERM to the whole run: its jobs die, it removes their outputs and its lock
    files, and exits. SIGKILL leaves its lock files: the same command then removes them itself (one
    line) instead of asking for `snakemake --unlock`."""
    repo = hold_copy(tmp_path)
    proc, fifo = start_held_run(repo, tmp_path / "term.log")
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=600) != 0  # it stops by itself
    os.close(fifo)
    text = (tmp_path / "term.log").read_text()
    assert "Will exit after finishing currently running jobs" in text, text[-3000:]
    assert snakemake_lock_files(repo) == [] and not (repo / "hold.done").exists()

    proc, fifo = start_held_run(repo, tmp_path / "kill.log")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    os.close(fifo)
    assert snakemake_lock_files(repo)  # what a killed run leaves
    (repo / "hold.fifo").unlink()
    (repo / "hold.fifo").write_text("resumed\n")  # a plain file: the rerun's job does not wait
    again = run([SNAKEMAKE, "--cores", "1", "hold.done", *SUITE], cwd=repo)
    assert again.returncode == 0, again.stderr[-3000:]
    assert STALE_REMOVED in again.stderr and "--unlock" not in again.stdout + again.stderr
    assert [line for line in again.stderr.splitlines() if line.startswith("tunebench:")] == [
        line for line in again.stderr.splitlines() if line.startswith(STALE_REMOVED)]
    assert (repo / "hold.done").read_text() == "resumed\n" and snakemake_lock_files(repo) == []


def deterministic(prediction: dict) -> dict:
    return {k: v for k, v in prediction.items() if k != "latency_s"}


def same_predictions_and_scores(kept: Path, results: Path, why: str) -> None:
    preds = sorted(kept.glob("predictions/*/*/*.jsonl"))
    scores = sorted(kept.glob("scores/*/*/*.json"))
    assert len(preds) >= 5 and len(scores) == 10, why  # the test suite's cells (the classic baseline's too) and benchmarks
    for pred in preds:
        again = results / pred.relative_to(kept)
        assert [deterministic(r) for r in read_jsonl(pred)] == [deterministic(r) for r in read_jsonl(again)], why
    for score in scores:
        a, b = read_json(score), read_json(results / score.relative_to(kept))
        a.pop("timing"), b.pop("timing")
        assert a == b, f"{why}: {score.relative_to(kept)}"


@pytest.mark.e2e
def test_a_preempted_run_resumes_to_the_same_predictions_and_scores(demo_run, tmp_path):
    """SIGTERM to the whole run while a prediction job works (a preempted SLURM job or Kubernetes pod):
    the run stops by itself, leaves no lock and no half-written result, and the same command then
    finishes with the same predictions and scores as the uninterrupted run."""
    repo = demo_run
    results = repo / "results/test"
    kept = tmp_path / "kept"
    shutil.copytree(results, kept)
    cell = results / "predictions/smollm2-135m-instruct/ticket_routing/5shot.jsonl"
    # One cell's predictions and score, and the summary made from them: their jobs and every later
    # one run again (a missing file alone reruns nothing while what was made from it is there).
    for path in (cell, results / "scores/smollm2-135m-instruct/ticket_routing/5shot.json",
                 results / "summary/collected.json", results / "summary.json"):
        path.unlink()
    command = [SNAKEMAKE, "--cores", "2", *SUITE]
    point = KillPoint("predictions_generate", 1, "working", signal.SIGTERM, lines=1)
    result = run_to_point(repo, command, point, tmp_path / "preempted.log")
    text = (tmp_path / "preempted.log").read_text()
    assert result["hit"] == "predictions_generate working (1 log lines)" and result["rc"] != 0, text[-3000:]
    assert snakemake_lock_files(repo) == [] and not cell.exists(), text[-3000:]
    again = run(command, cwd=repo)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "tunebench:" not in again.stderr and "--unlock" not in again.stdout + again.stderr
    same_predictions_and_scores(kept, results, f"preempted at {result}")


def next_jobs_first(hit: set[str], window: int = 4):
    """Soak points: one of the next `window` jobs a dry run lists (a dense walk through the whole run,
    every stage in turn), a rule no point has hit yet first, and one further on when none is that near
    (a rule whose jobs all ran beside a stopped one)."""
    def choose(rng: random.Random, rules: list[str], i: int) -> KillPoint:
        near = rules[:window]
        fresh = [rule for rule in near if rule not in hit] or [rule for rule in rules if rule not in hit]
        point = draw_point(rng, rules, sigterm_share=0.4, rule=fresh[0]) if fresh else draw_point(rng, near, 0.4)
        hit.add(point.rule)
        return point
    return choose


@pytest.mark.soak
def test_soak_kill_points_over_every_stage_resume_to_the_same_predictions_and_scores(demo_run, tmp_path):
    """`make soak` (not in CI): from scratch (all results, prepared data and the model folder removed),
    TUNEBENCH_SOAK_POINTS (default 30) kill points, SIGKILL or SIGTERM, each on one of the next jobs
    left (every rule in turn, each run resumed by the same command), in as many passes from scratch as
    that takes; every pass must end with the uninterrupted run's predictions and scores. Prints every
    point and the rules hit."""
    import time

    repo = demo_run
    results = repo / "results/test"
    kept = tmp_path / "kept"
    shutil.copytree(results, kept)
    seed = int(os.environ.get("TUNEBENCH_KILL_SEED") or time.time_ns() % 100_000)
    total = int(os.environ.get("TUNEBENCH_SOAK_POINTS") or 30)
    command = [SNAKEMAKE, "--cores", "2", *SUITE]
    rng = random.Random(seed)
    hit: set[str] = set()
    report: list[str] = []
    every_rule: list[str] = []
    while len(report) < total:
        npass = len({line.split(":")[0] for line in report})
        for path in (results, repo / "data", repo / "resources/models"):
            shutil.rmtree(path, ignore_errors=True)
        every_rule = every_rule or sorted(set(planned_rules(repo, command)))
        logs = tmp_path / f"pass{npass}"
        logs.mkdir()
        hits = kill_and_resume(repo, command, rng, total - len(report), logs, choose=next_jobs_first(hit))
        report += [f"pass {npass}: {line}" for line in hits]
        final = run(command, cwd=repo)
        assert final.returncode == 0, final.stderr[-4000:]
        assert "--unlock" not in final.stdout + final.stderr
        same_predictions_and_scores(kept, results, f"seed {seed}, pass {npass}:\n" + "\n".join(hits))
        print(f"soak pass {npass} resumed to the same predictions and scores:\n" + "\n".join(hits), flush=True)
    rules_hit = sorted({line.split()[3].split("#")[0] for line in report if "the run ended first" not in line})
    print(f"soak: seed {seed}, {len(report)} kill points, rules hit: {', '.join(rules_hit)}")
    assert len(report) >= 20 and set(rules_hit) >= set(every_rule), (every_rule, report)
