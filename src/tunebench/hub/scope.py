"""What a suite's Hub sync needs to know of the project, as one typed value.

The workflow loads and checks the project once per parse; the hub_push / hub_pull jobs get this
scope through their rule's params (`to_param`, a plain JSON-able dict) and rebuild it with
`from_param`, so they never load the project again. The CLI and the workflow's `onsuccess` push
build it with `from_project`. Every path comes from tunebench.core.layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tunebench.core.layout import DATA, MERGED, Layout
from tunebench.hub.settings import HubSettings

if TYPE_CHECKING:
    from tunebench.core.spec import Project

NOT_SYNCED = (MERGED,)  # top-level folders of a results dir that are rebuilt, never synced


@dataclass(frozen=True)
class SyncScope:
    suite: str
    results_dir: str
    config_file: str
    fingerprint: str  # Project.fingerprint(): recorded in the manifest
    tasks: tuple[str, ...]  # whose prepared data travels (Layout.prepared_dir)
    model_dirs: tuple[str, ...]  # base models' folders (Layout.model_dir), weights left out
    other_results_dirs: tuple[str, ...]  # the other suites' results folders: skipped when nested in ours
    hub: HubSettings
    data_dir: str = DATA  # the suite's data folder (Layout.data): whose prepared/<task>/ travel

    @classmethod
    def from_project(cls, project: Project) -> SyncScope:
        own = project.results_dir
        others = {s["results_dir"].rstrip("/") for s in project.config["suites"].values()} - {own}
        return cls(
            suite=project.suite_name,
            results_dir=own,
            config_file=project.config_file,
            fingerprint=project.fingerprint(),
            tasks=tuple(sorted(project.tasks)),
            model_dirs=tuple(sorted(d for d in map(project.model_dir, project.models) if d)),
            other_results_dirs=tuple(sorted(others)),
            hub=HubSettings.from_config(project.config),
            data_dir=project.layout.data,
        )

    def to_param(self) -> dict[str, Any]:
        """Plain builtins only (lists, not tuples), as a rule's params."""
        plain = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in plain.items()}

    @classmethod
    def from_param(cls, param: dict[str, Any]) -> SyncScope:
        values = dict(param)
        for key in ("tasks", "model_dirs", "other_results_dirs"):
            values[key] = tuple(values[key])
        values["hub"] = HubSettings(**values["hub"])
        return cls(**values)

    @property
    def layout(self) -> Layout:
        return Layout(self.results_dir, self.data_dir)

    def roots(self) -> list[str]:
        """The folders that travel: prepared data, model folders, the results folder."""
        return [self.layout.prepared_dir(task) for task in self.tasks] + list(self.model_dirs) + [self.results_dir]

    def excluded_dirs(self) -> set[str]:
        """Other suites' results folders nested inside this one, and folders that are rebuilt."""
        own = self.results_dir
        nested = {d for d in self.other_results_dirs if d.startswith(own + "/")}
        return nested | {self.layout.under(d) for d in NOT_SYNCED}
