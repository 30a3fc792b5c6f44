"""Faults on disk, each through the real `snakemake` command on a small project of two local tasks
(alpha, beta: JSON-lines files in the project) and a tiny random Llama (no download):

- a results folder that fills mid-run (a file-size limit on the run, so writes fail with EFBIG):
  one `tunebench:` line naming the file and the fix, no half-written output, earlier results
  byte-identical, and the same command completes once there is room;
- a predictions file (or a prepared split) truncated or edited after the run: the job that reads it
  stops with one `tunebench:` line naming the file and `--forcerun <it>`, never scores it; a meta
  written before digests existed is still read;
- a local data file edited after it was prepared (also with its mtime kept, as `cp -p` or a checkout
  does): the rerun does exactly that task's chain, nothing of the other task's."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, run

pytestmark = pytest.mark.e2e
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
LABELS = ["billing", "refund", "shipping"]
TASKS = ("alpha", "beta")
RESULTS = "results/mine"


def score(task: str) -> str:
    return f"{RESULTS}/scores/tiny/{task}/0shot.json"


def rows(task: str) -> str:
    return f"{RESULTS}/predictions/tiny/{task}/0shot.jsonl"


TARGETS = [score(t) for t in TASKS]


def write_yaml(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def write_rows(path: Path, task: str, n: int = 40, note: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"{task}-{i}", "text": f"{task} ticket {i} about {LABELS[i % 3]}{note}",
                                        "label": LABELS[i % 3]}) + "\n" for i in range(n)))


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_llama_dir) -> Path:
    """The project, run once to both tasks' score files."""
    repo = copy_repo(tmp_path_factory.mktemp("integrity") / "repo")
    for task in TASKS:
        write_rows(repo / f"data_in/{task}.jsonl", task)
        write_yaml(repo / f"configs/tasks/{task}.yaml", {
            "name": task, "type": "classification",
            "source": {"kind": "local", "path": f"data_in/{task}.jsonl", "format": "jsonl"},
            "fields": {"id": "id", "input": "text", "target": "label"}, "labels": LABELS,
            "split": {"val": 0.2, "test": 0.3, "seed": 7}, "prompt": "prompts/ticket_routing.yaml",
            "metrics": ["accuracy"], "generation": {"max_new_tokens": 64, "stop": ["<end>"]}})
    write_yaml(repo / "configs/models/tiny.yaml", {
        "name": "tiny", "source": {"kind": "local", "path": str(tiny_llama_dir)}, "dtype": "float32",
        "batch_size": 8})
    config = yaml.safe_load((repo / "configs/config.yaml").read_text())
    config.update(models=["tiny"], tasks=list(TASKS), finetune={"tasks": [], "training": "cpu-lora"})
    config["prompting"]["shots"] = [0]
    config["suites"]["mine"] = {"description": "integrity faults", "results_dir": RESULTS,
                                "max_eval_items": 10, "benchmarks": []}
    config["suite"] = "mine"
    write_yaml(repo / "configs/config.yaml", config)
    proc = run([SNAKEMAKE, "--cores", "2", *TARGETS], cwd=repo, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return repo


@pytest.fixture
def project(built, tmp_path) -> Path:
    """A copy of the built project (outputs, their mtimes and Snakemake's records) for one test."""
    return Path(shutil.copytree(built, tmp_path / "repo", symlinks=True))


def snakemake(repo: Path, *args: str, fsize_kib: int | None = None):
    """The real command. `fsize_kib`: a file-size limit on its jobs (not on Snakemake itself, which
    keeps its records), set by the shell each job runs in (bash reads $BASH_ENV first), with SIGXFSZ
    ignored: a write past it fails with EFBIG, as on a results folder that is full."""
    env = {}
    if fsize_kib:
        (repo.parent / "full.sh").write_text(f"trap '' XFSZ\nulimit -f {fsize_kib}\n")
        env["BASH_ENV"] = str(repo.parent / "full.sh")
    return run([SNAKEMAKE, "--cores", "1", *args], cwd=repo, timeout=900, env=env)


def files(repo: Path, *folders: str) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for folder in folders for p in sorted((repo / folder).rglob("*"))
            if p.is_file() and "/logs/" not in f"/{p.relative_to(repo)}"}


def tunebench_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("tunebench:")]


def temp_files(repo: Path) -> list[str]:
    return [str(p) for folder in ("results", "data") for p in (repo / folder).rglob("*")
            if p.name.endswith((".tmp", ".old")) or ".tmp" in p.name]


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and not re.search(r'^\s*File ".*", line \d+', text, re.M)


def dry_run_outputs(repo: Path, *targets: str) -> list[str]:
    """The outputs of every job a dry run would run."""
    proc = snakemake(repo, "-n", *targets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return []
    return [out for line in text.splitlines() if line.strip().startswith("output:")
            for out in line.split(":", 1)[1].strip().split(", ")]


# --- a full disk ---------------------------------------------------------------------------------

def test_a_full_results_folder_stops_with_one_message_keeps_everything_else_and_the_rerun_completes(project):
    before = files(project, RESULTS, "data")
    command = (score("beta"), "--forcerun", rows("beta"))  # regenerate beta's predictions (2.8 kB)
    proc = snakemake(project, *command, fsize_kib=2)
    journal = f"{RESULTS}/predictions/tiny/beta/.0shot.jsonl.journal"  # its finished batches, for the rerun
    assert proc.returncode != 0
    assert tunebench_lines(proc.stderr) == [  # the first batch's line in the journal passes 2 KiB
        f"tunebench: {journal}: file too large (a file-size limit): the job stopped, no output is left "
        "half-written"], proc.stderr[-4000:]
    assert "\n  Fix: free space, then rerun the same command\n" in proc.stderr
    assert no_traceback(proc.stderr + proc.stdout), proc.stderr[-4000:]
    assert temp_files(project) == []
    assert not (project / rows("beta")).exists()  # nothing half-written
    after = files(project, RESULTS, "data")
    beta = {rows("beta"), rows("beta")[:-6] + ".meta.json", score("beta"), journal}
    assert {k: v for k, v in after.items() if k not in beta} == {k: v for k, v in before.items() if k not in beta}

    proc = snakemake(project, *command)  # room again: the same command completes
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((project / score("beta")).read_text())["n"] == 10
    assert files(project, RESULTS, "data")[score("alpha")] == before[score("alpha")]
    assert not (project / journal).exists()


def test_an_out_of_space_error_from_any_job_is_one_line_naming_the_file(tmp_path):
    """run_job, as every rule's script calls it: a write the disk refuses (ENOSPC, named by the
    atomic writer as the output, not its temporary), a quota, or a library's wrapped message."""
    import errno
    import subprocess

    script = tmp_path / "job.py"
    script.write_text(
        "import errno, sys, types\n"
        "from tunebench.core.job import run_job\n"
        "from tunebench.core.atomic import atomic_path\n"
        "sm = types.SimpleNamespace(threads=1, log=[], output=['out/x.json'], scriptdir='.')\n"
        "def body(sm):\n"
        "    kind = sys.argv[1]\n"
        "    if kind == 'atomic':\n"
        "        with atomic_path('out/x.json') as tmp:\n"
        "            tmp.write_text('partial')\n"
        f"            raise OSError({errno.ENOSPC}, 'No space left on device')\n"
        f"    if kind == 'quota':\n"
        f"        raise OSError({errno.EDQUOT}, 'Disk quota exceeded', 'out/journal')\n"
        "    if kind == 'sqlite':\n"
        "        import sqlite3\n"
        "        raise sqlite3.OperationalError('database or disk is full')\n"
        "    raise RuntimeError('PytorchStreamWriter failed writing file data/0: No space left on device')\n"
        "run_job(sm, body)\n")
    seen = {}
    for kind in ("atomic", "quota", "wrapped", "sqlite"):
        proc = subprocess.run([sys.executable, str(script), kind], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 1 and no_traceback(proc.stderr), proc.stderr
        (line,) = tunebench_lines(proc.stderr)
        seen[kind] = line
        assert "  Fix: free space, then rerun the same command" in proc.stderr
    assert seen["atomic"].startswith("tunebench: out/x.json: no space left on the device: the job stopped")
    assert seen["quota"].startswith("tunebench: out/journal: disk quota exceeded")
    assert seen["wrapped"].startswith("tunebench: out/x.json: no space left on device")
    assert seen["sqlite"].startswith("tunebench: out/x.json: database or disk is full")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # the temporary is gone, no x.json
    assert errno.EFBIG  # (the file-size limit itself: the end-to-end test above)


def test_the_atomic_writers_leave_nothing_behind_past_a_file_size_limit(tmp_path):
    """A real EFBIG (a file-size limit, SIGXFSZ ignored) in the rows writer and the folder writer: the
    error names the output, the old output stays as it was, and no temporary is left."""
    import subprocess

    (tmp_path / "old.jsonl").write_text("{}\n")
    code = (
        "import errno, resource, signal, sys\n"
        "from tunebench.core.atomic import atomic_dir, write_jsonl\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "def folder():\n"
        "    with atomic_dir('run') as tmp:\n"
        "        (tmp / 'big').write_bytes(b'z' * 10000)\n"
        "for write in (lambda: write_jsonl('old.jsonl', [{'x': 'y' * 100}] * 100), folder):\n"
        "    try:\n"
        "        write()\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno], exc.filename)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.stdout.splitlines() == ["EFBIG old.jsonl", "EFBIG run"], proc.stderr
    assert (tmp_path / "old.jsonl").read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]


# --- outputs edited on disk ----------------------------------------------------------------------

def test_a_truncated_predictions_file_is_never_scored_and_the_fix_regenerates_it(project):
    path = project / rows("beta")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    proc = snakemake(project, score("beta"))
    assert proc.returncode != 0 and no_traceback(proc.stderr), proc.stderr[-4000:]
    (line,) = tunebench_lines(proc.stderr)
    assert line.startswith(f"tunebench: {rows('beta')}: changed after it was written (9 rows now, 10 when written; "
                           "sha256 "), line
    assert f"recorded in {rows('beta')[:-6]}.meta.json" in line
    assert f"  Fix: write it again with rule predictions_generate: add `--forcerun {rows('beta')}`" in proc.stderr
    assert not (project / score("beta")).exists()

    proc = snakemake(project, score("beta"), "--forcerun", rows("beta"))  # the fix, as it says
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((project / score("beta")).read_text())["n"] == 10


def test_a_hand_edited_answer_is_caught_even_with_its_mtime_kept(project):
    path = project / rows("alpha")
    stat = path.stat()
    rows_ = [json.loads(line) for line in path.read_text().splitlines()]
    rows_[0]["parsed"] = rows_[0]["target"] if "target" in rows_[0] else LABELS[0]
    rows_[1]["parsed"] = "refund" if rows_[1]["parsed"] != "refund" else "billing"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows_))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    proc = snakemake(project, score("alpha"), "--forcerun", score("alpha"))
    assert proc.returncode != 0 and no_traceback(proc.stderr), proc.stderr[-4000:]
    (line,) = tunebench_lines(proc.stderr)
    assert line.startswith(f"tunebench: {rows('alpha')}: changed after it was written (10 rows; sha256 "), line


def test_an_edited_prepared_split_stops_the_prediction_that_reads_it(project):
    path = project / "data/prepared/beta/test.jsonl"
    path.write_text(path.read_text().replace("beta ticket", "beta Ticket", 1))
    proc = snakemake(project, score("beta"))
    assert proc.returncode != 0 and no_traceback(proc.stderr), proc.stderr[-4000:]
    (line,) = tunebench_lines(proc.stderr)
    assert line.startswith("tunebench: data/prepared/beta/test.jsonl: changed after it was written (12 rows; "), line
    assert "recorded in data/prepared/beta/manifest.json" in line
    assert "  Fix: write it again with rule split_prepare: add `--forcerun data/prepared/beta/test.jsonl`" in proc.stderr

    path = project / "data/prepared/alpha/train.jsonl"  # a training cap is drawn from a checked train split
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    proc = snakemake(project, "data/prepared/alpha/train-8.jsonl")
    assert proc.returncode != 0 and no_traceback(proc.stderr), proc.stderr[-4000:]
    (line,) = tunebench_lines(proc.stderr)
    assert line.startswith("tunebench: data/prepared/alpha/train.jsonl: changed after it was written (1 row now, "), line
    assert not (project / "data/prepared/alpha/train-8.jsonl").exists()


def test_a_meta_written_before_digests_is_still_read(project):
    meta_path = project / (rows("beta")[:-6] + ".meta.json")
    meta = json.loads(meta_path.read_text())
    assert set(meta["rows_file"]) == {"rows", "sha256"}
    del meta["rows_file"]
    meta_path.write_text(json.dumps(meta))
    proc = snakemake(project, score("beta"), "--forcerun", score("beta"))
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_the_agreement_check_reads_only_untouched_predictions(project):
    from tunebench.compare.agreement import read_checked_rows
    from tunebench.core.errors import DataError

    path = project / rows("alpha")
    assert len(read_checked_rows(str(path))) == 10
    path.write_text(path.read_text().replace('"output": "', '"output": "x', 1))
    with pytest.raises(DataError, match="changed after it was written"):
        read_checked_rows(str(path))


def test_a_broken_meta_or_a_changed_raw_file_is_one_message_with_its_fix(tmp_path):
    from tunebench.core.errors import DataError
    from tunebench.core.integrity import digest, read_record, verify_raw, verify_rows

    meta = tmp_path / "0shot.meta.json"
    meta.write_text('{"system": "m", "rows_file": {"rows": 3')  # cut short
    with pytest.raises(DataError) as info:
        read_record(meta)
    assert str(info.value).startswith(f"{meta}: is not valid JSON (")
    assert f"--forcerun {meta}`" in str(info.value)

    raw = tmp_path / "raw"
    (raw / "files").mkdir(parents=True)
    (raw / "files/000-a.csv").write_text("text,label\nhi,yes\n")
    (raw / "manifest.json").write_text(json.dumps({"files": [{"path": "files/000-a.csv",
                                                               **digest(raw / "files/000-a.csv")}]}))
    verify_raw(raw)
    (raw / "files/000-a.csv").write_text("text,label\nhi,no\n")
    with pytest.raises(DataError, match=f"(?s)changed after it was written .*Fix: write it again with rule raw_fetch: "
                                        f"add `--forcerun {raw}`"):
        verify_raw(raw)
    (raw / "files/000-a.csv").unlink()
    with pytest.raises(DataError, match="is missing, but .*manifest.json records it"):
        verify_raw(raw)
    verify_rows(raw / "gone.jsonl", {"rows": 3}, rule="r", recorded_in="m")  # no sha256 (older): accepted
    verify_rows(raw / "gone.jsonl", None, rule="r", recorded_in="m")


# --- upstream data changed -----------------------------------------------------------------------

def test_an_edited_local_data_file_reruns_exactly_its_tasks_chain_even_with_its_mtime_kept(project, tmp_path):
    assert dry_run_outputs(project, *TARGETS) == []  # nothing changed: nothing to do
    path = project / "data_in/alpha.jsonl"
    stat = path.stat()
    path.write_text(path.read_text().replace("about refund", "about a refund"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or a checkout keeps it
    outputs = dry_run_outputs(project, *TARGETS)
    assert "data/raw/alpha" in outputs and score("alpha") in outputs and rows("alpha") in outputs
    assert "data/prepared/alpha/test.jsonl" in outputs
    assert [o for o in outputs if "beta" in o] == []

    before = files(project, RESULTS, "data")
    proc = snakemake(project, *TARGETS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    after = files(project, RESULTS, "data")
    assert {k: v for k, v in after.items() if "beta" in k} == {k: v for k, v in before.items() if "beta" in k}
    assert "a refund" in (project / "data/prepared/alpha/train.jsonl").read_text()

    edited = tmp_path / "beta.jsonl"  # cp -p of another version onto the task's file
    write_rows(edited, "beta", note=" (v2)")
    shutil.copy2(edited, project / "data_in/beta.jsonl")
    outputs = dry_run_outputs(project, *TARGETS)
    assert "data/raw/beta" in outputs and score("beta") in outputs
    assert [o for o in outputs if "alpha" in o] == []


def test_an_edited_local_benchmark_file_reruns_its_benchmark_even_with_its_mtime_kept(project, tmp_path):
    """A local benchmark's JSONL is an input (its mtime) and, by content, part of the run's params.
    The run is recorded with `--touch` (Snakemake keeps its params, no lm-eval runs)."""
    write_yaml(project / "configs/benchmarks/mybench.yaml", {
        "name": "mybench", "kind": "local", "path": "data_in/bench.jsonl", "output_type": "generate_until",
        "fields": {"input": "text", "target": "label"}, "max_gen_toks": 8})
    bench = project / "data_in/bench.jsonl"
    bench.write_text('{"text": "say yes", "label": "yes"}\n{"text": "say no", "label": "no"}\n')
    config = yaml.safe_load((project / "configs/config.yaml").read_text())
    config["benchmarks"].append("mybench")
    config["suites"]["mine"]["benchmarks"] = ["mybench"]
    write_yaml(project / "configs/config.yaml", config)
    run_dir = f"{RESULTS}/lm_eval/tiny/mybench"
    (project / run_dir).mkdir(parents=True)
    proc = snakemake(project, "--touch", run_dir, "--forcerun", "lm_eval_run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert dry_run_outputs(project, run_dir, *TARGETS) == []

    other = tmp_path / "bench.jsonl"  # another version, copied with `cp -p` (an older mtime)
    other.write_text('{"text": "say yes", "label": "YES"}\n{"text": "say no", "label": "no"}\n')
    os.utime(other, ns=(bench.stat().st_atime_ns, bench.stat().st_mtime_ns - 10**9))
    shutil.copy2(other, bench)
    assert dry_run_outputs(project, run_dir, *TARGETS) == [run_dir]
