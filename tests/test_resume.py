"""Kills and hangs during generation: finished batches are kept in a journal and a rerun generates
only the rest, giving the same outputs; a stalled job is stopped by its watchdog."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tunebench.resume import STALL_EXIT

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

    calls = []
    real = backend.model.generate
    monkeypatch.setattr(backend.model, "generate", lambda **kw: calls.append(1) or real(**kw))
    resumed = backend.generate(PROMPTS, **settings, journal=journal)
    assert len(calls) == 2  # batches 0 and 1 came from the journal; the cut line and the last were redone
    assert [g.text for g in resumed] == [g.text for g in first] == [g.text for g in whole]
    assert [g.tokens_out for g in resumed] == [g.tokens_out for g in whole]

    calls.clear()  # other prompts (an edited template): the journal does not apply
    other = backend.generate([p + "!" for p in PROMPTS], **settings, journal=journal)
    assert len(calls) == 4 and len(other) == 7

    calls.clear()  # the same prompts, other weights (a rebuilt model, a retrained adapter): neither
    backend.generate(PROMPTS, **settings, journal=journal)
    (tiny_llama_dir / "config.json").touch()
    backend.generate(PROMPTS, **settings, journal=journal)
    assert len(calls) == 8


def test_the_watchdog_stops_a_stalled_job_and_says_what_is_kept(tmp_path):
    code = ("import time\nfrom tunebench.resume import Watchdog\n"
            "with Watchdog(0.5, 'm/t/0shot', kept='results/x/.0shot.jsonl.journal') as dog:\n"
            "    dog.beat()\n    time.sleep(30)\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == STALL_EXIT and time.monotonic() - started < 10
    assert "m/t/0shot: no progress for" in proc.stderr and ".0shot.jsonl.journal" in proc.stderr
    assert "Rerun to complete only what is missing" in proc.stderr
    beating = ("import time\nfrom tunebench.resume import Watchdog\n"
               "with Watchdog(0.5, 'busy') as dog:\n    for _ in range(10):\n        time.sleep(0.2); dog.beat()\n")
    assert subprocess.run([sys.executable, "-c", beating], timeout=60).returncode == 0
