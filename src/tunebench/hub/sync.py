"""Hub sync: a suite's artifacts to and from a Hugging Face Hub repo, so that an ephemeral host loses
nothing and a new host reruns nothing that already exists.

What travels: the suite's prepared data (data/prepared/<task>/) and its whole results folder
(adapters, predictions, lm-eval runs, scores, comparisons, summaries, plots, site, logs), minus
training checkpoints, lm-eval resume caches, merged models and other suites' folders; and each base
model's folder without its weights (manifest, config, tokenizer). A job on the new host that needs
the weights rebuilds them from the manifest's source (models.ensure_weights) without touching the
folder's Snakemake timestamp: otherwise the first new job would rebuild the model folder and, with
it, every prediction made from it.

The repo mirrors the project's layout, plus `tunebench-sync/<suite>.json`: every file's sha256 and
size, and Snakemake's own metadata records of those outputs (params, code, input lists, software
env), so that on the new host a changed param or script still reruns exactly what it should.

Pull writes nothing until every file is downloaded and checked against its sha256, never replaces
a finished local output that differs (it reports it and keeps it), and then gives every pulled
file one new modification time, later than the checkout's scripts and configs: inputs and outputs
share it, so no output looks older than what it was made from.

The token is read from the environment only (HF_TOKEN) and handed to huggingface_hub; it is never
written anywhere. Offline (HF_HUB_OFFLINE=1, or the Hub cannot be reached) sync is skipped with a
message, and nothing else in the workflow depends on it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tunebench.core.errors import TunebenchError

log = logging.getLogger(__name__)

MANIFEST_DIR = "tunebench-sync"
FORMAT = 1
TIMESTAMP = ".snakemake_timestamp"  # Snakemake's mtime carrier inside directory outputs
NOT_SYNCED = ("merged",)  # top-level folders of a results dir that are rebuilt, never synced


class HubSkip(Exception):
    """Sync cannot or must not happen here (off, a suite that never syncs, offline): say why, exit 0."""


@dataclass
class HubSettings:
    repo: str | None = None
    repo_type: str = "dataset"
    private: bool = True
    revision: str = "main"
    endpoint: str | None = None
    suites: list[str] = field(default_factory=lambda: ["demo", "quick", "core", "full"])
    push_on_success: bool = False

    @classmethod
    def from_config(cls, config: dict) -> HubSettings:
        return cls(**{k: v for k, v in (config.get("hub") or {}).items() if k in cls.__dataclass_fields__})

    def check(self, suite: str, config_file: str) -> None:
        if not self.repo:
            raise HubSkip(f"hub sync is off: no `hub.repo` in {config_file} (set it, e.g. your-org/tunebench-results)")
        if suite not in self.suites:
            raise HubSkip(f"suite {suite!r} never syncs (hub.suites: {', '.join(self.suites) or 'none'}): "
                          "its results stay on this host")
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise HubSkip("offline (HF_HUB_OFFLINE=1): nothing synced; run it again when the Hub can be reached")

    @property
    def url(self) -> str:
        from huggingface_hub import constants

        prefix = {"dataset": "datasets/", "model": ""}[self.repo_type]
        return f"{self.endpoint or constants.ENDPOINT}/{prefix}{self.repo}"


def env_token() -> str | None:
    """The Hub token, from the environment only (never huggingface_hub's stored login)."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def manifest_path(suite: str) -> str:
    return f"{MANIFEST_DIR}/{suite}.json"


# -- what travels -------------------------------------------------------------------------------
def model_roots(project) -> list[str]:
    return sorted(d for d in map(project.model_dir, project.models) if d)


def sync_roots(project) -> list[str]:
    return [f"data/prepared/{task}" for task in sorted(project.tasks)] + model_roots(project) + [project.results_dir]


def _excluded_dirs(project) -> set[str]:
    """Other suites' results folders nested inside this one, and folders that are rebuilt."""
    own = project.results_dir
    nested = {s["results_dir"].rstrip("/") for s in project.config["suites"].values()}
    return {d for d in nested if d != own and d.startswith(own + "/")} | {f"{own}/{d}" for d in NOT_SYNCED}


def _hidden(rel: PurePosixPath) -> bool:
    """Work folders (.work, .resume), temporary files of atomic writes: everything hidden except
    Snakemake's timestamp file of a directory output."""
    return any(part.startswith(".") for part in rel.parts[:-1]) or (
        rel.name.startswith(".") and rel.name != TIMESTAMP)


def sync_files(root: Path, project) -> list[str]:
    from tunebench.data.models import is_weight_file

    excluded = _excluded_dirs(project)
    models = model_roots(project)
    files = []
    for top in sync_roots(project):
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


def _owners(path: str) -> list[str]:
    """The path and every folder above it: the candidate output keys a file belongs to."""
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _persistence(root: Path):
    """Snakemake's own metadata store (.snakemake/metadata), read and written through its API."""
    from snakemake.persistence.file import FilePersistence

    return FilePersistence(nolock=True, path=root / ".snakemake")


def _units(files: list[str], keys: set[str]) -> dict[str, list[str]]:
    """Files grouped by the output they belong to: a directory output (it has a Snakemake record, or
    a timestamp file) is one unit; any other file is its own."""
    dirs = {PurePosixPath(f).parent.as_posix() for f in files if PurePosixPath(f).name == TIMESTAMP}
    dirs |= {k for k in keys if any(f.startswith(k + "/") for f in files)}
    units: dict[str, list[str]] = {}
    for f in files:
        owner = next((o for o in _owners(f)[1:] if o in dirs), f)
        units.setdefault(owner, []).append(f)
    return units


# -- the manifest -------------------------------------------------------------------------------
def build_manifest(root: Path, project, files: list[str], progress: bool = True) -> dict:
    from tqdm import tqdm

    from tunebench import __version__
    from tunebench.data.sources import sha256_file

    persistence = _persistence(root)
    incomplete = persistence._filter_incomplete_keys({o for f in files for o in _owners(f)})
    entries, records = {}, {}
    for f in tqdm(files, desc="hashing", unit="file", disable=not progress):
        if incomplete.intersection(_owners(f)):
            continue  # an output Snakemake is still writing (or that a killed job left): not a result
        entries[f] = {"sha256": sha256_file(root / f), "size": (root / f).stat().st_size}
        for key in _owners(f):
            if key not in records and (record := persistence._read_record(key)) is not None:
                records[key] = json.loads(record.model_dump_json())
    return {
        "format": FORMAT,
        "suite": project.suite_name,
        "results_dir": project.results_dir,
        "tunebench": __version__,
        "config_fingerprint": project.fingerprint(),
        "pushed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "files": entries,
        "snakemake_metadata": records,
    }


def _same_content(a: dict | None, b: dict) -> bool:
    return a is not None and a.get("files") == b["files"] and a.get("snakemake_metadata") == b["snakemake_metadata"]


def check_manifest(doc, project, where: str) -> dict:
    """A pulled manifest decides where files are written: every path must stay inside the suite's
    own folders."""
    roots = sync_roots(project)
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


# -- talking to the Hub -------------------------------------------------------------------------
def _connection_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        import httpx2 as http  # huggingface_hub 2.x's HTTP client
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx as http
    # hf_xet (the Hub's Xet uploads and downloads) raises Python's own ConnectionError
    return OfflineModeIsEnabled, http.ConnectError, http.ConnectTimeout, ConnectionError


def _hub_error(exc, settings: HubSettings, doing: str, config_file: str) -> TunebenchError:
    """One clear message for an HTTP error of the Hub."""
    from huggingface_hub.errors import RepositoryNotFoundError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return TunebenchError(f"{doing}: the Hub has no repo {settings.repo} ({settings.repo_type}), or the "
                              "token cannot see it", file=config_file, field="hub.repo",
                              fix="check hub.repo and hub.repo_type; for a private repo export HF_TOKEN")
    if status in (401, 403):
        return TunebenchError(f"{doing}: the Hub refused the token from HF_TOKEN ({status})", file=config_file,
                              field="hub.repo", fix="export HF_TOKEN with write access to that repo")
    return TunebenchError(f"{doing}: the Hub answered {status}: {str(exc).splitlines()[0]}",
                          file=config_file, field="hub.repo", fix="try again; nothing was changed")


def _fetch_manifest(settings: HubSettings, token, suite: str, staging: Path) -> tuple[dict | None, str | None]:
    """The suite's manifest at the head of hub.revision, and the commit it was read at."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    name = manifest_path(suite)
    try:
        url = hf_hub_url(settings.repo, name, repo_type=settings.repo_type, revision=settings.revision,
                         endpoint=settings.endpoint)
        commit = get_hf_file_metadata(url, token=token).commit_hash
        path = hf_hub_download(settings.repo, name, repo_type=settings.repo_type, revision=commit,
                               local_dir=staging / "manifest", token=token, endpoint=settings.endpoint)
    except (EntryNotFoundError, RevisionNotFoundError):  # nothing pushed yet
        return None, None
    return json.loads(Path(path).read_text()), commit


@dataclass
class PushReport:
    repo: str
    commit: str | None
    files: int
    uploaded: int
    bytes_uploaded: int


def push(root: Path, project, settings: HubSettings | None = None, progress: bool = True) -> PushReport:
    """Upload the suite's artifacts; only files whose content changed since the last push travel."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(root)
    settings = settings or HubSettings.from_config(project.config)
    settings.check(project.suite_name, project.config_file)
    token = env_token()
    if token is None:
        raise TunebenchError("pushing needs a Hub token in the environment", field="HF_TOKEN",
                             fix="export HF_TOKEN=hf_... (a token with write access; tunebench never stores it)")
    files = sync_files(root, project)
    if not files:
        raise TunebenchError(f"nothing to push: {project.results_dir}/ has no results yet",
                             fix=f"run the workflow first (snakemake --cores 2 {project.results_dir}/summary.json)")
    manifest = build_manifest(root, project, files, progress=progress)
    api = HfApi(endpoint=settings.endpoint, token=token)
    staging = Path(tempfile.mkdtemp(prefix="tunebench-hub-"))
    try:
        try:
            api.create_repo(settings.repo, repo_type=settings.repo_type, private=settings.private, exist_ok=True)
            previous, _ = _fetch_manifest(settings, token, project.suite_name, staging)
            changed = [f for f, e in manifest["files"].items()
                       if ((previous or {}).get("files") or {}).get(f, {}).get("sha256") != e["sha256"]]
            if not changed and _same_content(previous, manifest):
                log.info("hub: %s already holds these %d files; nothing to push", settings.url, len(files))
                return PushReport(settings.repo, None, len(manifest["files"]), 0, 0)
            if previous:
                gone = sorted(set(previous["files"]) - set(manifest["files"]))
                if gone:
                    log.warning("hub: %d files of the last push are not here (%s...); they stay in the repo's "
                                "history but leave the manifest. Pull before you push to keep them together.",
                                len(gone), gone[0])
            ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(root / f)) for f in changed]
            ops.append(CommitOperationAdd(path_in_repo=manifest_path(project.suite_name),
                                          path_or_fileobj=json.dumps(manifest, indent=1, sort_keys=True).encode()))
            info = api.create_commit(settings.repo, ops, repo_type=settings.repo_type, revision=settings.revision,
                                     commit_message=f"tunebench: {project.suite_name} suite, {len(changed)} "
                                                    f"changed of {len(manifest['files'])} files")
        except _connection_errors() as exc:
            raise HubSkip(f"cannot reach {settings.url} ({type(exc).__name__}): nothing pushed; run it again "
                          "when the Hub can be reached") from exc
        except HfHubHTTPError as exc:
            raise _hub_error(exc, settings, "push", project.config_file) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(manifest["files"][f]["size"] for f in changed)
    log.info("hub: pushed %d changed of %d files (%.1f MB) to %s at %s", len(changed), len(manifest["files"]),
             size / 1e6, settings.url, info.oid[:12])
    return PushReport(settings.repo, info.oid, len(manifest["files"]), len(changed), size)


@dataclass
class PullReport:
    repo: str
    commit: str | None
    downloaded: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # finished local outputs that differ: never replaced


def pull(root: Path, project, settings: HubSettings | None = None, progress: bool = True,
         workers: int = 8) -> PullReport:
    """Download the suite's artifacts so that Snakemake sees them as up to date."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import disable_progress_bars
    from tqdm import tqdm

    from tunebench.data.sources import sha256_file

    root = Path(root)
    settings = settings or HubSettings.from_config(project.config)
    settings.check(project.suite_name, project.config_file)
    token = env_token() or False  # False: send no token at all (a public repo), never a stored login
    disable_progress_bars()  # one bar for the whole pull instead of one per file
    staging_root = root / ".snakemake" / "tunebench-hub"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="pull-", dir=staging_root))
    try:
        try:
            manifest, commit = _fetch_manifest(settings, token, project.suite_name, staging)
            if manifest is None:
                raise TunebenchError(f"{settings.url} holds no {project.suite_name!r} suite "
                                     f"({manifest_path(project.suite_name)} is missing)", file=project.config_file,
                                     field="hub.repo", fix="push it first from the host that ran it: "
                                     f"snakemake --cores 1 hub_push --config suite={project.suite_name}")
            where = f"{settings.url}/{manifest_path(project.suite_name)}"
            check_manifest(manifest, project, where)
            persistence = _persistence(root)
            report = PullReport(settings.repo, commit)
            wanted: list[str] = []
            units = _units(list(manifest["files"]), set(manifest.get("snakemake_metadata") or {}))
            incomplete = persistence._filter_incomplete_keys(units)
            for unit, files in sorted(units.items()):
                local = [f for f in files if (root / f).is_file()]
                if not local or unit in incomplete:
                    wanted += files  # absent, or left half-written by a killed job
                elif all(sha256_file(root / f) == manifest["files"][f]["sha256"] for f in files
                         if (root / f).is_file()) and len(local) == len(files):
                    report.same.append(unit)
                else:
                    report.kept.append(unit)

            def fetch(path: str) -> str:
                got = hf_hub_download(settings.repo, path, repo_type=settings.repo_type, revision=commit,
                                      local_dir=staging / "files", token=token, endpoint=settings.endpoint)
                if sha256_file(Path(got)) != manifest["files"][path]["sha256"]:
                    raise TunebenchError(f"{path} arrived with another sha256 than {where} records",
                                         field=f"files.{path}", fix="pull again; nothing was written")
                return path

            with ThreadPoolExecutor(max_workers=workers) as pool:
                for path in tqdm(pool.map(fetch, wanted), total=len(wanted), desc="pulling", unit="file",
                                 disable=not progress):
                    report.downloaded.append(path)
        except _connection_errors() as exc:
            raise HubSkip(f"cannot reach {settings.url} ({type(exc).__name__}): nothing pulled") from exc
        except HfHubHTTPError as exc:
            raise _hub_error(exc, settings, "pull", project.config_file) from exc
        _install(root, staging / "files", manifest, report, persistence, units)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("hub: pulled %d files from %s at %s; %d outputs already here; %d kept (they differ: yours stay)",
             len(report.downloaded), settings.url, (commit or "")[:12], len(report.same), len(report.kept))
    for unit in report.kept:
        log.warning("hub: kept your %s (it differs from the pushed one; remove it and pull again to take the Hub's)",
                    unit)
    return report


def _install(root: Path, staged: Path, manifest: dict, report: PullReport, persistence, units) -> None:
    """Move the checked files into place, then date them and write Snakemake's records."""
    records = manifest.get("snakemake_metadata") or {}
    taken = {u for u, files in units.items() if set(files) <= set(report.downloaded)}
    for unit in taken:  # a directory output is replaced whole (a half-written one goes)
        if (root / unit).is_dir():
            shutil.rmtree(root / unit)
    for path in report.downloaded:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / path, root / path)
    # One time for every synced file, later than the checkout (scripts, configs, prompts): no output
    # is older than its inputs or its script, and equal times never trigger a rerun.
    now = time.time_ns()
    fresh = [u for u in units if u in taken or u in report.same]
    for unit in fresh:
        for path in units[unit]:
            os.utime(root / path, ns=(now, now))
        if (root / unit).is_dir():
            for dirpath, _, _ in os.walk(root / unit, topdown=False):
                os.utime(dirpath, ns=(now, now))
    from snakemake.persistence import MetadataRecord

    for key, record in records.items():
        owner = next((u for u in _owners(key) if u in units), key)
        if owner in taken or (owner in report.same and persistence._read_record(key) is None):
            record = MetadataRecord.model_validate(record)
            persistence._write_record(key, record)
            persistence._unmark_incomplete(key)
