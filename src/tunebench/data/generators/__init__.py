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
