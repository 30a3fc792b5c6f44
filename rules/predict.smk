rule predictions_generate:
    """One cell: a system answers a task's test items under one prompting condition."""
    input:
        unpack(get_adapter),
        model=get_model_dir,
        train="data/prepared/{task}/train.jsonl",
        test="data/prepared/{task}/test.jsonl",
        prompt=get_prompt_file,
    output:
        rows=f"{RESULTS}/predictions/{{system}}/{{task}}/{{prompting}}.jsonl",
        meta=f"{RESULTS}/predictions/{{system}}/{{task}}/{{prompting}}.meta.json",
    params:
        model=get_system_model,
        shots=get_shots,
        fewshot_seed=config["prompting"]["fewshot_seed"],
        max_items=MAX_ITEMS,
        spec=get_predict_spec,
    threads: config["threads"]["predict"]
    resources:
        mem_mb=3000,
        gpu=get_predict_gpus,
    log:
        f"{RESULTS}/logs/predictions_generate/{{system}}/{{task}}/{{prompting}}.log",
    benchmark:
        f"{RESULTS}/timings/predictions_generate/{{system}}/{{task}}/{{prompting}}.tsv"
    conda:
        get_predict_env
    script:
        "../scripts/predictions_generate.py"


rule predictions_score:
    """Metrics with bootstrap CIs and per-item outcomes for one cell."""
    input:
        rows=rules.predictions_generate.output.rows,
        meta=rules.predictions_generate.output.meta,
        test="data/prepared/{task}/test.jsonl",
    output:
        f"{RESULTS}/scores/{{system}}/{{task}}/{{prompting}}.json",
    params:
        max_items=MAX_ITEMS,
        bootstrap=config["bootstrap"],
        spec=get_score_spec,
    log:
        f"{RESULTS}/logs/predictions_score/{{system}}/{{task}}/{{prompting}}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/predictions_score.py"


rule agreement_check:
    """The same model on two backends over the same items: agreement rate and score difference."""
    input:
        unpack(get_agreement_cells),
    output:
        f"{RESULTS}/agreement/{{a}}__{{b}}.json",
    params:
        min_rate=config["agreement"]["min_rate"],
        bootstrap=config["bootstrap"],
    log:
        f"{RESULTS}/logs/agreement_check/{{a}}__{{b}}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/agreement_check.py"
