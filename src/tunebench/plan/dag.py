"""The jobs a run would run, as Snakemake itself decides them.

Two ways in, one result (a list of PlannedJob):
- `planned_jobs(workflow.dag)` inside the workflow (its onstart handler: the DAG of the run that is
  about to start, before its first job);
- `dry_dag(...)` for `tunebench plan`: the Snakefile loaded through Snakemake's API and its DAG built
  as a dry run builds it (no lock, no job, nothing written but Snakemake's own log).

Snakemake has no public call that returns a DAG's jobs: `dry_dag` uses `Workflow._prepare_dag` and
`_build_dag`, the two calls every one of Snakemake's DAG commands (--summary, --dag, --list-conda-envs)
starts with; checked against Snakemake 9.27.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PlannedJob:
    jobid: int
    rule: str
    wildcards: dict[str, str]
    outputs: tuple[str, ...]
    benchmark: str | None
    gpu: int
    threads: int
    deps: tuple[int, ...]  # jobids of the planned jobs this one waits for

    @property
    def name(self) -> str:
        """The job as one short string: rule and wildcard values (what a log line names)."""
        values = "/".join(str(v) for v in self.wildcards.values())
        return f"{self.rule}[{values}]" if values else self.rule


def _gpu(job: Any) -> int:
    try:
        value = job.resources.get("gpu", 0)
    except (AttributeError, TypeError):
        return 0
    return value if isinstance(value, int) else 0


def planned_jobs(dag: Any) -> list[PlannedJob]:
    """The DAG's jobs that need to run, in a dependency order (each after the jobs it waits for)."""
    todo = list(dag.needrun_jobs(exclude_finished=False))  # a dry run marks its jobs finished
    ids = {job: i for i, job in enumerate(todo)}
    jobs = []
    for job in todo:
        deps = tuple(sorted(ids[d] for d in dag.dependencies.get(job, {}) if d in ids))
        jobs.append(PlannedJob(
            jobid=ids[job], rule=job.rule.name, wildcards={k: str(v) for k, v in dict(job.wildcards_dict).items()},
            outputs=tuple(str(f) for f in job.output), benchmark=str(job.benchmark) if job.benchmark else None,
            gpu=_gpu(job), threads=int(getattr(job, "threads", 1) or 1), deps=deps))
    order: list[PlannedJob] = []
    done: set[int] = set()
    pending = {j.jobid: j for j in jobs}
    while pending:  # a DAG: every round places at least the jobs with no pending dependency
        ready = [j for j in pending.values() if all(d in done for d in j.deps)]
        for j in sorted(ready, key=lambda j: j.jobid):
            order.append(j)
            done.add(j.jobid)
            del pending[j.jobid]
    return order


def dry_dag(root: str | Path, *, config: dict | None = None, configfiles: list[str] | None = None,
            targets: list[str] | None = None, forceall: bool = False, cores: int = 1) -> tuple[list[PlannedJob], dict]:
    """The jobs `snakemake --cores N [targets]` would run in the project `root` (with `forceall`,
    every job of the targets, as --forceall), and the Snakefile's globals (PROJECT, CONFIG_LAYERS). Errors of the
    config come out as the Snakefile says them (`tunebench: ...`, as SystemExit)."""
    import os

    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    root = Path(root).resolve()
    files = [Path(f) if Path(f).is_absolute() else root / f for f in (configfiles or [])]
    quiet = OutputSettings(quiet={Quietness.ALL}, dryrun=True)
    here = os.getcwd()  # the API moves into `root` and leaves it only when its objects are collected
    with contextlib.ExitStack() as stack:
        stack.callback(os.chdir, here)
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        api = stack.enter_context(SnakemakeApi(quiet))
        workflow_api = api.workflow(resource_settings=ResourceSettings(cores=cores),
                                    config_settings=ConfigSettings(config=config or {}, configfiles=files),
                                    snakefile=root / "Snakefile", workdir=root)
        dag_api = workflow_api.dag(DAGSettings(targets=frozenset(targets or ()), forceall=forceall))
        workflow = dag_api.workflow_api._workflow
        workflow._prepare_dag(forceall=forceall, ignore_incomplete=False, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        return planned_jobs(workflow.dag), dict(workflow.globals)
