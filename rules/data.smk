rule raw_fetch:
    """A task's raw rows, untouched, from its source (generated, package, hub or local)."""
    output:
        directory(LAYOUT.raw()),
    params:
        source=get_raw_source,
    log:
        LAYOUT.shared_log("raw_fetch", "{task}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/raw_fetch.py"


rule split_prepare:
    """Raw rows -> checked, stratified train/val/test JSONL with a manifest of counts."""
    input:
        raw=LAYOUT.raw(),
        against=get_decontaminate_against_tests,
    output:
        train=LAYOUT.prepared(split="train"),
        val=LAYOUT.prepared(split="val"),
        test=LAYOUT.prepared(split="test"),
        manifest=LAYOUT.prepared(split="manifest"),
    params:
        task=get_task_data,
        against=get_decontaminate_against,
    log:
        LAYOUT.shared_log("split_prepare", "{task}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/split_prepare.py"


rule train_subset:
    """A training cap (e.g. 500): stratified, and smaller caps are subsets of larger ones."""
    input:
        train=LAYOUT.prepared(split="train"),
    output:
        LAYOUT.prepared(split="train-{n}"),
    params:
        task=get_task_data,
    log:
        LAYOUT.shared_log("train_subset", "{task}-{n}"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/train_subset.py"
