"""User-facing errors: one message naming the file, the field and the fix."""

from __future__ import annotations


class TunebenchError(Exception):
    """A problem the user can fix (config, data, environment). Printed without a traceback."""

    def __init__(self, problem: str, *, file: str | None = None, field: str | None = None,
                 fix: str | None = None):
        self.problem = problem
        self.file = file
        self.field = field
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = ""
        if self.file:
            where += f"{self.file}: "
        if self.field:
            where += f"field `{self.field}`: "
        text = where + self.problem
        if self.fix:
            text += f"\n  Fix: {self.fix}"
        return text

    def __str__(self) -> str:
        return self.message


class ConfigError(TunebenchError):
    """Invalid configuration, task, model or prompt file."""


class DataError(TunebenchError):
    """Raw or prepared data that does not match what the task declares."""


class SourceError(TunebenchError):
    """A model or data source that cannot be reached or found."""


def article(word: str) -> str:
    """'an integer', 'an extraction task', 'a number': the article that fits `word` (here, not in
    core.schema, so that job code using it does not import jsonschema)."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class TrainingError(TunebenchError):
    """Training cannot run as configured (e.g. Unsloth without a GPU, or more memory than the job has)."""
