rule summary_collect:
    """Every cell, comparison, gate, cost and agreement with provenance, schema-checked."""
    input:
        scores=get_score_files,
        prepared=expand("data/prepared/{task}/manifest.json", task=PROJECT.tasks),
        models=MODEL_DIRS.values(),
        adapters=[f"{RESULTS}/adapters/{s.model}/{s.adapter}" for s in SYSTEMS.values() if s.adapter],
        gates=expand(f"{RESULTS}/comparisons/{{system}}.json", system=SYSTEMS),
        agreement=get_agreement_files,
    output:
        f"{RESULTS}/summary/collected.json",
    params:
        config_hash=PROJECT.fingerprint(),
        model_names=list(MODEL_DIRS),
        adapter_systems=[name for name, s in SYSTEMS.items() if s.adapter],
        bootstrap=config["bootstrap"],
        pricing=get_pricing,
        api_models=[m for m, spec in PROJECT.models.items() if spec.is_api],
    log:
        f"{RESULTS}/logs/summary_collect.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/summary_collect.py"


rule summary_build:
    """The end of the run: summary.json (with where its plots and dashboard are) and summary.md."""
    input:
        summary=rules.summary_collect.output[0],
        plots=rules.plots_render.output.plots,
        site=rules.site_build.output.site,
    output:
        json=f"{RESULTS}/summary.json",
        md=report(f"{RESULTS}/summary.md", category="Summary"),
    log:
        f"{RESULTS}/logs/summary_build.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/summary_build.py"
