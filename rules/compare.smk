rule baseline_compare:
    """A system's scores against baselines/<system>.json: PASS / FAIL / IMPROVED per metric."""
    input:
        unpack(get_baseline_file),
        unpack(get_gate_leakage),  # exact test items in its training data FAIL a fine-tuned system
        scores=get_system_score_files,
    output:
        json=LAYOUT.comparison(),
        md=LAYOUT.comparison(ext="md"),
    params:
        labels=get_task_labels(),
        gates=config["gates"],
        bootstrap=config["bootstrap"],
    log:
        LAYOUT.log("baseline_compare", "{system}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/baseline_compare.py"


rule agreement_check:
    """The same model on two backends over the same items: agreement rate and score difference."""
    input:
        unpack(get_agreement_cells),
    output:
        LAYOUT.agreement(),
    params:
        promptings=get_task_promptings(),
        labels=get_task_labels(),
        min_rate=config["agreement"]["min_rate"],
        bootstrap=config["bootstrap"],
    log:
        LAYOUT.log("agreement_check", "{a}__{b}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/agreement_check.py"
