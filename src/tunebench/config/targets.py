"""The command line's targets, checked against the run before any job: a target another suite writes,
or one that names a system, task, benchmark or condition this run does not have, is one message
with the valid values (Snakemake would say MissingRuleException, or fail inside an input function
with a KeyError and its stack)."""

from __future__ import annotations

import re
from pathlib import Path

from tunebench.core.errors import ConfigError
from tunebench.core.spec import Project, System


def check_targets(project: Project, targets) -> None:
    """A target under another suite's results folder (`results/summary.json` while suite `test` writes
    to results/test) is no output of this run: Snakemake would only say MissingRuleException."""
    dirs = {name: s["results_dir"].rstrip("/") for name, s in project.config["suites"].items()}
    for target in targets:
        path = Path(target)
        if path.is_absolute():
            try:
                path = path.relative_to(project.root)
            except ValueError:
                continue
        text = path.as_posix()
        owners = [name for name, d in dirs.items() if text == d or text.startswith(d + "/")]
        if not owners:
            continue
        owner = max(owners, key=lambda name: len(dirs[name]))
        if owner == project.suite_name:
            _check_names(project, target, text)
            continue
        rest = text[len(dirs[owner]):].lstrip("/")
        mine = f"{project.results_dir}/{rest}" if rest else project.results_dir
        raise ConfigError(f"the target {target} is an output of suite {owner!r} ({dirs[owner]}/), but this run's "
                          f"suite is {project.suite_name!r}, which writes to {project.results_dir}/",
                          file=project.config_file, field="suite",
                          fix=f"ask for {mine} (this suite), or run suite {owner} with --config suite={owner}")


def _patterns(project: Project) -> list[re.Pattern]:
    layout = project.layout
    outputs = [layout.prediction_rows(), layout.prediction_meta(), layout.benchmark_score(), layout.task_score(),
               layout.lm_eval_dir(), layout.comparison(), layout.comparison(ext="md")]
    out = []
    for pattern in outputs:
        parts = re.split(r"\{(\w+)\}", pattern)
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
        out.append(re.compile(regex + r"/?"))
    return out


def _check_names(project: Project, target: str, text: str) -> None:
    """A target under this suite's results that fits an output pattern must name what the run has."""
    known = {"system": list(project.systems), "task": list(project.tasks), "benchmark": list(project.benchmarks)}
    for pattern in _patterns(project):
        found = pattern.fullmatch(text)
        if not found:
            continue
        values = found.groupdict()
        if "benchmark" in values and values["benchmark"] not in known["benchmark"] and values["benchmark"] in known["task"]:
            continue  # a task's folder under scores/: the task pattern decides
        for name in ("system", "task", "benchmark"):
            value = values.get(name)
            if value is not None and value not in known[name]:
                raise ConfigError(f"the target {target} names {name} {value!r}, which this run (suite "
                                  f"{project.suite_name!r}) does not have", file="the command line",
                                  field="targets", fix=f"use one of its {name}s: {', '.join(known[name]) or '(none)'}")
        if values.get("system") is not None and project.systems[values["system"]].is_classic:
            _check_classic(project.systems[values["system"]], target, values)
        prompting = values.get("prompting")
        if prompting is not None and "task" in values:
            conditions = project.tasks[values["task"]].promptings(project.shots)
            if prompting not in conditions:
                raise ConfigError(f"the target {target} names condition {prompting!r}, which task "
                                  f"{values['task']!r} does not run", file="the command line", field="targets",
                                  fix=f"use one of: {', '.join(conditions)} (or add its shots to prompting.shots)")
        return


def _check_classic(system: System, target: str, values: dict) -> None:
    """The classic baseline answers its own task's items, zero-shot: it reads no prompt, and lm-eval
    cannot load it."""
    asked = values.get("task") or values.get("benchmark")
    prompting = values.get("prompting")
    if (asked is not None and asked != system.task) or (prompting is not None and prompting != "0shot"):
        what = f"task {asked!r}" + (f" under {prompting!r}" if prompting else "")
        raise ConfigError(f"the target {target} asks the classic baseline {system.name} for {what}, but it answers "
                          f"only its own task, zero-shot", file="the command line", field="targets",
                          fix=f"ask for {system.task} 0shot of {system.name}, e.g. "
                              f"scores/{system.name}/{system.task}/0shot.json under the results folder")
