"""What a suite's sync carries, and its manifest `tunebench-sync/<suite>.json`: every file's sha256
and size, and Snakemake's metadata records of those outputs (params, code, input lists, software
env), so that on the new host a changed param or script still reruns exactly what it should.

What travels: the suite's prepared data (data/prepared/<task>/) and its whole results folder
(adapters, predictions, lm-eval runs, scores, comparisons, summaries, plots, site, logs), minus
training checkpoints, lm-eval resume caches, merged models and other suites' folders; and each base
model's folder without its weights (manifest, config, tokenizer). A job on the new host that needs
the weights rebuilds them from the manifest's source (models.ensure_weights) without touching the
folder's Snakemake timestamp: otherwise the first new job would rebuild the model folder and, with
it, every prediction made from it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path, PurePosixPath

from tunebench.core.errors import TunebenchError
from tunebench.hub.scope import SyncScope
from tunebench.hub.snakemake_records import SnakemakeRecords

MANIFEST_DIR = "tunebench-sync"
FORMAT = 1
TIMESTAMP = ".snakemake_timestamp"  # Snakemake's mtime carrier inside directory outputs


def manifest_path(suite: str) -> str:
    return f"{MANIFEST_DIR}/{suite}.json"


# -- what travels -------------------------------------------------------------------------------
def _hidden(rel: PurePosixPath) -> bool:
    """Work folders (.work, .resume), temporary files of atomic writes: everything hidden except
    Snakemake's timestamp file of a directory output."""
    return any(part.startswith(".") for part in rel.parts[:-1]) or (
        rel.name.startswith(".") and rel.name != TIMESTAMP)


def sync_files(root: Path, scope: SyncScope) -> list[str]:
    from tunebench.data.models import is_weight_file

    excluded = scope.excluded_dirs()
    models = scope.model_dirs
    files = []
    for top in scope.roots():
        if not (root / top).is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root / top):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            dirnames[:] = sorted(d for d in dirnames if f"{rel_dir}/{d}" not in excluded)
            for name in sorted(filenames):
                rel = PurePosixPath(rel_dir, name)
                if top in models and is_weight_file(name):
                    continue  # rebuilt from its source by the first job that needs it (models.ensure_weights)
                if not _hidden(rel):
                    files.append(rel.as_posix())
    return files


def owners(path: str) -> list[str]:
    """The path and every folder above it: the candidate output keys a file belongs to."""
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def output_units(files: list[str], keys: set[str]) -> dict[str, list[str]]:
    """Files grouped by the output they belong to: a directory output (it has a Snakemake record, or
    a timestamp file) is one unit; any other file is its own."""
    dirs = {PurePosixPath(f).parent.as_posix() for f in files if PurePosixPath(f).name == TIMESTAMP}
    dirs |= {k for k in keys if any(f.startswith(k + "/") for f in files)}
    grouped: dict[str, list[str]] = {}
    for f in files:
        owner = next((o for o in owners(f)[1:] if o in dirs), f)
        grouped.setdefault(owner, []).append(f)
    return grouped


# -- the manifest -------------------------------------------------------------------------------
def build_manifest(root: Path, scope: SyncScope, files: list[str], progress: bool = True) -> dict:
    from tqdm import tqdm

    from tunebench import __version__
    from tunebench.data.sources import sha256_file

    records_store = SnakemakeRecords(root)
    incomplete = records_store.incomplete({o for f in files for o in owners(f)})
    entries, records = {}, {}
    for f in tqdm(files, desc="hashing", unit="file", disable=not progress):
        if incomplete.intersection(owners(f)):
            continue  # an output Snakemake is still writing (or that a killed job left): not a result
        entries[f] = {"sha256": sha256_file(root / f), "size": (root / f).stat().st_size}
        for key in owners(f):
            if key not in records and (record := records_store.read(key)) is not None:
                records[key] = record
    return {
        "format": FORMAT,
        "suite": scope.suite,
        "results_dir": scope.results_dir,
        "tunebench": __version__,
        "config_fingerprint": scope.fingerprint,
        "pushed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "files": entries,
        "snakemake_metadata": records,
    }


def same_content(a: dict | None, b: dict) -> bool:
    return a is not None and a.get("files") == b["files"] and a.get("snakemake_metadata") == b["snakemake_metadata"]


def check_manifest(doc, scope: SyncScope, where: str) -> dict:
    """A pulled manifest decides where files are written: every path must stay inside the suite's
    own folders."""
    roots = scope.roots()
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        raise TunebenchError("not a tunebench sync manifest of a known format", file=where, field="format",
                             fix="push again from the host that ran the suite, with this tunebench version")
    for path in list(doc["files"]) + list(doc.get("snakemake_metadata") or {}):
        parts = PurePosixPath(path).parts
        inside = any(path == r or path.startswith(r + "/") for r in roots)
        if PurePosixPath(path).is_absolute() or ".." in parts or not inside:
            raise TunebenchError(f"path {path!r} is outside this suite's folders ({', '.join(roots)})",
                                 file=where, field="files",
                                 fix="the manifest was not written by tunebench for this suite; do not pull it")
    return doc
