"""The hub sync's adapter over Snakemake's metadata records (tunebench.hub.snakemake_records): pins the
Snakemake versions it was checked against, and shows that a record written through it is one
Snakemake itself reads to decide a rerun."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from tunebench.core.errors import TunebenchError
from tunebench.hub import snakemake_records
from tunebench.hub.snakemake_records import CHECKED_FROM, CHECKED_RANGE, SnakemakeRecords, check_version

SNAKEFILE = """
rule make:
    output: "out/a.txt"
    params: size={size}
    shell: "echo {{params.size}} > {{output}}"

# Kills its own Snakemake (the job's shell is its child), as a lost host would: the outputs stay
# marked incomplete.
rule killed:
    output: "out/b.txt", "out/c.txt"
    shell: "touch {{output}}; kill -9 $PPID"
"""


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def workdir(path: Path, size: int = 1) -> Path:
    path.mkdir(parents=True)
    (path / "Snakefile").write_text(SNAKEFILE.format(size=size))
    return path


def test_the_installed_snakemake_is_one_the_adapter_was_checked_against():
    version = check_version()
    assert version == Version(snakemake_records.installed_version())
    assert CHECKED_FROM <= version, CHECKED_RANGE


def test_the_package_pins_snakemake_to_the_checked_range():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"snakemake\b", d)]
    assert pins == ["snakemake>=9.17,<9.28"] and CHECKED_RANGE == ">=9.17.0,<9.28", (pins, CHECKED_RANGE)


def test_a_record_round_trips_through_a_real_snakemake_metadata_folder(tmp_path):
    src = workdir(tmp_path / "src")
    done = snakemake(src, "out/a.txt")
    assert done.returncode == 0, done.stderr

    record = SnakemakeRecords(src).read("out/a.txt")
    assert record is not None and record["rule"] == "make" and record["params"] == ["1"]
    assert SnakemakeRecords(src).read("out/never-made.txt") is None

    # another host: the output and its record arrive, with a Snakefile whose param since changed
    dst = workdir(tmp_path / "dst", size=2)
    (dst / "out").mkdir()
    shutil.copy2(src / "out/a.txt", dst / "out/a.txt")
    SnakemakeRecords(dst).write("out/a.txt", record)
    assert SnakemakeRecords(dst).read("out/a.txt") == record

    plan = snakemake(dst, "-n", "out/a.txt")
    assert plan.returncode == 0, plan.stderr
    assert re.search(r"reason: .*Params have changed", plan.stdout + plan.stderr), plan.stdout
    (dst / "Snakefile").write_text(SNAKEFILE.format(size=1))
    plan = snakemake(dst, "-n", "out/a.txt")
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout


def test_a_killed_jobs_outputs_are_incomplete_until_a_record_is_written(tmp_path):
    src = workdir(tmp_path / "src")
    snakemake(src, "out/b.txt")  # killed, by design
    assert (src / "out/b.txt").is_file()
    records = SnakemakeRecords(src)
    assert records.is_incomplete("out/b.txt")
    assert records.incomplete(["out/a.txt", "out/b.txt", "out/c.txt"]) == {"out/b.txt", "out/c.txt"}

    records.write("out/b.txt", {"rule": "killed", "params": []})
    records.unmark_incomplete("out/c.txt")
    assert SnakemakeRecords(src).incomplete(["out/b.txt", "out/c.txt"]) == set()
    assert (SnakemakeRecords(src).read("out/b.txt") or {}).get("rule") == "killed"
    plan = snakemake(src, "-n", "out/b.txt")
    assert "Nothing to be done" in plan.stdout + plan.stderr, plan.stdout  # Snakemake agrees: not incomplete


@pytest.mark.parametrize("reported", ["9.16.3", "9.28.0rc1", "10.0.0", "8.30.0"])
def test_a_snakemake_outside_the_checked_range_is_one_clear_error(monkeypatch, tmp_path, reported):
    monkeypatch.setattr(snakemake_records, "installed_version", lambda: reported)
    with pytest.raises(TunebenchError) as caught:
        SnakemakeRecords(tmp_path)
    message = str(caught.value)
    assert f"snakemake {reported} is installed" in message
    assert CHECKED_RANGE in message
    assert f"Fix: pip install 'snakemake{CHECKED_RANGE}'" in message
    assert not (tmp_path / ".snakemake").exists()  # refused before touching anything


def test_only_the_adapter_touches_snakemake_internals():
    hub = Path(snakemake_records.__file__).parent
    for module in hub.glob("*.py"):
        if module.name != "snakemake_records.py":
            text = module.read_text()
            assert not re.search(r"\bsnakemake\.|FilePersistence|MetadataRecord|\._\w+_record\b", text), module
