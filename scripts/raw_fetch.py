"""Rule raw_fetch: a task's source -> data/raw/<task>/ (files untouched + manifest.json)."""
from tunebench.core.job import project_root, run_job


def main(sm):
    from tunebench.data.sources import fetch_raw

    fetch_raw(sm.params.source, sm.output[0], root=project_root(sm))


run_job(snakemake, main)  # noqa: F821
