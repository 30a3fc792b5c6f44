"""`tunebench plan`: the jobs a run would run and what they will cost, before it starts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path


def add_parser(sub, config_overrides: Callable[[list[str] | None], dict]) -> None:
    """`plan` on the command line's subparsers; `config_overrides` reads `--config KEY=VALUE ...` as
    the other commands do (tunebench.cli)."""
    plan = sub.add_parser("plan", help="every job a run would run, with its estimated time, GPU hours and API "
                          "dollars (a dry run: nothing runs)",
                          description="The jobs `snakemake --cores N [TARGET ...]` would run (Snakemake's own dry "
                          "run decides which), each with its estimated wall time, device, GPU hours and API "
                          "dollars, from earlier runs' measurements; then the totals. With a `budget` in the config, "
                          "also whether the run fits it (exit status 1 when it does not).")
    plan.add_argument("targets", nargs="*", metavar="TARGET", help="as for snakemake (default: the whole run)")
    plan.add_argument("--cores", type=int, default=1, help="the cores the run will have (default: 1)")
    plan.add_argument("--suite", help="the suite (default: the config's `suite`)")
    plan.add_argument("--configfile", nargs="+", help="config file(s), as for snakemake (default: configs/config.yaml)")
    plan.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="config overrides, as for snakemake")
    plan.add_argument("--forceall", action="store_true", help="every job, as if nothing were built yet")
    plan.add_argument("--no-probe", action="store_true", help="never load a model to calibrate it (a model "
                      "without records gets the default estimate)")
    plan.add_argument("--json", action="store_true", help="the plan as JSON on stdout")
    plan.set_defaults(run=lambda args: run_plan(args, config_overrides(args.config)))


def run_plan(args, overrides: dict) -> int:
    from tunebench.plan.budget import format_plan, one_line, over_budget, plan_jobs, read_budget
    from tunebench.plan.dag import dry_dag
    from tunebench.plan.probe import prober

    root = Path(args.root).resolve()
    if args.suite:
        overrides["suite"] = args.suite
    try:
        jobs, found = dry_dag(root, config=overrides, configfiles=args.configfile, targets=args.targets,
                                forceall=args.forceall, cores=args.cores)
    except SystemExit as exc:  # the Snakefile's own one-line config errors
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except Exception as exc:  # Snakemake's (a target no rule makes, a cycle): its message, no stack
        print(f"tunebench plan: Snakemake cannot plan this run: {exc}", file=sys.stderr)
        return 2
    project, layers = found["PROJECT"], found["CONFIG_LAYERS"]
    plan = plan_jobs(project, jobs, root, args.cores, probe=prober(project, root, run=not args.no_probe))
    budget = read_budget(project.config, project.config_file)
    verdict = over_budget(plan, budget, project.config_file) if budget else None
    if verdict is not None:
        verdict = layers.blame(verdict)  # named by the file (or --config) that set the budget
    if args.json:
        print(json.dumps({**plan.to_dict(), "budget": budget, "over_budget": one_line(verdict) if verdict else None},
                         indent=1))
    else:
        print(format_plan(plan))
        if budget:
            print(f"tunebench: {one_line(verdict)}" if verdict else
                  "budget: the run fits (" + ", ".join(f"{k} {v:g}" for k, v in budget.items()) + ")")
    return 1 if verdict else 0


__all__ = ["add_parser", "run_plan"]
