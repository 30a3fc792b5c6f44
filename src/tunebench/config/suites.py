"""A suite's own grid: the models, tasks and fine-tuning it runs, and overrides of its tasks' files.

A suite in configs/config.yaml may set `models`, `tasks` and `finetune` (`tasks`, `training`), which
replace the config's own for that suite, and `task_overrides: {<task>: {<partial task config>}}`,
deep-merged into configs/tasks/<task>.yaml before the file is checked: a smoke suite can point a
task's source at small local files and drop its `expected_rows`, with the task file untouched.

Merging: mappings merge key by key; any other value (a list, a string, a number) replaces the one
in the file; `null` removes the key; a mapping whose `kind` differs from the file's (a `source` of
kind local instead of hub) replaces it whole, since its other fields belong to the other kind.

A suite whose task_overrides change its tasks' data keeps that data in a `data_dir` of its own:
in the shared data/ folder it would overwrite the prepared data of every other suite, and with it
invalidate their adapters and predictions.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

from tunebench.core.errors import ConfigError
from tunebench.core.layout import DATA

SUITE_KEYS = ("models", "tasks", "finetune")
FOLDERS = {"models": (Path("configs") / "models", "model"), "tasks": (Path("configs") / "tasks", "task")}
TRAINING_DIR = Path("configs") / "training"


def merge_task(base: dict, override: dict) -> dict:
    """`override` deep-merged into `base` (see the module docstring); neither is changed."""
    out = deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and not _other_kind(out[key], value):
            out[key] = merge_task(out[key], value)
        else:
            out[key] = merge_task({}, value) if isinstance(value, dict) else deepcopy(value)
    return out


def _other_kind(base: dict, override: dict) -> bool:
    return "kind" in override and override["kind"] != base.get("kind")


def _known(root: Path, folder: Path) -> str:
    return ", ".join(sorted(p.stem for p in (root / folder).glob("*.yaml"))) or "(none yet)"


def check_suites(root: Path, config: dict, config_file: str) -> None:
    """Every suite's own models, tasks, fine-tuning and task_overrides name things that exist and
    fit together (checked for all suites, not only the chosen one: a typo in another suite is
    found before that suite's first run)."""
    data_dirs: dict[str, list[str]] = {}
    for name, suite in config["suites"].items():
        data_dirs.setdefault(suite.get("data_dir", DATA).rstrip("/"), []).append(name)
    for name, suite in config["suites"].items():
        where = f"suites.{name}"
        for key, (folder, kind) in FOLDERS.items():
            for i, item in enumerate(suite.get(key) or []):
                if not (root / folder / f"{item}.yaml").is_file():
                    raise ConfigError(f"unknown {kind} {item!r}: there is no {folder / (item + '.yaml')}",
                                      file=config_file, field=f"{where}.{key}[{i}]",
                                      fix=f"use one of: {_known(root, folder)}; or add {folder}/{item}.yaml")
        tasks = suite.get("tasks", config["tasks"])
        finetune = suite.get("finetune") or {}
        tuned = finetune.get("tasks", config["finetune"]["tasks"])
        for i, task in enumerate(tuned):
            if task in tasks or not ("tasks" in finetune or "tasks" in suite):
                continue  # the config's own finetune.tasks and tasks: the loader's check names that field
            if "tasks" in finetune:
                raise ConfigError(f"cannot fine-tune on {task!r}: it is not one of suite {name!r}'s tasks",
                                  file=config_file, field=f"{where}.finetune.tasks[{i}]",
                                  fix=f"use one of: {', '.join(tasks)}; or add it to {where}.tasks")
            raise ConfigError(f"suite {name!r} runs other tasks than the config, but the config fine-tunes "
                              f"{task!r}, which is not one of them", file=config_file, field=f"{where}.tasks",
                              fix=f"set {where}.finetune.tasks (a list of the suite's tasks, or [])")
        training = finetune.get("training")
        if training and not (root / TRAINING_DIR / f"{training}.yaml").is_file():
            raise ConfigError(f"unknown training setup {training!r}: there is no "
                              f"{TRAINING_DIR / (training + '.yaml')}", file=config_file,
                              field=f"{where}.finetune.training",
                              fix=f"use one of: {_known(root, TRAINING_DIR)}; or add {TRAINING_DIR}/{training}.yaml")
        overrides = suite.get("task_overrides") or {}
        for task in overrides:
            if task not in tasks:
                raise ConfigError(f"task_overrides names {task!r}, which is not one of suite {name!r}'s tasks",
                                  file=config_file, field=f"{where}.task_overrides.{task}",
                                  fix=f"use one of: {', '.join(tasks)}; or add it to the suite's tasks")
        data_dir = suite.get("data_dir", DATA).rstrip("/")
        sharing = [other for other in data_dirs[data_dir] if other != name]
        if overrides and sharing:
            raise ConfigError(f"suite {name!r} overrides its tasks' files but shares data_dir {data_dir!r} with "
                              f"{', '.join(map(repr, sharing))}: its prepared data would overwrite theirs",
                              file=config_file, field=f"{where}.data_dir",
                              fix=f"give it a data folder of its own, e.g. `data_dir: {DATA}/{name}`")


def apply_suite(root: Path, config: dict, config_file: str) -> dict[str, dict[str, Any]]:
    """Check every suite (check_suites), then put the chosen suite's models, tasks and finetune in
    place of the config's own, in `config` itself (the workflow reads the same dict). Returns the
    chosen suite's task_overrides."""
    check_suites(root, config, config_file)
    suite = config["suites"][config["suite"]]
    for key in ("models", "tasks"):
        if key in suite:
            config[key] = list(suite[key])
    if "finetune" in suite:
        config["finetune"] = {**config["finetune"], **deepcopy(suite["finetune"])}
    return dict(suite.get("task_overrides") or {})
