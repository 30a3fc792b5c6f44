from functools import lru_cache as _lru_cache


@_lru_cache(maxsize=None)
def _local_data_sha256(task):
    """A local source's files (relative to the project when inside it) -> their sha256, at plan time."""
    from tunebench.data.sources import local_data_files, sha256_file

    spec = PROJECT.tasks[task]
    root = os.path.realpath(workflow.basedir)
    files = local_data_files(spec.source, workflow.basedir, str(spec.file))
    return {os.path.relpath(os.path.realpath(f), root) if os.path.realpath(f).startswith(root + os.sep)
            else str(f): sha256_file(f) for f in files}


def get_raw_source(wildcards):
    """The task's source; a local one with its files' sha256, so that editing a file (even keeping its
    mtime, as `cp -p` or a checkout does) reruns that task's chain, and nothing else's."""
    source = get_task_source(wildcards)
    if source.get("kind") != "local":
        return source
    return {**source, "files_sha256": _local_data_sha256(wildcards.task)}


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
    output:
        train=LAYOUT.prepared(split="train"),
        val=LAYOUT.prepared(split="val"),
        test=LAYOUT.prepared(split="test"),
        manifest=LAYOUT.prepared(split="manifest"),
    params:
        task=get_task_data,
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
