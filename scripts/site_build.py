"""Rule site_build: the collected summary + site/src + Chart.js (npm) -> results/site/."""
from tunebench.core.job import project_root, run_job


def main(sm):
    from tunebench.core.atomic import read_json
    from tunebench.report.site import build_site

    root = project_root(sm)
    names = build_site(read_json(sm.input.summary), sm.output.site, src_dir=root / "site" / "src",
                       chartjs=sm.input.chartjs, single=sm.output.single)
    print(f"site: {', '.join(names)} -> {sm.output.site}/index.html; one-file copy {sm.output.single}")


run_job(snakemake, main)  # noqa: F821
