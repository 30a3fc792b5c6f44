"""Snakemake's metadata records of outputs (.snakemake/metadata and .snakemake/incomplete), read and
written for the hub sync.

Snakemake offers no public API for this: the records carry the params, code, input lists and
software env that decide a rerun, so a pulled output must arrive with its record or the new host
reruns it. This is the only module that touches Snakemake's private persistence methods
(`FilePersistence._read_record`, `_write_record`, `_unmark_incomplete`, `_filter_incomplete_keys`);
it refuses to run on a Snakemake version it was not checked against, instead of failing halfway
through a pull with an AttributeError or, worse, writing records Snakemake cannot read.

Checked against: the persistence package as introduced in 9.17.0 (`snakemake/persistence/`, which
replaced the single `persistence.py` whose private methods took `(subject, id)`), unchanged in
those methods and in `MetadataRecord` through 9.25.2 (source) and 9.27.1 (installed and tested).
To widen the range: read the new version's `snakemake/persistence/file.py`, run
tests/test_hub_records.py and tests/test_hub.py with it, then move `CHECKED_BELOW`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.version import Version

from tunebench.core.errors import TunebenchError

CHECKED_FROM = Version("9.17.0")
CHECKED_BELOW = Version("9.28")
CHECKED_RANGE = f">={CHECKED_FROM},<{CHECKED_BELOW}"


def installed_version() -> str:
    return metadata.version("snakemake")


def check_version() -> Version:
    """The installed Snakemake's version, if the record methods below were checked against it."""
    found = installed_version()
    version = Version(found)
    # by release numbers, so that a pre-release of an unchecked version (9.28.0rc1) counts as outside
    if not CHECKED_FROM.release <= version.release < CHECKED_BELOW.release:
        raise TunebenchError(
            f"the hub sync reads and writes Snakemake's metadata records through internals checked "
            f"against snakemake {CHECKED_RANGE}; snakemake {found} is installed", field="snakemake",
            fix=f"pip install 'snakemake{CHECKED_RANGE}' (or check this version's snakemake/persistence/file.py "
                "and widen CHECKED_BELOW in tunebench/hub/snakemake_records.py)")
    return version


class SnakemakeRecords:
    """The metadata store of the Snakemake working directory `root` (its .snakemake folder).

    Keys are output paths relative to `root`, as Snakemake writes them. Records travel as plain
    JSON-able dicts so that nothing outside this module sees Snakemake's types.
    """

    def __init__(self, root: Path):
        check_version()
        from snakemake.persistence.file import FilePersistence

        # nolock: the sync never runs jobs; it must work next to a running workflow (push mid-run)
        self._store = FilePersistence(nolock=True, path=Path(root) / ".snakemake")

    def read(self, key: str) -> dict[str, Any] | None:
        record = self._store._read_record(key)
        return None if record is None else json.loads(record.model_dump_json())

    def write(self, key: str, record: dict[str, Any]) -> None:
        """Store `record` for `key` and clear its incomplete mark, as Snakemake does when a job ends."""
        from snakemake.persistence import MetadataRecord

        self._store._write_record(key, MetadataRecord.model_validate(record))
        self._store._unmark_incomplete(key)

    def incomplete(self, keys: Iterable[str]) -> set[str]:
        """The keys whose job started and never finished (still running, or killed)."""
        return self._store._filter_incomplete_keys(keys)

    def is_incomplete(self, key: str) -> bool:
        return bool(self.incomplete([key]))

    def unmark_incomplete(self, key: str) -> None:
        self._store._unmark_incomplete(key)
