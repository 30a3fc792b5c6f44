"""Hub sync: a suite's artifacts to and from a Hugging Face Hub repo, so that an ephemeral host loses
nothing and a new host reruns nothing that already exists.

The repo mirrors the project's layout, plus the suite's manifest (hub/manifest.py says what travels
and what the manifest holds). Snakemake's records of the outputs travel in it and are written back
through hub/snakemake_records.py, the one place that knows Snakemake's internals.

Pull writes nothing until every file is downloaded and checked against its sha256, never replaces
a finished local output that differs (it reports it and keeps it), and then gives every pulled
file one new modification time, later than the checkout's scripts and configs: inputs and outputs
share it, so no output looks older than what it was made from.

The token is read from the environment only (HF_TOKEN) and handed to huggingface_hub; it is never
written anywhere. Offline (HF_HUB_OFFLINE=1, or the Hub cannot be reached) sync is skipped with a
message, and nothing else in the workflow depends on it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tunebench.core.errors import TunebenchError
from tunebench.hub.manifest import (
    build_manifest,
    check_manifest,
    manifest_path,
    output_units,
    owners,
    same_content,
    sync_files,
)
from tunebench.hub.scope import SyncScope
from tunebench.hub.settings import HubSettings, HubSkip, env_token
from tunebench.hub.snakemake_records import SnakemakeRecords

# Callers (the CLI, rules/common.smk, scripts/hub_sync.py) import these from here.
__all__ = ["HubSettings", "HubSkip", "PullReport", "PushReport", "SyncScope", "check_manifest", "pull", "push",
           "sync_files"]

log = logging.getLogger(__name__)


# -- talking to the Hub -------------------------------------------------------------------------
def _connection_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:
        import httpx2 as http  # huggingface_hub 2.x's HTTP client
    except ImportError:  # pragma: no cover - huggingface_hub 1.x
        import httpx as http  # type: ignore[no-redef]
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
        url = hf_hub_url(settings.repo_id, name, repo_type=settings.repo_type, revision=settings.revision,
                         endpoint=settings.endpoint)
        commit = get_hf_file_metadata(url, token=token).commit_hash
        path = hf_hub_download(settings.repo_id, name, repo_type=settings.repo_type, revision=commit,
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


def push(root: Path, scope: SyncScope, progress: bool = True) -> PushReport:
    """Upload the suite's artifacts; only files whose content changed since the last push travel."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(root)
    settings = scope.hub
    settings.check(scope.suite, scope.config_file)
    token = env_token()
    if token is None:
        raise TunebenchError("pushing needs a Hub token in the environment", field="HF_TOKEN",
                             fix="export HF_TOKEN=hf_... (a token with write access; tunebench never stores it)")
    files = sync_files(root, scope)
    if not files:
        raise TunebenchError(f"nothing to push: {scope.results_dir}/ has no results yet",
                             fix=f"run the workflow first (snakemake --cores 2 {scope.layout.summary()})")
    manifest = build_manifest(root, scope, files, progress=progress)
    api = HfApi(endpoint=settings.endpoint, token=token)
    staging = Path(tempfile.mkdtemp(prefix="tunebench-hub-"))
    try:
        try:
            api.create_repo(settings.repo_id, repo_type=settings.repo_type, private=settings.private, exist_ok=True)
            previous, _ = _fetch_manifest(settings, token, scope.suite, staging)
            changed = [f for f, e in manifest["files"].items()
                       if ((previous or {}).get("files") or {}).get(f, {}).get("sha256") != e["sha256"]]
            if not changed and same_content(previous, manifest):
                log.info("hub: %s already holds these %d files; nothing to push", settings.url, len(files))
                return PushReport(settings.repo_id, None, len(manifest["files"]), 0, 0)
            if previous:
                gone = sorted(set(previous["files"]) - set(manifest["files"]))
                if gone:
                    log.warning("hub: %d files of the last push are not here (%s...); they stay in the repo's "
                                "history but leave the manifest. Pull before you push to keep them together.",
                                len(gone), gone[0])
            ops = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(root / f)) for f in changed]
            ops.append(CommitOperationAdd(path_in_repo=manifest_path(scope.suite),
                                          path_or_fileobj=json.dumps(manifest, indent=1, sort_keys=True).encode()))
            info = api.create_commit(settings.repo_id, ops, repo_type=settings.repo_type, revision=settings.revision,
                                     commit_message=f"tunebench: {scope.suite} suite, {len(changed)} "
                                                    f"changed of {len(manifest['files'])} files")
        except _connection_errors() as exc:
            raise HubSkip(f"cannot reach {settings.url} ({type(exc).__name__}): nothing pushed; run it again "
                          "when the Hub can be reached") from exc
        except HfHubHTTPError as exc:
            raise _hub_error(exc, settings, "push", scope.config_file) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(manifest["files"][f]["size"] for f in changed)
    log.info("hub: pushed %d changed of %d files (%.1f MB) to %s at %s", len(changed), len(manifest["files"]),
             size / 1e6, settings.url, info.oid[:12])
    return PushReport(settings.repo_id, info.oid, len(manifest["files"]), len(changed), size)


@dataclass
class PullReport:
    repo: str
    commit: str | None
    downloaded: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # finished local outputs that differ: never replaced


def pull(root: Path, scope: SyncScope, progress: bool = True, workers: int = 8) -> PullReport:
    """Download the suite's artifacts so that Snakemake sees them as up to date."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import disable_progress_bars
    from tqdm import tqdm

    from tunebench.data.sources import sha256_file

    root = Path(root)
    settings = scope.hub
    settings.check(scope.suite, scope.config_file)
    token = env_token() or False  # False: send no token at all (a public repo), never a stored login
    disable_progress_bars()  # one bar for the whole pull instead of one per file
    staging_root = root / ".snakemake" / "tunebench-hub"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="pull-", dir=staging_root))
    try:
        try:
            manifest, commit = _fetch_manifest(settings, token, scope.suite, staging)
            if manifest is None:
                raise TunebenchError(f"{settings.url} holds no {scope.suite!r} suite "
                                     f"({manifest_path(scope.suite)} is missing)", file=scope.config_file,
                                     field="hub.repo", fix="push it first from the host that ran it: "
                                     f"snakemake --cores 1 hub_push --config suite={scope.suite}")
            where = f"{settings.url}/{manifest_path(scope.suite)}"
            check_manifest(manifest, scope, where)
            records = SnakemakeRecords(root)
            report = PullReport(settings.repo_id, commit)
            wanted: list[str] = []
            units = output_units(list(manifest["files"]), set(manifest.get("snakemake_metadata") or {}))
            incomplete = records.incomplete(units)
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
                got = hf_hub_download(settings.repo_id, path, repo_type=settings.repo_type, revision=commit,
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
            raise _hub_error(exc, settings, "pull", scope.config_file) from exc
        _install(root, staging / "files", manifest, report, records, units)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("hub: pulled %d files from %s at %s; %d outputs already here; %d kept (they differ: yours stay)",
             len(report.downloaded), settings.url, (commit or "")[:12], len(report.same), len(report.kept))
    for unit in report.kept:
        log.warning("hub: kept your %s (it differs from the pushed one; remove it and pull again to take the Hub's)",
                    unit)
    return report


def _install(root: Path, staged: Path, manifest: dict, report: PullReport, store: SnakemakeRecords,
             units: dict[str, list[str]]) -> None:
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
    for key, record in records.items():
        owner = next((u for u in owners(key) if u in units), key)
        if owner in taken or (owner in report.same and store.read(key) is None):
            store.write(key, record)
