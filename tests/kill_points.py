"""Event-driven kill points for the real workflow: run a `snakemake` command and stop its whole process
group (SIGKILL, or the SIGTERM that SLURM and Kubernetes send first) when a chosen job reaches a chosen
point, watched in the run's own output and the job's log file, never after a wall-clock delay.

A point names a rule, which of that rule's jobs in the run (the nth one started), when, and the signal:
* `start`: Snakemake announces the job (`rule X:`): its script is only starting;
* `working`: the job's log got `lines` lines in this attempt (its body is running); a job that ends
  first, or has no log, is hit when it finishes;
* `finished`: Snakemake reports the job done (`Finished jobid: N`), before later jobs use it.

Points are drawn from a dry run's job list (seeded), so every rule a run still has to do can be hit,
the late ones (summary, plots, site) as much as the long ones.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

WHEN = ("start", "working", "finished")
HEADER = re.compile(r"^(?:local)?rule (\w+):$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")
STALE_REMOVED = "tunebench: .snakemake/locks/: removed the lock a stopped run left"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass
class KillPoint:
    rule: str
    nth: int  # the nth job of `rule` started in this run (1-based)
    when: str = "start"
    sig: int = signal.SIGKILL
    lines: int = 1  # `working`: how many log lines the job writes first

    def __str__(self) -> str:
        at = f"{self.when}({self.lines} log lines)" if self.when == "working" else self.when
        return f"{signal.Signals(self.sig).name} {self.rule}#{self.nth} at {at}"


def planned_rules(repo: Path, command: list[str]) -> list[str]:
    """The rule of every job a dry run of `command` lists, in its order (`all` left out)."""
    out = subprocess.run([*command, "-n"], cwd=repo, env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return [m.group(1) for line in (out.stdout + out.stderr).splitlines()
            if (m := HEADER.match(line.strip())) and m.group(1) != "all"]


def draw_point(rng: random.Random, rules: list[str], sigterm_share: float = 1 / 3,
               rule: str | None = None) -> KillPoint:
    """A point on one of `rules` (the jobs still to run), uniformly over them, or on `rule`'s first job."""
    index = rules.index(rule) if rule else rng.randrange(len(rules))
    name = rules[index]
    return KillPoint(name, rules[: index + 1].count(name), rng.choice(WHEN),
                     signal.SIGTERM if rng.random() < sigterm_share else signal.SIGKILL, rng.randint(1, 3))


def _log_state(path: Path | None):
    if path is None or not path.exists():
        return None
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def run_to_point(repo: Path, command: list[str], point: KillPoint, log: Path,
                 term_timeout: float = 600) -> dict:
    """Run `command` in `repo` (its output to `log`) and signal its process group at `point`. Returns
    what happened: `hit` (the event the signal was sent at, None when the run ended first), `rc`, and
    the rules of the jobs that had started but not finished (`running`)."""
    proc = subprocess.Popen(command, cwd=repo, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        with open(log, "w") as out:
            for line in proc.stdout:  # type: ignore[union-attr]
                out.write(line)
                out.flush()
                lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = 0
    started: dict[str, str] = {}  # jobid -> rule, still running
    current: dict = {}  # the header being read: rule, log, jobid
    target: dict | None = None  # the point's job, once announced
    hit = None
    while hit is None:
        try:
            line = lines.get(timeout=0.05)  # the short wait only lets the job's log be looked at
        except queue.Empty:
            line = ""
        if line is None:
            break  # the run ended before the point
        if m := HEADER.match(line.strip()):
            current = {"rule": m.group(1)}
            if m.group(1) == point.rule:
                seen += 1
                if seen == point.nth:
                    target = current
                    if point.when == "start":
                        started["announced"] = point.rule
                        hit = f"{point.rule} announced"
                        break
        elif line.startswith("    log: ") and current:
            current["log"] = repo / line.split(": ", 1)[1].split(",")[0].strip()
            if current is target:
                target["log_state"] = _log_state(target["log"])
        elif line.startswith("    jobid: ") and current:
            current["jobid"] = line.split(": ", 1)[1].strip()
            started[current["jobid"]] = current["rule"]
        elif m := FINISHED.match(line):
            started.pop(m.group(1), None)
            if target and target.get("jobid") == m.group(1):
                hit = f"{point.rule} finished" + (" (before its log)" if point.when == "working" else "")
                break
        if target and point.when == "working" and "jobid" in target and target.get("log"):
            state = _log_state(target["log"])
            if state is not None and state != target.get("log_state") and state[1] > 0:
                if target["log"].read_text(errors="replace").count("\n") >= point.lines:
                    hit = f"{point.rule} working ({point.lines} log lines)"
    if hit is not None:
        try:
            os.killpg(proc.pid, point.sig)
        except ProcessLookupError:
            hit = None
    try:
        rc = proc.wait(timeout=term_timeout if point.sig == signal.SIGTERM else 120)
    except subprocess.TimeoutExpired:  # a SIGTERM that does not stop the run is a failure, not a wait
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{point}: the run did not stop within {term_timeout}s of SIGTERM") from None
    return {"hit": hit, "rc": rc, "running": sorted(started.values())}


def snakemake_lock_files(repo: Path) -> list[str]:
    folder = repo / ".snakemake/locks"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def kill_and_resume(repo: Path, command: list[str], rng: random.Random, count: int, logs: Path,
                    choose=None, after_kill=None) -> list[str]:
    """`count` kill points in a row, each drawn (`choose(rng, rules, i)`, default `draw_point`) from the
    jobs a dry run says are left, each in a new run of the same `command`. After each: `after_kill()`;
    a SIGTERM let Snakemake remove its own lock files; no run ever asks for `--unlock` (the next run
    removes a killed run's stale locks itself). Returns one line per point: what it hit."""
    report: list[str] = []
    stale = snakemake_lock_files(repo)
    for i in range(count):
        rules = planned_rules(repo, command)
        if not rules:
            break
        point = choose(rng, rules, i) if choose else draw_point(rng, rules)
        log = logs / f"kill-{i:02d}.log"
        result = run_to_point(repo, command, point, log)
        text = log.read_text()
        assert "--unlock" not in text and "LockException" not in text, f"{point}: {text[-3000:]}"
        if stale:  # what a killed run left, removed by the next one, which says so
            assert STALE_REMOVED in text, f"{point}: stale locks {stale} not removed\n{text[-3000:]}"
        left = snakemake_lock_files(repo)
        if point.sig == signal.SIGTERM and result["hit"]:
            assert not left, f"{point}: SIGTERM left Snakemake's locks {left}\n{text[-3000:]}"
        stale = left
        report.append(f"{point}: {result['hit'] or 'the run ended first'} (rc {result['rc']}, running: "
                      f"{', '.join(result['running']) or '-'}; locks left: {len(left)})")
        if after_kill:
            after_kill()
    return report
