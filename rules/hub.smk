# Persistence between hosts through a Hugging Face Hub repo (config `hub`; README "Keeping results").
#   snakemake --cores 1 hub_push     run the suite to its summary, then upload what changed
#   snakemake --cores 1 hub_pull     on a new host: download it; `snakemake -n` then plans nothing


rule hub_push:
    """Upload the suite's prepared data, adapters, predictions, scores and summaries to hub.repo
    (only files that changed travel). Off, offline or the test suite: a message, nothing else."""
    input:
        LAYOUT.summary(),
    params:
        direction="push",
    localrule: True
    log:
        f"logs/hub/{PROJECT.suite_name}-push.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/hub_sync.py"


rule hub_pull:
    """Download the suite's artifacts from hub.repo, dated so that Snakemake sees them as up to date;
    a finished local output that differs is kept, never replaced."""
    params:
        direction="pull",
    localrule: True
    log:
        f"logs/hub/{PROJECT.suite_name}-pull.log",
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/hub_sync.py"
