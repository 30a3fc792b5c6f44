"""One run at a time in a project folder, and never a stale lock to remove by hand.

Snakemake marks a running workflow with lock files in `.snakemake/locks/` (removed when it ends, also
after a SIGTERM, which lets running jobs fail and exits). A run that is killed outright (SIGKILL: the OOM
killer, a preempted node after its grace period, `kill -9`), or stopped by SIGTERM while it is still
building its DAG, leaves them behind: the next run then stops with advice to run `snakemake --unlock`,
the same advice it gives, wrongly, while the other run is still alive.

tunebench's own lock tells the two apart: an `fcntl.flock` on `.snakemake/tunebench.lock`, taken by the
main `snakemake` process of a run when the Snakefile is parsed and held until that process ends. The
kernel drops a flock when its process dies, however it dies, so:

* held: another run lives in this folder: one clear line, and this command stops (before Snakemake's
  multi-line lock advice, which would be wrong here);
* free: no run lives, so Snakemake's lock files are stale: they are removed, and that is said in one line.

The file names its holder (pid, host, start, command) for the message. Job processes, dry runs and
commands that only read (`--list-rules`, `--lint`, `--summary` ...) take no lock; `--unlock` is refused
while a run holds the folder. `--nolock` leaves both locks alone.

SIGTERM (what SLURM and Kubernetes send before they kill): Snakemake 9 lets running jobs fail (they
get it too), removes their outputs and its lock files, and exits. Its handler takes the scheduler's
lock, which is not reentrant: a SIGTERM that lands while the main thread holds that lock (finishing a
job) deadlocked the run for good (Snakemake 9.27.1, found by the kill tests). `relay_sigterm` puts a
handler in its place that only writes a byte to a pipe; a thread then calls Snakemake's own handler.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tunebench.core.errors import TunebenchError

LOCK_FILE = Path(".snakemake/tunebench.lock")
SNAKEMAKE_LOCKS = Path(".snakemake/locks")  # Snakemake's file persistence backend: <n>.input.lock, <n>.output.lock
_SNAKEMAKE_LOCK_NAME = re.compile(r"[0-9]+\.(input|output)\.lock")

# Snakemake's command-line switches that make a command do something other than run jobs (the branches
# of snakemake.cli.args_to_api before `execute_workflow`), plus a dry run: none of them takes the lock.
_NOT_A_RUN = ("lint", "list_target_rules", "list_rules", "print_compilation", "containerize",
              "generate_unit_tests", "dag", "rulegraph", "filegraph", "d3dag", "cleanup_metadata",
              "conda_cleanup_envs", "conda_create_envs_only", "list_conda_envs", "cleanup_shadow",
              "container_cleanup_images", "list_changes", "list_input_changes", "list_params_changes",
              "list_untracked", "summary", "detailed_summary", "archive", "delete_all_output",
              "delete_temp_output", "dryrun")


class RunBusyError(TunebenchError):
    """Another live run holds the project folder."""


def is_snakemake_cli(argv: list[str]) -> bool:
    """This process is the `snakemake` command (or `python -m snakemake`), not a library caller."""
    prog = Path(argv[0]) if argv else Path()
    return prog.name == "snakemake" or (prog.name == "__main__.py" and prog.parent.name == "snakemake")


def command_mode(args: list[str]) -> str | None:
    """What a `snakemake` command line does, for the lock: "run" (runs or touches jobs: takes it),
    "unlock" (refused while a run holds it), None (a dry run, a listing, a report, `--nolock`: neither)."""
    from snakemake.cli import get_argument_parser

    parsed = get_argument_parser().parse_known_args(args)[0]
    if getattr(parsed, "nolock", False):
        return None
    if getattr(parsed, "unlock", False):
        return "unlock"
    if any(getattr(parsed, name, None) for name in _NOT_A_RUN):
        return None
    if getattr(parsed, "report", None) and not getattr(parsed, "report_after_run", False):
        return None
    return "run"


class RunLock:
    """The flock on `<workdir>/.snakemake/tunebench.lock`, held while this object lives (or until
    `release`). `acquire` raises RunBusyError when another live process holds it."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir).resolve()
        self.path = self.workdir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, command: list[str] | None = None, results_dir: str | None = None) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            problem, fix = _busy_message(holder)
            raise RunBusyError(problem, file=str(self.workdir), fix=fix) from None
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "results_dir": results_dir,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "command": " ".join(["snakemake", *(command or [])])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    def remove_stale_snakemake_locks(self) -> list[str]:
        """Snakemake's lock files, removed: only call this while holding the lock (no run lives)."""
        folder = self.workdir / SNAKEMAKE_LOCKS
        if self.fd is None or not folder.is_dir():
            return []
        removed = sorted(p.name for p in folder.iterdir() if _SNAKEMAKE_LOCK_NAME.fullmatch(p.name))
        for name in removed:
            (folder / name).unlink(missing_ok=True)
        return removed


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _busy_message(holder: dict) -> tuple[str, str]:
    pid, host = holder.get("pid"), holder.get("host")
    here = host in (None, socket.gethostname())
    who = f"pid {pid}" if pid else "a process"
    if host and not here:
        who += f" on {host}"
    details = ", ".join(x for x in (who, f"started {holder['started']}" if holder.get("started") else "",
                                    f"`{holder['command']}`" if holder.get("command") else "") if x)
    stop = f"`kill {pid}`" if pid else "stop it"
    if host and not here:
        stop += f" on {host}"
    fix = (f"wait for that run to end, or stop it ({stop}: its jobs stop and clean up, and a rerun of the "
           "same command resumes), then rerun; there is no lock to remove by hand. For two runs at once, "
           "use two copies of the project")
    return f"another run ({details}) is using this folder", fix


def guard(workdir: str | Path, argv: list[str], results_dir: str | None = None) -> RunLock | None:
    """The Snakefile's hook, in the main `snakemake` process: for a run, take the lock (or raise
    RunBusyError) and clear the stale lock files a killed run left; for `--unlock`, raise RunBusyError
    while a run holds the folder. Returns the held lock (keep a reference to it), else None."""
    if not is_snakemake_cli(argv):
        return None
    mode = command_mode(argv[1:])
    if mode is None:
        return None
    try:
        lock = RunLock(workdir).acquire(argv[1:], results_dir)
    except RunBusyError:
        raise
    except OSError as exc:  # a file system without locks (Lustre mounted noflock, some FUSE): Snakemake's alone
        print(f"tunebench: {LOCK_FILE}: no file lock here ({exc.strerror}): a second run in this folder is not "
              "refused, and after a kill Snakemake may ask for `snakemake --unlock`", file=sys.stderr)
        return None
    if mode == "unlock":
        lock.release()  # nobody runs here: let Snakemake remove its lock files as asked
        return None
    removed = lock.remove_stale_snakemake_locks()
    if removed:
        print(f"tunebench: {SNAKEMAKE_LOCKS}/: removed the lock a stopped run left (no run holds this folder), "
              "nothing to unlock by hand", file=sys.stderr)
    return lock


def relay_sigterm(handler: Callable[..., object] | None) -> bool:
    """From the main thread: SIGTERM calls `handler` (Snakemake's scheduler.exit_gracefully) from a
    thread of its own, never inside the signal handler, where the lock it takes may already be held by
    the interrupted thread. Returns False (nothing changed) without a handler or off the main thread."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return False
    read_end, write_end = os.pipe()

    def relay() -> None:
        while os.read(read_end, 1):
            handler()

    threading.Thread(target=relay, name="tunebench-sigterm", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda signum, frame: os.write(write_end, b"T"))  # no lock taken here
    return True
