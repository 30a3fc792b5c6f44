"""The project load cache (tunebench.config.cache): a hit only while every file the load read is
unchanged; the workflow's config left as a fresh load leaves it."""

from __future__ import annotations

import os
import pickle
import shutil
from copy import deepcopy
from pathlib import Path

import pytest

from tunebench.config import cache
from tunebench.config.loader import load_project
from tunebench.core.schema import read_yaml


@pytest.fixture
def project(tmp_path, repo_root) -> Path:
    """Just what the default config's load reads: configs/, prompts/ (no data, results or site)."""
    dest = tmp_path / "repo"
    for folder in ("configs", "prompts"):
        shutil.copytree(repo_root / folder, dest / folder)
    return dest


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, root, config, config_file):
        self.calls += 1
        return load_project(root, config, config_file)


def _config(root: Path) -> dict:
    return read_yaml(root / "configs/config.yaml", "configs/config.yaml", "config")


def _load(root: Path, loader: Counting, config: dict | None = None):
    config = _config(root) if config is None else config
    return cache.load_project_cached(root, config, "configs/config.yaml", loader), config


def test_hit_until_any_file_read_changes(project, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "PACKAGE", tmp_path / "pkg")  # tunebench's source, as far as the key goes
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    loader = Counting()
    fresh, fresh_config = _load(project, loader)
    assert loader.calls == 1
    [path] = (project / cache.CACHE_DIR).glob("*.pickle")
    entry = pickle.loads(path.read_bytes())
    root = str(project.resolve())
    read = {str(Path(f).relative_to(root)) for f in entry["files"] if f.startswith(root)}
    assert {"configs/tasks/ticket_routing.yaml", "prompts/ticket_routing.yaml", "configs/schema/task.schema.yaml",
            "configs/models/smollm2-135m-instruct.yaml", "configs/pricing.yaml"} <= read
    assert str(tmp_path / "pkg" / "mod.py") in entry["files"] and f"{root}/configs/tasks" in entry["dirs"]

    cached, cached_config = _load(project, loader)
    assert loader.calls == 1  # nothing changed: the stored project
    assert cached_config == fresh_config and cached.config is cached_config  # defaults filled, in place
    assert cached.fingerprint() == fresh.fingerprint()
    assert list(cached.tasks) == list(fresh.tasks) and cached.prompts == fresh.prompts

    task = project / "configs/tasks/ticket_routing.yaml"
    stat = task.stat()
    os.utime(task, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a touch is no change
    _load(project, loader)
    assert loader.calls == 1

    calls = loader.calls
    edits = [  # each a file the load reads; the next load must read them again
        (task, lambda t: t.replace("route a customer-support ticket", "ROUTE A TICKET", 1)
         if "route a customer-support ticket" in t else t.replace("Route a", "Route one", 1)),
        (project / "prompts/ticket_routing.yaml", lambda t: t + "\n# edited\n"),
        (project / "configs/schema/task.schema.yaml", lambda t: t + "\n# edited\n"),
        (project / "configs/models/smollm2-135m-instruct.yaml", lambda t: t.replace("batch_size: 32", "batch_size: 16")),
        (tmp_path / "pkg" / "mod.py", lambda t: "X = 2\n"),
    ]
    for path, edit in edits:
        before = path.read_text()
        path.write_text(edit(before))
        assert path.read_text() != before, path
        reloaded, _ = _load(project, loader)
        calls += 1
        assert loader.calls == calls, f"{path} changed and the cache was used"
        _load(project, loader)
        assert loader.calls == calls, f"{path}: the reload was not cached"
    assert reloaded.models["smollm2-135m-instruct"].batch_size == 16

    (project / "configs/tasks/new_task.yaml").write_text("name: new_task\n")  # a folder listed changes
    _load(project, loader)
    assert loader.calls == calls + 1


def test_config_is_part_of_the_key_and_a_bad_entry_is_ignored(project):
    loader = Counting()
    base = _config(project)
    _load(project, loader, deepcopy(base))
    other = deepcopy(base)
    other["suite"] = "test"
    p, cfg = _load(project, loader, other)
    assert loader.calls == 2 and p.suite_name == "test" and cfg["suite"] == "test"
    _load(project, loader, deepcopy(base))
    assert loader.calls == 2  # both entries kept

    for entry in (project / cache.CACHE_DIR).glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    p, _ = _load(project, loader, deepcopy(base))
    assert loader.calls == 3 and p.suite_name == "demo"  # an unreadable entry: loaded afresh, and rewritten
    _load(project, loader, deepcopy(base))
    assert loader.calls == 3


def test_a_failed_load_stores_nothing(project):
    config = _config(project)
    config["models"] = ["no-such-model"]
    from tunebench.core.errors import ConfigError

    loader = Counting()
    for _ in range(2):  # the error every time, never a stored project
        with pytest.raises(ConfigError, match="no-such-model"):
            _load(project, loader, deepcopy(config))
    assert loader.calls == 2
    assert not list((project / cache.CACHE_DIR).glob("*.pickle"))
