"""Task types (one module each) and what every task uses: prompt templates and answer parsers."""

from tunebench.tasks import classification, extraction  # noqa: F401  (registers the built-in types)
from tunebench.tasks.registry import ItemScores, TaskType, register_task_type, task_type, task_type_names

__all__ = ["ItemScores", "TaskType", "register_task_type", "task_type", "task_type_names"]
