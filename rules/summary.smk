rule summary_build:
    """Every cell and its provenance: summary.json (schema-checked) and summary.md."""
    input:
        scores=get_score_files,
        prepared=expand("data/prepared/{task}/manifest.json", task=PROJECT.tasks),
        models=[f"resources/models/{m}" for m, spec in PROJECT.models.items() if not spec.is_api],
        adapters=[f"{RESULTS}/adapters/{s.model}/{s.adapter}" for s in SYSTEMS.values() if s.adapter],
        gates=expand(f"{RESULTS}/comparisons/{{system}}.json", system=SYSTEMS),
    output:
        json=f"{RESULTS}/summary.json",
        md=report(f"{RESULTS}/summary.md", category="Summary"),
    params:
        config_hash=PROJECT.fingerprint(),
        adapter_systems=[name for name, s in SYSTEMS.items() if s.adapter],
        bootstrap=config["bootstrap"],
    log:
        f"{RESULTS}/logs/summary_build.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/summary_build.py"
