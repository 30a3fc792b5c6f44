"""Rule raw_fetch: a task's source -> data/raw/<task>/ (files untouched + manifest.json)."""
from tunebench.core.job import load_job_project, project_root, run_job


def main(sm):
    from tunebench.data.sources import fetch_raw

    task = load_job_project(sm).tasks[sm.wildcards.task]
    fetch_raw(task.source, sm.output[0], root=project_root(sm))


run_job(snakemake, main)  # noqa: F821
