"""The checked project, cached by the content of every file its load read.

Every `snakemake` process parses the Snakefile, and loading the project (YAML of the config, tasks,
models, benchmarks and prompts; their JSON schemas; the rows of local data) was most of that parse.
`load_project_cached` keeps the loaded Project in `.snakemake/tunebench/project/<key>.pickle`, where
the key hashes the merged config as Snakemake passed it, the project root and the Python version; the
entry lists the sha256 of every file the load opened and the names in every folder it listed (both
recorded with an audit hook while it ran: no list to keep in step with the loader), and of
tunebench's own source. A later load uses the entry only when all of them are unchanged, so editing a
task, a prompt, a schema, a local data file or tunebench itself reloads and checks everything.
Python's own files (the standard library, site-packages' modules) are left out: a package upgrade
that changes what a load accepts is rare, and `rm -r .snakemake/tunebench` clears the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import sysconfig
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunebench.core.atomic import atomic_path
from tunebench.core.integrity import sha256_of
from tunebench.core.spec import Project

CACHE_DIR = Path(".snakemake") / "tunebench" / "project"
FORMAT = 1  # bump when an entry's layout changes
PACKAGE = Path(__file__).resolve().parents[1]  # src/tunebench (or site-packages/tunebench)
# what the runtime itself opens (imports, metadata): not the project's input
_RUNTIME = tuple(sorted({os.path.realpath(p) + os.sep for p in (
    sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()) if p}))
_recorders: list[tuple[set[str], set[str]]] = []


def _audit(event: str, args: tuple) -> None:
    if not _recorders:
        return
    if event == "open":
        path, mode = args[0], args[1]
        if isinstance(path, (str, bytes, os.PathLike)) and (mode is None or "r" in str(mode)):
            for files, _dirs in _recorders:
                files.add(os.fsdecode(path))
    elif event in ("os.scandir", "os.listdir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        for _files, dirs in _recorders:
            dirs.add(os.fsdecode(args[0]))


_hooked = False


@contextmanager
def recording() -> Iterator[tuple[set[str], set[str]]]:
    """(files opened for reading, folders listed) while the block runs, in this thread and others."""
    global _hooked
    if not _hooked:  # an audit hook stays for the process's life: one, idle outside a recording
        sys.addaudithook(_audit)
        _hooked = True
    seen: tuple[set[str], set[str]] = (set(), set())
    _recorders.append(seen)
    try:
        yield seen
    finally:
        _recorders.remove(seen)


def _sha256(path: str) -> str | None:
    try:
        return sha256_of(path)
    except OSError:
        return None  # gone, or a folder: an entry that listed it as readable no longer matches


def _listing(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def _own_files(paths: set[str]) -> list[str]:
    out = set()
    for p in paths:
        full = os.path.realpath(p)
        if full.startswith(_RUNTIME) or "__pycache__" in full or not os.path.isfile(full):
            continue
        out.add(full)
    return sorted(out)


def _package_sources() -> list[str]:
    return sorted(str(p) for p in PACKAGE.rglob("*.py"))


def cache_key(root: Path, config: dict, config_file: str) -> str:
    blob = json.dumps({"format": FORMAT, "python": sys.version, "root": str(root), "config_file": config_file,
                       "config": config}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fresh(entry: dict) -> bool:
    return (all(_sha256(f) == h for f, h in entry["files"].items())
            and all(_listing(d) == names for d, names in entry["dirs"].items()))


def _default_load() -> Callable[[Path, dict, str], Project]:
    from tunebench.config.loader import load_project

    return load_project


def load_project_cached(root: str | Path, config: dict, config_file: str,
                        load: Callable[[Path, dict, str], Project] | None = None,
                        cache_dir: str | Path | None = None) -> Project:
    """`load(root, config, config_file)` (tunebench.config.loader.load_project, imported only on a miss:
    its imports are a good part of the time it saves), or the Project it returned for the same config
    when no file it read has changed since. `config` is updated in place as the load updates it (defaults filled,
    the suite's grid in place), either way."""
    root = Path(root).resolve()
    folder = Path(cache_dir) if cache_dir is not None else root / CACHE_DIR
    path = folder / f"{cache_key(root, config, config_file)}.pickle"
    entry: Any = None
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh)
        if not (isinstance(entry, dict) and entry.get("format") == FORMAT and _fresh(entry)):
            entry = None
    except Exception:  # no entry, or one another version wrote: load afresh
        entry = None
    if entry is not None:
        project: Project = entry["project"]
        config.clear()
        config.update(project.config)
        project.config = config  # the workflow's own dict, as a fresh load leaves it
        return project

    with recording() as (opened, listed):
        project = (load or _default_load())(root, config, config_file)
    files = _own_files(opened) + _package_sources()
    dirs = sorted({os.path.realpath(d) for d in listed if not os.path.realpath(d).startswith(_RUNTIME)})
    entry = {"format": FORMAT, "files": {f: _sha256(f) for f in files}, "dirs": {d: _listing(d) for d in dirs},
             "project": project}
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass  # a read-only checkout still runs, uncached
    return project
