"""Rule summary_build: the collected summary, its plots and the site -> results/summary.json and
results/summary.md (the tables, with the plots embedded)."""
from tunebench.core.job import run_job


def main(sm):
    from pathlib import Path

    from tunebench.core.atomic import read_json
    from tunebench.report.summary import with_artifacts, write_summary

    summary = with_artifacts(read_json(sm.input.summary), results_dir=Path(sm.output.json).parent,
                             plots=list(sm.input.plots), site_dir=sm.input.site)
    write_summary(summary, sm.output.json, sm.output.md)


run_job(snakemake, main)  # noqa: F821
