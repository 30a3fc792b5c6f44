"""A real single-node SLURM cluster for the tests: Debian's slurmctld, slurmd and munge, started as
root without systemd and stopped by PID (no cgroups: proctrack/linuxproc, task/none; job states from
squeue, since without slurmdbd `sacct` fails and the executor plugin would wait forever).

`cluster()` installs the packages when missing (apt, ~10 s), writes /etc/slurm/slurm.conf (the
executor plugin's inner srun drops SLURM_CONF, so the default path is the only one that works),
starts munged, slurmctld and slurmd, waits for the node to be idle, and on exit stops exactly the
daemons it started and removes the config it wrote. It refuses (`Unavailable`, a clear reason) where
it cannot run: not root, no apt, a SLURM config it did not write, or SLURM's ports already taken.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MARKER = "# written by tunebench tests/slurm_cluster.py"
CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]


class Unavailable(Exception):
    """A single-node cluster cannot run on this machine (the reason says why)."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _install() -> None:
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "squeue", "munged")):
        return
    if shutil.which("apt-get") is None:
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise Unavailable(f"apt-get install {' '.join(PACKAGES)} failed: {proc.stderr[-500:]}")


def _config(state: Path, cpus: int, memory_mb: int) -> str:
    return f"""{MARKER}
ClusterName=tunebench
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _pid(path: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):  # not written yet
            return int(path.read_text().split()[0])
        time.sleep(0.2)
    raise Unavailable(f"{path} never appeared")


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def cluster(state: Path, cpus: int | None = None, memory_mb: int = 20000):
    """Start the cluster; yield the state folder (logs inside); stop it on exit."""
    if os.geteuid() != 0:
        raise Unavailable("not root: starting slurmctld, slurmd and munged needs root")
    if CONF.exists() and MARKER not in CONF.read_text():
        raise Unavailable(f"{CONF} exists and was not written by the tests: not touching this machine's SLURM")
    busy = [p for p in (6817, 6818) if not _port_free(p)]
    if busy:
        raise Unavailable(f"SLURM port(s) {busy} in use: another cluster is running (one test cluster at a time)")
    _install()
    state.mkdir(parents=True, exist_ok=True)
    for sub in ("ctld", "d", "munge"):
        (state / sub).mkdir(exist_ok=True)
    started: list[int] = []
    try:
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True)
            os.chmod(key, 0o400)
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        subprocess.run(["munged", "--force", "--pid-file", str(state / "munge" / "munged.pid")], check=True,
                       capture_output=True)
        started.append(_pid(state / "munge" / "munged.pid"))
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(_config(state, cpus or os.cpu_count() or 2, memory_mb))
        subprocess.run(["slurmctld", "-f", str(CONF)], check=True, capture_output=True)
        started.append(_pid(state / "slurmctld.pid"))
        subprocess.run(["slurmd", "-f", str(CONF), "-N", "localhost"], check=True, capture_output=True)
        started.append(_pid(state / "slurmd.pid"))
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if out.startswith("idle"):
                break
            if time.monotonic() > deadline:
                logs = "".join((state / n).read_text()[-1500:] for n in ("slurmctld.log", "slurmd.log")
                               if (state / n).exists())
                raise Unavailable(f"the node never became idle (sinfo: {out!r})\n{logs}")
            time.sleep(0.5)
        yield state
    finally:
        for pid in reversed(started):
            _stop(pid)
        if CONF.exists() and MARKER in CONF.read_text():
            CONF.unlink()
