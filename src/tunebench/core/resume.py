"""Long generation that survives kills and hangs: a journal of finished batches, and a watchdog.

The journal is a hidden JSONL beside the cell's output: its first line is a key (a hash of the
prompts and the generation settings), then one line per finished batch. A rerun with the same key
skips those batches: batches are cut from the same length-sorted order every time, so a resumed
cell is made of exactly the batches an uninterrupted one is, and its outputs are identical. A line
cut short by a kill is ignored; another key starts the journal afresh.

The watchdog stops the job when no batch finishes for `stall_timeout_s` (a wedged thread pool, a
device that stopped answering): it says so, keeps the journal, and exits non-zero so Snakemake
marks the job failed; the rerun completes only the missing batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tunebench.core.atomic import naming

log = logging.getLogger(__name__)

STALL_EXIT = 75  # EX_TEMPFAIL: try again


def journal_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def weights_identity(*paths: str | Path | None) -> list:
    """What identifies the weights a journal's batches came from (a retrained adapter or a rebuilt
    model must not reuse them): name, size and modification time of every file in those folders."""
    out = []
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out += [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return out


class Journal:
    def __init__(self, path: str | Path | None, key: str):
        self.path = Path(path) if path else None
        self.key = key
        self.done: dict[int, list] = {}
        if self.path is None:
            return
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        try:
            same = bool(lines) and json.loads(lines[0]).get("key") == key
        except json.JSONDecodeError:
            same = False
        if same:
            kept = [lines[0]]
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a kill cut short
                self.done[entry["batch"]] = entry["items"]
                kept.append(line)
            self.path.write_text("\n".join(kept) + "\n")  # appends start on a line of their own
            log.info("resuming from %s: %d batches already done", self.path, len(self.done))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"key": key}) + "\n")

    def add(self, batch: int, items: list) -> None:
        if self.path is None:
            return
        with naming(self.path), open(self.path, "a", encoding="utf-8") as fh:  # a full disk names the
            fh.write(json.dumps({"batch": batch, "items": items}) + "\n")  # journal; a line cut short
            fh.flush()  # is skipped on resume
            os.fsync(fh.fileno())

    def finish(self) -> None:
        """The cell's output is written: the journal has served."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class Watchdog:
    """`with Watchdog(timeout, what) as dog:` ... `dog.beat()` after each unit of progress.

    The clock starts at the `with` (after the model is loaded and the prompts prepared) and
    restarts with every beat, so it measures how long one unit (a batch) goes without finishing.
    `clock`: where the time comes from (time.monotonic; a test's own clock makes it deterministic)."""

    def __init__(self, stall_timeout_s: float | None, what: str, kept: str | Path | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.timeout = stall_timeout_s
        self.what = what
        self.kept = kept
        self.clock = clock
        self.last = clock()
        self._stop = threading.Event()

    def beat(self) -> None:
        self.last = self.clock()

    def _watch(self) -> None:
        timeout = self.timeout
        if not timeout:  # started only with a timeout (__enter__)
            return
        step = max(0.1, min(5.0, timeout / 4))
        while not self._stop.wait(step):
            idle = self.clock() - self.last
            if idle > timeout:
                kept = f"; finished batches are kept in {self.kept}" if self.kept else ""
                message = (f"tunebench: {self.what}: no progress for {idle:.0f} s (watchdog.stall_timeout_s = "
                           f"{self.timeout:g}): stopped{kept}. Rerun to complete only what is missing.")
                log.error(message)
                print(message, file=sys.stderr, flush=True)
                logging.shutdown()
                os._exit(STALL_EXIT)

    def __enter__(self) -> Watchdog:
        self.beat()
        if self.timeout:
            threading.Thread(target=self._watch, name="tunebench-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
