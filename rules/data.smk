rule raw_fetch:
    """A task's raw rows, untouched, from its source (generated, package, hub or local)."""
    output:
        directory("data/raw/{task}"),
    params:
        source=get_task_source,
    log:
        "logs/raw_fetch/{task}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/raw_fetch.py"


rule split_prepare:
    """Raw rows -> checked, stratified train/val/test JSONL with a manifest of counts."""
    input:
        raw="data/raw/{task}",
    output:
        train="data/prepared/{task}/train.jsonl",
        val="data/prepared/{task}/val.jsonl",
        test="data/prepared/{task}/test.jsonl",
        manifest="data/prepared/{task}/manifest.json",
    params:
        spec=get_split_params,
    log:
        "logs/split_prepare/{task}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/split_prepare.py"


rule train_subset:
    """A training cap (e.g. 500): stratified, and smaller caps are subsets of larger ones."""
    input:
        train="data/prepared/{task}/train.jsonl",
    output:
        "data/prepared/{task}/train-{n}.jsonl",
    log:
        "logs/train_subset/{task}-{n}.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/train_subset.py"
