rule lm_eval_run:
    """A general benchmark through lm-evaluation-harness; its own results_*.json and samples_*.jsonl."""
    input:
        unpack(get_benchmark_data),
        unpack(get_adapter),
        model=get_model_dir,
    output:
        directory(f"{RESULTS}/lm_eval/{{system}}/{{benchmark}}"),
    params:
        run=get_lm_eval_spec,
        # the request cache of a stalled or failed run, so a rerun generates only what is missing
        cache_dir=lambda wildcards: f"{RESULTS}/lm_eval/.resume/{wildcards.system}/{wildcards.benchmark}",
    threads: config["threads"]["lm_eval"]
    resources:
        mem_mb=3000,
        gpu=get_predict_gpus,
    log:
        f"{RESULTS}/logs/lm_eval_run/{{system}}/{{benchmark}}.log",
    benchmark:
        f"{RESULTS}/timings/lm_eval_run/{{system}}/{{benchmark}}.tsv"
    conda:
        get_predict_env
    script:
        "../scripts/lm_eval_run.py"


rule lm_eval_score:
    """lm-eval's files -> a score record (CIs over items, lm-eval's stderr, unscored items counted)."""
    input:
        rules.lm_eval_run.output,
    output:
        f"{RESULTS}/scores/{{system}}/{{benchmark}}/lm_eval.json",
    params:
        bootstrap=config["bootstrap"],
    log:
        f"{RESULTS}/logs/lm_eval_score/{{system}}/{{benchmark}}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/lm_eval_score.py"
