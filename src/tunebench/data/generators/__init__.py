"""Registry of deterministic data generators, by the name a task's `source.generator` uses.

A generator is a function `(**params) -> list[dict]` that returns the same rows for the same
params on every machine.
"""

from __future__ import annotations

from collections.abc import Callable

from tunebench.data.generators import tickets

GENERATORS: dict[str, Callable[..., list[dict]]] = {
    "support_tickets": tickets.generate,
}

# Generated rows live in memory: beyond this a run would take hours and tens of GB before its first
# item (the demo uses 3000 rows).
MAX_ROWS = 1_000_000


def check_params(name: str, params: dict, file: str) -> None:
    """The task's `source.params` against the generator's own signature, at load (a typo or a wrong
    type would otherwise fail inside the raw_fetch job): a ConfigError naming the field."""
    import inspect

    from tunebench.core.errors import ConfigError

    signature = inspect.signature(GENERATORS[name])
    accepted = {p.name: p.default for p in signature.parameters.values()}
    for key, value in (params or {}).items():
        field = f"source.params.{key}"
        if key not in accepted:
            raise ConfigError(f"generator {name!r} takes no parameter {key!r}", file=file, field=field,
                              fix=f"use some of: {', '.join(accepted)}")
        default = accepted[key]
        kind = type(default) if default is not inspect.Parameter.empty and default is not None else None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool) != isinstance(default, bool)):
            raise ConfigError(f"{value!r} has the wrong type", file=file, field=field,
                              fix=f"use {'an' if kind is int else 'a'} {'integer' if kind is int else kind.__name__} "
                                  f"like its default, {default!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{value!r} is negative", file=file, field=field, fix="use a value >= 0")
        if key == "n_rows" and value > MAX_ROWS:
            raise ConfigError(f"{value:,} rows is too many to generate", file=file, field=field,
                              fix=f"use at most {MAX_ROWS:,} (the demo uses 3000)")
