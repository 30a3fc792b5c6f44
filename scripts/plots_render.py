"""Rule plots_render: the collected summary -> results/plots/*.png (matplotlib)."""
from tunebench.core.job import run_job


def main(sm):
    from pathlib import Path

    from tunebench.core.atomic import read_json
    from tunebench.report.plots import render_plots

    render_plots(read_json(sm.input.summary), {Path(p).name: p for p in sm.output.plots})


run_job(snakemake, main)  # noqa: F821
