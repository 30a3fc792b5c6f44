"""Task types (one module each) and what every task uses: prompt templates and answer parsers.

Every module of this package other than the shared ones below is a task type and registers itself
on import, so a new type is its own module here plus its name in the task schema's `type` enum."""

import importlib
import pkgutil

from tunebench.tasks.registry import ItemScores, TaskType, register_task_type, task_type, task_type_names

_SHARED = {"registry", "prompting", "parsing", "windows"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _SHARED:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ItemScores", "TaskType", "register_task_type", "task_type", "task_type_names"]
