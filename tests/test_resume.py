"""Kills and hangs during generation: finished batches are kept in a journal and a rerun generates
only the rest, giving the same outputs; a stalled job is stopped by its watchdog, one that makes
progress is not. The watchdog tests hang on a signal and move a clock of their own, so a busy
machine cannot change what they see. Also: the shared prefix's KV cache reaches transformers under
its current argument name, without a deprecation warning."""

from __future__ import annotations

import json
import subprocess
import sys

from tunebench.core.resume import STALL_EXIT

PROMPTS = [f"Ticket {i}: my order {'is late ' * (i % 4)}please help" for i in range(7)]


def test_a_resumed_cell_generates_only_the_missing_batches_and_matches(tiny_llama_dir, tmp_path, monkeypatch):
    from tunebench.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_llama_dir, dtype="float32", threads=1, chat_template=False,
                                  max_input_tokens=512)
    settings = {"max_new_tokens": 5, "stop": ["\n"], "batch_size": 2, "progress": False}
    whole = backend.generate(PROMPTS, **settings)

    journal = tmp_path / ".0shot.jsonl.journal"
    first = backend.generate(PROMPTS, **settings, journal=journal)
    lines = journal.read_text().splitlines()
    assert json.loads(lines[0])["key"] and len(lines) == 1 + 4  # 7 items in batches of 2
    journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # killed mid-write

    from tunebench.backends import greedy

    redone = []  # the items whose prompts went through the model again (either decoding loop)

    def recorded(real):
        return lambda backend, batch, *a, **kw: redone.extend(batch) or real(backend, batch, *a, **kw)

    monkeypatch.setattr(greedy, "prefill", recorded(greedy.prefill))
    resumed = backend.generate(PROMPTS, **settings, journal=journal)
    assert len(redone) == 3  # batches 0 and 1 came from the journal; the cut line's (2 items) and the last were redone
    assert [g.text for g in resumed] == [g.text for g in first] == [g.text for g in whole]
    assert [g.tokens_out for g in resumed] == [g.tokens_out for g in whole]

    redone.clear()  # other prompts (an edited template): the journal does not apply
    other = backend.generate([p + "!" for p in PROMPTS], **settings, journal=journal)
    assert len(redone) == 7 and len(other) == 7

    redone.clear()  # the same prompts, other weights (a rebuilt model, a retrained adapter): neither
    backend.generate(PROMPTS, **settings, journal=journal)
    (tiny_llama_dir / "config.json").touch()
    backend.generate(PROMPTS, **settings, journal=journal)
    assert len(redone) == 14

    redone.clear()  # batch by batch (no continuous batching): the same resume
    backend.CONTINUOUS = False
    journal.write_text("\n".join(journal.read_text().splitlines()[:3]) + "\n")
    assert [g.text for g in backend.generate(PROMPTS, **settings, journal=journal)] == [g.text for g in whole]
    assert len(redone) == 3


HUNG = """
import threading
from tunebench.core.resume import Watchdog
with Watchdog(0.5, 'm/t/0shot', kept='results/x/.0shot.jsonl.journal') as dog:
    dog.beat()
    threading.Event().wait()  # hung for good: only the watchdog ends this process
"""

# Time moves only when the script says: 0.25 s between beats (the limit is 0.4 s), each time
# waiting until the watchdog has looked at the clock since it moved; then 1 s without a beat.
PROGRESS_THEN_HANG = """
import threading
from tunebench.core.resume import Watchdog

now, seen, looked = [0.0], threading.Condition(), [None]

def clock():
    value = now[0]
    if threading.current_thread().name == "tunebench-watchdog":
        with seen:
            looked[0] = value
            seen.notify_all()
    return value

with Watchdog(0.4, 'm/t/0shot', clock=clock) as dog:
    for _ in range(5):
        now[0] += 0.25
        with seen:
            seen.wait_for(lambda: looked[0] == now[0])
        dog.beat()
    print("alive after 5 beats", flush=True)
    now[0] += 1.0
    threading.Event().wait()
"""


def run_script(code: str) -> subprocess.CompletedProcess:
    # the timeout only bounds a broken watchdog (the script would hang): a working one ends it
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_the_watchdog_stops_a_stalled_job_and_says_what_is_kept():
    proc = run_script(HUNG)
    assert proc.returncode == STALL_EXIT
    assert "m/t/0shot: no progress for" in proc.stderr and ".0shot.jsonl.journal" in proc.stderr
    assert "Rerun to complete only what is missing" in proc.stderr


def test_the_watchdog_lets_a_job_that_makes_progress_run_and_stops_it_when_it_stops():
    proc = run_script(PROGRESS_THEN_HANG)
    assert proc.stdout == "alive after 5 beats\n"  # 5 looks at 0.25 s without progress: no stop
    assert proc.returncode == STALL_EXIT
    assert "m/t/0shot: no progress for 1 s (watchdog.stall_timeout_s = 0.4)" in proc.stderr


def test_the_shared_prefix_cache_is_passed_without_a_deprecated_argument(tiny_llama_dir):
    """transformers 5.x renamed the KV cache argument `past_key_values` to `cache`: passing the old
    name warns (warnings.warn, a FutureWarning, from `generate` and from the forward pass) and
    reading the output's `past_key_values` logs (logger.warning_once, on the `transformers` logger,
    which does not propagate). Both are captured; neither may mention `past_key_values`."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    from tunebench.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_llama_dir, dtype="float32", threads=1, chat_template=False)
    prompts = ["You route support tickets to a queue. " * 6 + text for text in ("late order", "refund", "hi")]
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())

    hf_root, keep = hf_logging.get_logger(), Keep(logging.WARNING)
    level = hf_root.level
    hf_root.addHandler(keep)
    hf_root.setLevel(logging.WARNING)
    hf_logging.warning_once.cache_clear()  # a message logged once already (another test) would be silent
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            generated = backend.generate(prompts, max_new_tokens=3, stop=["\n"], batch_size=2, progress=False)
            assert backend.last_prefix["tokens"] >= 32  # the prefix cache was used
            backend.score_continuations(prompts, ["billing", "refund"], batch_size=2, progress=False)
            assert backend.last_prefix["tokens"] >= 32
    finally:
        hf_root.removeHandler(keep)
        hf_root.setLevel(level)
    assert len(generated) == 3
    deprecated = [m for m in [str(w.message) for w in caught] + logged if "past_key_values" in m]
    assert deprecated == []
