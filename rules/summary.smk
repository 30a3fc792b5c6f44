rule summary_collect:
    """Every cell, comparison, gate, cost and agreement with provenance, schema-checked."""
    input:
        scores=get_score_files,
        prepared=[LAYOUT.prepared(task, "manifest") for task in PROJECT.tasks],
        models=MODEL_DIRS.values(),
        adapters=[LAYOUT.adapter_dir(s.model, s.adapter) for s in SYSTEMS.values() if s.adapter],
        gates=[LAYOUT.comparison(system) for system in SYSTEMS],
        agreement=get_agreement_files,
        leakage=LEAKAGE_FILES,
    output:
        LAYOUT.collected(),
    params:
        suite=PROJECT.suite_name,
        tasks={name: task.to_param(*TASK_SCORE) for name, task in PROJECT.tasks.items()},
        systems=list(SYSTEMS),
        config_hash=PROJECT.fingerprint(),
        model_names=list(MODEL_DIRS),
        adapter_systems=[name for name, s in SYSTEMS.items() if s.adapter],
        bootstrap=config["bootstrap"],
        pricing=get_pricing,
        api_models=[m for m, spec in PROJECT.models.items() if spec.is_api],
        decision=config["decision"],  # the constraints: a change reruns only the summary
    log:
        LAYOUT.log("summary_collect"),
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
        json=LAYOUT.summary(),
        md=report(LAYOUT.summary("md"), category="Summary"),
    log:
        LAYOUT.log("summary_build"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/summary_build.py"
