rule baseline_compare:
    """A system's scores against baselines/<system>.json: PASS / FAIL / IMPROVED per metric."""
    input:
        unpack(get_baseline_file),
        scores=get_system_score_files,
    output:
        json=f"{RESULTS}/comparisons/{{system}}.json",
        md=f"{RESULTS}/comparisons/{{system}}.md",
    params:
        gates=config["gates"],
        bootstrap=config["bootstrap"],
    log:
        f"{RESULTS}/logs/baseline_compare/{{system}}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/baseline_compare.py"
