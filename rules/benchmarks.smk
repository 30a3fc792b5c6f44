rule lm_eval_run:
    """A general benchmark through lm-evaluation-harness; its own results_*.json and samples_*.jsonl."""
    input:
        unpack(get_benchmark_data),
        unpack(get_adapter),
        model=get_model_dir,
    output:
        directory(LAYOUT.lm_eval_dir()),
    params:
        run=get_lm_eval_spec,
        model=lambda wildcards: PROJECT.models[get_system_model(wildcards)].to_param("backend", "dtype", "chat_template_kwargs"),
        nltk_dir=NLTK_DIR,
        # the request cache of a stalled or failed run, so a rerun generates only what is missing
        cache_dir=lambda wildcards: LAYOUT.lm_eval_cache(wildcards.system, wildcards.benchmark),
    threads: config["threads"]["lm_eval"]
    resources:
        mem_mb=3000,
        gpu=get_predict_gpus,
    log:
        LAYOUT.log("lm_eval_run", "{system}/{benchmark}"),
    benchmark:
        LAYOUT.timing("lm_eval_run", "{system}/{benchmark}")
    conda:
        get_predict_env
    script:
        "../scripts/lm_eval_run.py"


rule lm_eval_score:
    """lm-eval's files -> a score record (CIs over items, lm-eval's stderr, unscored items counted)."""
    input:
        rules.lm_eval_run.output,
    output:
        LAYOUT.benchmark_score(),
    params:
        bootstrap=config["bootstrap"],
    log:
        LAYOUT.log("lm_eval_score", "{system}/{benchmark}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/lm_eval_score.py"
