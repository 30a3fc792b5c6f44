"""The `hub:` config section, and when sync must not happen (off, a suite that never syncs, offline).

Kept apart from the sync itself so that the workflow's parse (rules/common.smk) reads the settings
without importing huggingface_hub's upload machinery or Snakemake's persistence internals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


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
    def repo_id(self) -> str:
        """The repo, for calls made after check() has passed (it raises when there is none)."""
        assert self.repo, "HubSettings.check() first"
        return self.repo

    @property
    def url(self) -> str:
        from huggingface_hub import constants

        prefix = {"dataset": "datasets/", "model": ""}[self.repo_type]
        return f"{self.endpoint or constants.ENDPOINT}/{prefix}{self.repo}"


def env_token() -> str | None:
    """The Hub token, from the environment only (never huggingface_hub's stored login)."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
