"""Checks of a task's parts that the loader runs before any job: its prompt template (variables the
task type allows, Jinja2 syntax) and its methods side by side."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tunebench.core.errors import ConfigError
from tunebench.core.schema import check_schema, read_yaml


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def required_variables(variables: Mapping[str, frozenset[str]], fields: Mapping | None = None) -> dict[str, set[str]]:
    """Variables a part must use, or the model never sees what it is asked about: the user message
    its item (`input`), a multiple_choice item's `options`, an extraction item's document (`context`,
    when the task names that column); the assistant part the answer of each in-context example and
    training row (`target`)."""
    user = {"input"} | ({"options"} & variables.get("user", frozenset()))
    if "context" in variables.get("user", frozenset()) and (fields or {}).get("context"):
        user.add("context")
    return {"user": user, "assistant": {"target"}}


def load_prompt(root: Path, path: Path, schema: dict, variables: Mapping[str, frozenset[str]],
                fields: Mapping | None = None) -> dict:
    """The template, checked; `variables`: those each part may use (the task type's); `fields`: the
    task's columns (what decides the variables a part must use, see required_variables)."""
    import jinja2
    import jinja2.meta

    shown = _rel(root, path)
    if not path.is_file():
        raise ConfigError("prompt template file not found", file=shown,
                          fix="create it or point the task's `prompt:` at an existing file")
    doc = read_yaml(path, shown, "prompt template")
    check_schema(doc, schema, shown)
    env = jinja2.Environment()
    required = required_variables(variables, fields)
    for part, allowed in variables.items():
        if part not in doc:
            continue
        try:
            used = jinja2.meta.find_undeclared_variables(env.parse(doc[part]))
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"template syntax error on line {exc.lineno}: {exc.message}",
                              file=shown, field=part, fix="fix the Jinja2 syntax") from None
        unknown = sorted(used - allowed)
        if unknown:
            raise ConfigError(
                f"unknown template variable(s) {', '.join(unknown)}", file=shown, field=part,
                fix=f"use only {', '.join('{{ ' + v + ' }}' for v in sorted(allowed))} here" if allowed
                else "this part takes no variables for this task type: write it as plain text",
            )
        missing = sorted(required.get(part, set()) - used)
        if missing:
            shown_missing = ", ".join("{{ " + v + " }}" for v in missing)
            raise ConfigError(f"the template never uses {shown_missing}: "
                              + ("the model would never see the item it is asked about" if part == "user"
                                 else "in-context examples and training rows would carry no answer"),
                              file=shown, field=part, fix=f"add {shown_missing} where it belongs, e.g. "
                              + ('"Text: {{ input }}"' if part == "user" else '"{{ target }}"'))
    return doc


def check_methods(doc: dict, kind, shown: str) -> None:
    """`methods` (side by side) and `method` (one) must agree; each method must fit the type."""
    methods = doc.get("methods")
    if not methods:
        return
    if "method" in doc and doc["method"] != methods[0] and doc["method"] != "generate":
        raise ConfigError(f"method {doc['method']} and methods {methods} disagree", file=shown, field="methods",
                          fix=f"drop `method:`; the first of `methods` ({methods[0]}) is the task's method")
    for i, method in enumerate(methods):
        try:
            kind.check({**doc, "method": method}, shown)
        except ConfigError as exc:
            raise ConfigError(exc.problem, file=shown, field=f"methods[{i}]", fix=exc.fix) from None


def check_decontaminate_against(tasks: Mapping, known: list[str], finetuned: list[str]) -> None:
    """`split.decontaminate_against` of every task of the run: each name a task file (a typo would
    silently clean nothing), never the task itself, and no cycle among the run's tasks (each task's
    preparation waits for the other's test split, so Snakemake could order neither). A known task
    outside the run is allowed: it is skipped at prepare time, so a run of one task keeps working."""
    for name, task in tasks.items():
        for i, other in enumerate(task.split.get("decontaminate_against") or []):
            field = f"split.decontaminate_against[{i}]"
            if other == name:
                raise ConfigError("a task cannot be decontaminated against itself here", file=str(task.file),
                                  field=field, fix=f"remove {name!r}: split.decontaminate already cleans "
                                                   "against its own test split")
            if other not in known:
                raise ConfigError(f"unknown task {other!r}: there is no configs/tasks/{other}.yaml",
                                  file=str(task.file), field=field, fix=f"use one of: {', '.join(known)}")
    edges = {name: [o for o in task.split.get("decontaminate_against") or [] if o in tasks]
             for name, task in tasks.items()}
    for start in tasks:
        path = _cycle(start, edges, [start])
        if path:
            drop_from = next((a for a in path[:-1] if a not in finetuned), path[-2])
            drop = path[path.index(drop_from) + 1]
            raise ConfigError(f"decontaminate_against forms a cycle: {' -> '.join(path)} (each task's train split "
                              "would wait for the other's preparation)", file=str(tasks[drop_from].file),
                              field=f"split.decontaminate_against[{tasks[drop_from].split['decontaminate_against'].index(drop)}]",
                              fix=f"clean only the fine-tuned task: remove {drop!r} from {drop_from}'s "
                                  "split.decontaminate_against")


def _cycle(node: str, edges: Mapping[str, list[str]], path: list[str]) -> list[str] | None:
    for nxt in edges[node]:
        if nxt == path[0]:
            return [*path, nxt]
        if nxt not in path:
            found = _cycle(nxt, edges, [*path, nxt])
            if found:
                return found
    return None
