"""A run's totals, its table, and the `budget` check.

Totals: wall time = max(thread-weighted job seconds / cores, the longest dependency chain); GPU
hours = the seconds of the jobs on a GPU; API dollars, expected and at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunebench.core.errors import ConfigError
from tunebench.core.spec import Project
from tunebench.plan.dag import PlannedJob
from tunebench.plan.estimate import Estimator, JobEstimate
from tunebench.plan.records import Records

BUDGET_FIELDS = ("usd", "gpu_hours", "wall_hours")


@dataclass
class Plan:
    jobs: list[JobEstimate]
    cores: int
    wall_s: float
    serial_s: float  # thread-weighted job seconds / cores
    critical_path_s: float
    gpu_hours: float
    usd: float
    usd_upper: float
    usd_unknown: list[str]  # jobs whose dollars could not be estimated

    def to_dict(self) -> dict:
        return {"cores": self.cores, "wall_s": round(self.wall_s, 1), "serial_s": round(self.serial_s, 1),
                "critical_path_s": round(self.critical_path_s, 1), "gpu_hours": round(self.gpu_hours, 4),
                "usd": round(self.usd, 6), "usd_upper": round(self.usd_upper, 6), "usd_unknown": self.usd_unknown,
                "jobs": [{"rule": e.job.rule, "wildcards": e.job.wildcards, "seconds": round(e.seconds, 1),
                          "device": e.device, "gpu_hours": round(e.gpu_hours, 4), "usd": e.usd,
                          "usd_upper": e.usd_upper, "source": e.source, "basis": e.basis} for e in self.jobs]}


def make_plan(estimates: list[JobEstimate], cores: int) -> Plan:
    """Totals: wall time for `cores` (no less than the longest chain), GPU hours, API dollars."""
    cores = max(int(cores or 1), 1)
    by_id = {e.job.jobid: e for e in estimates}
    finish: dict[int, float] = {}
    for e in estimates:  # in dependency order (planned_jobs)
        finish[e.job.jobid] = e.seconds + max((finish.get(d, 0.0) for d in e.job.deps if d in by_id), default=0.0)
    critical = max(finish.values(), default=0.0)
    serial = sum(e.seconds * min(max(e.job.threads, 1), cores) for e in estimates) / cores
    known = [e for e in estimates if e.usd is not None]
    return Plan(jobs=estimates, cores=cores, wall_s=max(serial, critical), serial_s=serial, critical_path_s=critical,
                gpu_hours=sum(e.gpu_hours for e in estimates), usd=sum(e.usd or 0.0 for e in known),
                usd_upper=sum(e.usd_upper or 0.0 for e in known),
                usd_unknown=[e.job.name for e in estimates if e.usd is None])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def format_plan(plan: Plan) -> str:
    """The table: one line per job, then the totals."""
    rows = [("job", "device", "wall", "GPU h", "API $ (exp / max)", "estimate from")]
    for e in plan.jobs:
        usd = "?" if e.usd is None else (f"{e.usd:.4f} / {e.usd_upper:.4f}" if e.device == "api" else "-")
        rows.append((e.job.name, e.device, _duration(e.seconds), f"{e.gpu_hours:.3f}" if e.device == "gpu" else "-",
                     usd, f"{e.source}: {e.basis}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
    lines.append(f"{len(plan.jobs)} jobs; wall {_duration(plan.wall_s)} on {plan.cores} core(s) "
                 f"(job time / cores {_duration(plan.serial_s)}, longest chain {_duration(plan.critical_path_s)}); "
                 f"GPU {plan.gpu_hours:.3f} h; API ${plan.usd:.4f} expected, ${plan.usd_upper:.4f} at most"
                 + (f" (unknown for {len(plan.usd_unknown)} job(s): {', '.join(plan.usd_unknown[:3])})"
                    if plan.usd_unknown else ""))
    return "\n".join(lines)


def read_budget(config: dict, config_file: str = "configs/config.yaml") -> dict[str, float]:
    """The config's `budget` limits that are set, as numbers (Snakemake's --config reads a mapping's
    values as text: `--config 'budget={usd: 5}'` gives "5")."""
    budget = config.get("budget") or {}
    out = {}
    for key in BUDGET_FIELDS:
        value = budget.get(key)
        if value is None:
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{value!r} is not a number", file=config_file, field=f"budget.{key}",
                              fix=f"set budget.{key} to a number, or null for no limit") from None
        if not math.isfinite(out[key]) or out[key] < 0:
            raise ConfigError(f"{value!r} is not a limit", file=config_file, field=f"budget.{key}",
                              fix=f"set budget.{key} to a number >= 0, or null for no limit")
    return out


def over_budget(plan: Plan, budget: dict[str, float], config_file: str) -> ConfigError | None:
    """The first limit the plan exceeds, as one error naming the jobs that cost most; None if it fits."""
    checks = [("usd", plan.usd, lambda e: e.usd or 0.0, lambda v: f"${v:.4g}"),
              ("gpu_hours", plan.gpu_hours, lambda e: e.gpu_hours, lambda v: f"{v:.3g} GPU h"),
              ("wall_hours", plan.wall_s / 3600.0, lambda e: e.seconds / 3600.0, lambda v: f"{v:.3g} h")]
    for key, total, cost, show in checks:
        if key not in budget or total <= budget[key]:
            continue
        top = sorted((e for e in plan.jobs if cost(e) > 0), key=cost, reverse=True)[:3]
        names = ", ".join(f"{e.job.name} {show(cost(e))}" for e in top)
        return ConfigError(f"the run is estimated at {show(total)}, over the budget of {show(budget[key])} "
                           f"({len(plan.jobs)} jobs; most: {names})", file=config_file, field=f"budget.{key}",
                           fix=f"raise budget.{key}, or run less (a target, fewer models or items); "
                               "`tunebench plan` lists every job")
    return None


def one_line(exc: Exception) -> str:
    """A TunebenchError's message on one line (its fix after a semicolon)."""
    return str(exc).replace("\n  Fix: ", "; fix: ")


def plan_jobs(project: Project, jobs: list[PlannedJob], root: str | Path, cores: int,
              probe: Callable[[str], dict | None] | None = None, records: Records | None = None) -> Plan:
    """`jobs` estimated from the measurements under `root` (or `records`), with their totals."""
    from tunebench.plan.records import load_records

    estimator = Estimator(project, records if records is not None else load_records(root), root, probe)
    return make_plan([estimator.estimate(j) for j in jobs], cores)


__all__ = ["BUDGET_FIELDS", "Plan", "format_plan", "make_plan", "one_line", "over_budget", "plan_jobs",
           "read_budget"]
