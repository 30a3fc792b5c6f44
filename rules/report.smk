from tunebench.report.plots import plot_names

PLOT_NAMES = plot_names(list(PROJECT.tasks) + list(PROJECT.benchmarks))


rule plots_render:
    """The key figures as PNGs (also embedded in summary.md and the Snakemake report)."""
    input:
        summary=LAYOUT.collected(),
    output:
        plots=[
            report(LAYOUT.plot(name), category="Plots", caption="../site/report/plots.rst")
            for name in PLOT_NAMES
        ],
    log:
        LAYOUT.log("plots_render"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/plots_render.py"


rule site_build:
    """The static dashboard: works from file:// and any static host, offline."""
    input:
        summary=LAYOUT.collected(),
        # installed by `make install` (npm ci from site/package-lock.json), never fetched by a rule:
        # the workflow runs with no network at all
        chartjs=CHARTJS,
        sources=expand("site/src/{name}", name=["index.html", "app.js", "style.css"]),
    output:
        site=directory(LAYOUT.site_dir()),
        # the same dashboard as one file (Chart.js and the data inlined): the Snakemake report's copy
        single=report(LAYOUT.dashboard(), category="Dashboard", caption="../site/report/site.rst"),
    log:
        LAYOUT.log("site_build"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/site_build.py"
