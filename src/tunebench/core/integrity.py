"""Outputs checked where they are read: a writer records the row count and sha256 of a rows file in
its meta or manifest (`digest`), a reader compares the file on disk with that record (`verify_rows`)
before using it. A predictions file truncated or edited by hand after the run then stops the job that
reads it with one message naming the file and the command that writes it again, instead of being
scored as if it were whole. A record without a digest (written before digests existed) is accepted."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tunebench.core.errors import DataError


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def count_rows(path: str | os.PathLike) -> int:
    """Non-blank lines, as read_jsonl reads them."""
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def digest(path: str | os.PathLike) -> dict:
    """What a writer records about a rows file it has just written."""
    return {"rows": count_rows(path), "sha256": sha256_of(path)}


def rerun_fix(output: str | os.PathLike, rule: str | None = None) -> str:
    """Snakemake's way to write one output again (and then what reads it): `--forcerun <output>`."""
    by = f" with rule {rule}" if rule else ""
    return (f"write it again{by}: add `--forcerun {output}` at the end of the snakemake command you ran "
            f"(e.g. snakemake --cores 1 --forcerun {output}); what reads it reruns after it")


def verify_rows(path: str | os.PathLike, record: dict | None, *, rule: str, recorded_in: str | os.PathLike,
                output: str | os.PathLike | None = None) -> None:
    """A DataError when the file at `path` is not the one `record` ({rows, sha256}, as `digest`
    writes it) describes. A record without sha256 (an older run) passes unchecked. `output`: the
    rule's output to write again, when not `path` itself (a folder)."""
    if not isinstance(record, dict) or not record.get("sha256"):
        return
    fix = rerun_fix(output or path, rule)
    if not Path(path).is_file():
        raise DataError(f"is missing, but {recorded_in} records it", file=str(path), fix=fix)
    sha = sha256_of(path)
    if sha == record["sha256"]:
        return
    then = record.get("rows")
    rows = ""
    if then is not None:
        now = count_rows(path)
        rows = f"{_rows(now)} now, {then} when written; " if then != now else f"{_rows(now)}; "
    raise DataError(f"changed after it was written ({rows}sha256 {sha[:12]}… is not the {record['sha256'][:12]}… "
                    f"recorded in {recorded_in}): it was truncated or edited, so it is not used",
                    file=str(path), fix=fix)


def read_record(path: str | os.PathLike) -> dict:
    """A meta or manifest file as JSON; a DataError naming it when it is not readable JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"is not valid JSON ({err}): it was truncated or edited", file=str(path),
                        fix=rerun_fix(path)) from None
    if not isinstance(doc, dict):
        raise DataError("is not a JSON object: it was edited", file=str(path), fix=rerun_fix(path))
    return doc


def verify_split(path: str | os.PathLike, manifest_path: str | os.PathLike, split: str) -> None:
    """A prepared split against the `splits.<split>` entry of its manifest (rule split_prepare)."""
    manifest = read_record(manifest_path)
    verify_rows(path, (manifest.get("splits") or {}).get(split), rule="split_prepare", recorded_in=manifest_path)


def verify_raw(raw_dir: str | os.PathLike, manifest_name: str = "manifest.json") -> None:
    """A raw folder's files against the sha256 its manifest lists for each (rule raw_fetch)."""
    manifest_path = Path(raw_dir) / manifest_name
    if not manifest_path.is_file():
        return
    for entry in read_record(manifest_path).get("files") or []:
        if isinstance(entry, dict) and entry.get("path"):
            verify_rows(Path(raw_dir) / entry["path"], {"sha256": entry.get("sha256")}, rule="raw_fetch",
                        recorded_in=manifest_path, output=raw_dir)
