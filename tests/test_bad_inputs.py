"""The bad-input corpus (tests/bad_inputs/*.yaml): each file is one mistake a user makes, applied
to a fresh copy of the project and run through the real command, `snakemake --cores 1 --config
suite=test`. Every one must stop before any job runs, exit non-zero, print one message naming the
file, the field and the fix, without a traceback or any stack frame (no `File "...", line N` line,
whatever prints it), and leave earlier results exactly as they were.

A case file: `what` (the mistake), `change` (edits: `write` a file (in `encoding`, utf-8 unless set),
`replace` [old, new] in it, `set` / `unset` dotted keys of a YAML file), optional `args` (instead of
--config suite=test) and
`expect` (`file`, `field` (null: a syntax error, located by line), `words` the message contains)."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, run

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# a Python stack frame as any traceback printer writes it, even without the word Traceback
STACK_FRAME = re.compile(r'^\s*File "[^"\n]*", line \d+', re.M)
CASES = sorted((Path(__file__).parent / "bad_inputs").glob("*.yaml"))
EARLIER = {"results/summary.json": '{"earlier": "demo result"}', "results/test/summary.json": '{"earlier": "test"}',
           "results/test/scores/m/t/0shot.json": '{"mean": 0.5}'}


def _dig(doc: dict, dotted: str) -> tuple[dict, str]:
    *parents, last = dotted.split(".")
    for key in parents:
        doc = doc[key]
    return doc, last


def apply_change(repo: Path, change: dict) -> None:
    path = repo / change["file"]
    if "write" in change:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(change["write"], encoding=change.get("encoding", "utf-8"))  # latin-1: bytes as written
    if "replace" in change:
        old, new = change["replace"]
        text = path.read_text()
        assert old in text, f"{change['file']} has no {old!r}: the case is stale"
        path.write_text(text.replace(old, new, 1))
    if "set" in change or "unset" in change:
        doc = yaml.safe_load(path.read_text())
        for dotted, value in (change.get("set") or {}).items():
            parent, key = _dig(doc, dotted)
            parent[key] = value
        for dotted in change.get("unset") or []:
            parent, key = _dig(doc, dotted)
            del parent[key]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run_case(case: Path, base: Path) -> tuple[dict, Path, object]:
    spec = yaml.safe_load(case.read_text())
    repo = copy_repo(base / case.stem)
    for rel, text in EARLIER.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    for change in spec["change"]:
        apply_change(repo, change)
    proc = run([SNAKEMAKE, "--cores", "1", *spec.get("args", ["--config", "suite=test"])], cwd=repo, timeout=180)
    return spec, repo, proc


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case, three at a time (each is a Snakemake start-up, mostly imports)."""
    base = tmp_path_factory.mktemp("bad-inputs")
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(CASES, pool.map(lambda c: run_case(c, base), CASES)))


def test_the_corpus_is_large_and_covers_every_kind_of_input():
    kinds = {case.stem.split("_")[1] for case in CASES}
    assert len(CASES) >= 30
    assert kinds >= {"config", "task", "model", "prompt", "baseline", "pricing", "training", "data"}


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_bad_input_stops_before_any_job_with_one_clear_message(outcomes, case):
    spec, repo, proc = outcomes[case]
    err = proc.stderr
    assert proc.returncode != 0, f"{spec['what']}: accepted\n{proc.stdout[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert not STACK_FRAME.search(err), err[-3000:]
    messages = re.findall(r"^tunebench: (.*)$", err, re.M)
    assert len(messages) == 1, err[-3000:]
    expect = spec["expect"]
    assert messages[0].startswith(f"{expect['file']}: "), messages[0]
    if expect["field"] is not None:
        assert f"field `{expect['field']}`" in messages[0], messages[0]
    for words in expect["words"]:
        assert words in err, (words, err[-2000:])
    assert re.search(r"^\s+Fix: \S", err, re.M), err[-2000:]
    # nothing ran, nothing was lost
    assert not (repo / "data").exists() and not (repo / "resources").exists()
    assert not (repo / "logs").exists()
    for rel, text in EARLIER.items():
        assert (repo / rel).read_text() == text
