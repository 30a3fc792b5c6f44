"""Which of the merged config sources wrote a field: configs/config.yaml, a `--configfile`, or
`--config` on the command line.

Snakemake merges them in this order, each over the one before (configs/config.yaml from the
Snakefile's `configfile:`, then every --configfile in the order given, then --config), so an error in
the merged config is blamed on the last source that set the field, not on configs/config.yaml. Every
file is read here first with `read_yaml`, so a key written twice, an empty file or malformed YAML in
any of them is one clear message before Snakemake's own reader sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunebench.core.errors import ConfigError, TunebenchError
from tunebench.core.schema import read_yaml

DEFAULT_CONFIG = "configs/config.yaml"
COMMAND_LINE = "--config on the command line"
_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _shown(root: Path, path: str | Path) -> str:
    full = Path(path) if Path(path).is_absolute() else root / path
    try:
        return str(full.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(full)


@dataclass
class ConfigLayers:
    """(name, document) per config source, lowest precedence first."""

    layers: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def files(self) -> str:
        """The config files, once each, in merge order: what an error of the merged config names."""
        return ", ".join(name for name, _ in self.layers if name != COMMAND_LINE) or DEFAULT_CONFIG

    def origin(self, dotted: str) -> str | None:
        """The last source that sets `dotted` (a list or value replaces the one before it whole)."""
        parts = [int(i) if i else key for i, key in _PART.findall(dotted or "")]
        if not parts or str(parts[0]).startswith("("):
            return None
        for name, doc in reversed(self.layers):
            node: Any = doc
            for part in parts:
                if not isinstance(node, Mapping):
                    break  # a list or value set here, whole
                if part not in node:
                    node = None
                    break
                node = node[part]
            else:
                return name
            if node is not None:
                return name
        return None

    def blame(self, exc: TunebenchError) -> TunebenchError:
        """`exc` naming the source of its field when it names the merged config (else unchanged)."""
        if exc.file != self.files or not isinstance(exc, ConfigError):
            return exc
        fields = getattr(exc, "fields", None) or [exc.field or ""]
        where = next((name for name in map(self.origin, fields) if name), None)
        if where is None or where == exc.file:
            return exc
        fix = exc.fix
        nested = bool(re.search(r"[.\[]", exc.field or ""))
        if where == COMMAND_LINE and nested and "text" in exc.problem:
            # Snakemake reads a --config value that is a mapping or list with YAML's BaseLoader: every
            # number inside it arrives as text, however it is written
            fix = (f"Snakemake's --config reads every value inside a mapping or list as text: set "
                   f"{exc.field} in a file given with --configfile (e.g. --configfile configs/config.yaml my.yaml)")
        elif where == COMMAND_LINE and fix and "--config" not in fix:
            fix += " (on the command line: --config KEY=VALUE, a mapping as KEY='{a: 1}')"
        problem = exc.problem.replace(" (in quotes)", "") if where == COMMAND_LINE else exc.problem
        return ConfigError(problem, file=where, field=exc.field, fix=fix)


def config_layers(root: str | Path, configfiles: Iterable[str | Path] = (), command_line: Mapping | None = None,
                  default: str | None = DEFAULT_CONFIG) -> ConfigLayers:
    """Read every config source as Snakemake merges them; each file once, at its last place."""
    root = Path(root)
    names = [_shown(root, p) for p in ([default] if default else []) + list(configfiles)]
    ordered = [n for i, n in enumerate(names) if n not in names[i + 1:]]
    layers = ConfigLayers()
    for name in ordered:
        full = Path(name) if Path(name).is_absolute() else root / name
        if name == default and not full.is_file():
            if len(ordered) == 1:  # Snakemake would only say WorkflowError, naming no fix
                raise ConfigError("the workflow's config file is missing", file=name, field="(top level)",
                                  fix=f"restore {name} (git checkout {name}) or name one with --configfile")
            continue
        layers.layers.append((name, read_yaml(full, name, "config")))
    if command_line:
        layers.layers.append((COMMAND_LINE, dict(command_line)))
    return layers
