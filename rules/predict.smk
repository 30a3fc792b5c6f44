rule predictions_generate:
    """One cell: a system answers a task's test items under one prompting condition."""
    input:
        unpack(get_adapter),
        model=get_model_dir,
        train=LAYOUT.prepared(split="train"),
        test=LAYOUT.prepared(split="test"),
        manifest=LAYOUT.prepared(split="manifest"),
        prompt=get_prompt_file,
    output:
        rows=LAYOUT.prediction_rows(),
        meta=LAYOUT.prediction_meta(),
    params:
        task=get_task_predict,
        prompt=get_prompt_spec,
        model=get_system_model_param,
        shots=get_shots,
        method=get_method,
        fewshot_seed=config["prompting"]["fewshot_seed"],
        max_items=MAX_ITEMS,
    threads: config["threads"]["predict"]
    resources:
        mem_mb=3000,
        gpu=get_predict_gpus,
    log:
        LAYOUT.log("predictions_generate", "{system}/{task}/{prompting}"),
    benchmark:
        LAYOUT.timing("predictions_generate", "{system}/{task}/{prompting}")
    conda:
        get_predict_env
    script:
        "../scripts/predictions_generate.py"


rule predictions_score:
    """Metrics with bootstrap CIs and per-item outcomes for one cell."""
    input:
        unpack(get_score_leakage),  # leakage.exclude: the cell's overlap reports
        rows=rules.predictions_generate.output.rows,
        meta=rules.predictions_generate.output.meta,
        test=LAYOUT.prepared(split="test"),
        manifest=LAYOUT.prepared(split="manifest"),
    output:
        LAYOUT.task_score(),
    params:
        max_items=MAX_ITEMS,
        bootstrap=config["bootstrap"],
        task=get_task_score,
        leakage_exclude=config["leakage"]["exclude"],
    log:
        LAYOUT.log("predictions_score", "{system}/{task}/{prompting}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/predictions_score.py"
