"""What every rule's script does around its work: pin threads before torch loads, send logging to
the rule's `log:` file, and turn user errors into one clear message (no traceback) and exit 1."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tunebench.core.errors import TunebenchError

log = logging.getLogger("tunebench")


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
    except Exception:
        log.exception("unexpected error (a bug in tunebench, please report it with this log)")
        raise
    log.info("done in %.1f s", time.perf_counter() - started)
