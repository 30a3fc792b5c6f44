"""The workflow's `budget` check, from its onstart handler: the DAG of the run about to start is
known there, and no job has started. Over a limit: one TunebenchError naming the costliest jobs (the
handler exits with it; Snakemake removes its lock files on the way out and nothing was written)."""

from __future__ import annotations

import os
import sys
from typing import Any

from tunebench.plan.budget import format_plan, one_line, over_budget, plan_jobs, read_budget
from tunebench.plan.dag import planned_jobs
from tunebench.plan.probe import prober


def check_budget(workflow: Any, project: Any, layers: Any = None, probe: bool = True) -> None:
    """With a `budget` in the config: print the plan and raise if the run's estimate exceeds it."""
    budget = read_budget(project.config, project.config_file)
    if not budget:
        return
    try:
        cores = int(workflow.cores)
    except Exception:  # no --cores (a cluster run): the jobs' own sum is the bound
        cores = 1
    root = os.getcwd()  # the run's working directory: its records and outputs are relative to it
    plan = plan_jobs(project, planned_jobs(workflow.dag), root, cores, probe=prober(project, root, run=probe))
    print(format_plan(plan), file=sys.stderr)
    verdict = over_budget(plan, budget, project.config_file)
    if verdict is not None:
        raise layers.blame(verdict) if layers is not None else verdict
    print("tunebench: budget: the run fits (" + ", ".join(f"{k} {v:g}" for k, v in budget.items()) + ")",
          file=sys.stderr)


def is_dry_run(args: list[str]) -> bool:
    from snakemake.cli import get_argument_parser

    return bool(getattr(get_argument_parser().parse_known_args(args)[0], "dryrun", False))


def plan_after_dry_run(workflow: Any, project: Any, layers: Any, args: list[str]) -> bool:
    """`snakemake -n` with a `budget`: the same table (and verdict) once the dry run has listed its
    jobs. Snakemake calls no handler on a dry run, so this runs at the process's exit, from the DAG
    the dry run built. Returns whether it was registered."""
    import atexit

    if not read_budget(project.config, project.config_file) or not is_dry_run(args):
        return False

    def show() -> None:
        if getattr(workflow, "dag", None) is None:  # the dry run stopped before its DAG
            return
        try:
            check_budget(workflow, project, layers, probe=False)
        except Exception as exc:  # a dry run only reports: the refusal is for the real run
            print(f"tunebench: {one_line(exc)} (dry run: nothing was refused)", file=sys.stderr)

    atexit.register(show)
    return True
