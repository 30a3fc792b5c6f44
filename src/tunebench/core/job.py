"""What every rule's script does around its work: pin threads before torch loads, send logging to
the rule's `log:` file, and turn user errors into one clear message (no traceback) and exit 1."""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tunebench.core.errors import TunebenchError

log = logging.getLogger("tunebench")

# A full disk, a file-size limit (ulimit -f) or a quota: the job stops, nothing half-written stays
# (core.atomic writes via a temporary file it removes), and the same command reruns what is missing.
NO_SPACE = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large (a file-size limit)",
            errno.EDQUOT: "disk quota exceeded"}
# what libraries that wrap the OSError (safetensors, torch's writer, sqlite's caches) say instead
NO_SPACE_TEXT = ("No space left on device", "File too large", "Disk quota exceeded", "database or disk is full")


def no_space(exc: BaseException) -> tuple[str, str | None] | None:
    """(what, file) when `exc` or an exception it was raised from is out of space, else None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in NO_SPACE:
            return NO_SPACE[cause.errno], cause.filename
        text = str(cause)
        for phrase in NO_SPACE_TEXT:
            if phrase in text:
                return phrase[0].lower() + phrase[1:], None
        cause = cause.__cause__ or cause.__context__
    return None


def no_space_message(exc: BaseException, outputs: list[str]) -> str | None:
    """One tunebench line naming the file (or the job's output when the error names none) and the fix."""
    found = no_space(exc)
    if found is None:
        return None
    what, file = found
    where = os.fspath(file) if file else (outputs[0] if outputs else "the results folder")
    return (f"{where}: {what}: the job stopped, no output is left half-written\n"
            "  Fix: free space, then rerun the same command")


def project_root(snakemake) -> Path:
    """The repo root: scripts/ lives right below it."""
    return Path(snakemake.scriptdir).resolve().parent


def run_job(snakemake, body: Callable) -> None:
    threads = str(max(1, int(getattr(snakemake, "threads", 1) or 1)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        # Truncate, then append: a worker process the job starts appends to the same log.
        open(snakemake.log[0], "w").close()
        handlers.append(logging.FileHandler(snakemake.log[0], mode="a", encoding="utf-8"))
    logging.raiseExceptions = False  # a log line the full disk cannot take is dropped, not a traceback
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    for noisy in ("httpx", "httpx2", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.perf_counter()
    try:
        body(snakemake)
    except TunebenchError as exc:
        log.error("%s", exc)
        print(f"\ntunebench: {exc}\n", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        message = no_space_message(exc, [str(o) for o in getattr(snakemake, "output", [])])
        if message:
            log.error("%s", message)
            print(f"\ntunebench: {message}\n", file=sys.stderr)
            sys.exit(1)
        log.exception("unexpected error (a bug in tunebench, please report it with this log)")
        raise
    log.info("done in %.1f s", time.perf_counter() - started)
