"""Publish the built dashboard: into a folder (any static host serves it) or onto a `gh-pages` branch.

Nothing secret leaves: every text file of the site is checked against the values of credential-like
environment variables first, and only the site's own files are published (no results, no logs).
The branch is written with git plumbing (a temporary index, `commit-tree`, `update-ref`): the
working tree and the current branch are never touched; `--push` pushes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tunebench.core.atomic import atomic_dir, read_json
from tunebench.core.errors import TunebenchError
from tunebench.report.site import check_no_secrets

REQUIRED = ("index.html", "app.js", "data.js", "chart.umd.js")


def _checked_site(site_dir: str | Path) -> Path:
    site = Path(site_dir)
    missing = [n for n in REQUIRED if not (site / n).is_file()]
    if missing:
        raise TunebenchError(f"{site} is not a built dashboard (missing {', '.join(missing)})", field="--site",
                             fix="build it first: snakemake --cores 2 results/summary.json")
    texts = {str(p.relative_to(site)): p.read_text(encoding="utf-8", errors="replace")
             for p in site.rglob("*") if p.is_file() and p.suffix in (".html", ".js", ".json", ".css")}
    check_no_secrets(texts)
    return site


def publish_folder(site_dir: str | Path, dest: str | Path) -> Path:
    """Replace `dest` with a copy of the site (atomically: a failure leaves the old one)."""
    site = _checked_site(site_dir)
    dest = Path(dest)
    if dest.resolve() == site.resolve() or site.resolve() in dest.resolve().parents:
        raise TunebenchError(f"cannot publish {site} into itself ({dest})", field="--to",
                             fix="name a folder outside the site")
    with atomic_dir(dest) as tmp:
        shutil.copytree(site, tmp, dirs_exist_ok=True)
        (tmp / ".nojekyll").write_text("")
    return dest


def _git(args: list[str], repo: Path, env: dict | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise TunebenchError(f"git {' '.join(args)} failed: {proc.stderr.strip()}", field="--gh-pages",
                             fix="run it inside a git checkout, with git user.name / user.email set")
    return proc.stdout.strip()


def publish_branch(site_dir: str | Path, repo: str | Path = ".", branch: str = "gh-pages",
                   push: str | None = None, message: str | None = None) -> str:
    """Commit the site as the whole tree of `branch` (one commit per publish, on top of the last);
    return the commit. With `push`, push the branch to that remote."""
    site = _checked_site(site_dir).resolve()
    repo = Path(repo).resolve()
    parent = _git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], repo, check=False) or None
    if message is None:
        data = site / "data.json"
        prov = read_json(data)["provenance"] if data.is_file() else {}
        message = (f"tunebench dashboard: suite run {prov.get('started_at', '?')} "
                   f"(source commit {str(prov.get('git_commit') or 'unknown')[:12]})")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        (Path(tmp) / "tree").mkdir()
        shutil.copytree(site, Path(tmp) / "tree", dirs_exist_ok=True)
        (Path(tmp) / "tree" / ".nojekyll").write_text("")
        _git(["--work-tree", str(Path(tmp) / "tree"), "add", "--all", "--force", "."], repo, env)
        tree = _git(["write-tree"], repo, env)
        commit = _git(["commit-tree", tree, *(["-p", parent] if parent else []), "-m", message], repo)
    _git(["update-ref", f"refs/heads/{branch}", commit, *([parent] if parent else [])], repo)
    if push:
        _git(["push", push, f"refs/heads/{branch}:refs/heads/{branch}"], repo)
    return commit
