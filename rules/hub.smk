# Persistence between hosts through a Hugging Face Hub repo (config `hub`; README "Keeping results").
#   snakemake --cores 1 hub_push     run the suite to its summary, then upload what changed
#   snakemake --cores 1 hub_pull     on a new host: download it; `snakemake -n` then plans nothing
# The jobs get what they sync as params (SyncScope.to_param) and never load the project again. The
# scope holds the `hub` settings, which are no rerun trigger of any result; these rules' only
# outputs are logs, so a changed scope reruns nothing.
HUB_SCOPE = SyncScope.from_project(PROJECT).to_param()


rule hub_push:
    """Upload the suite's prepared data, adapters, predictions, scores and summaries to hub.repo
    (only files that changed travel). Off, offline or the test suite: a message, nothing else."""
    input:
        LAYOUT.summary(),
    params:
        direction="push",
        scope=HUB_SCOPE,
    localrule: True
    log:
        LAYOUT.shared_log("hub", f"{PROJECT.suite_name}-push"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/hub_sync.py"


rule hub_pull:
    """Download the suite's artifacts from hub.repo, dated so that Snakemake sees them as up to date;
    a finished local output that differs is kept, never replaced."""
    params:
        direction="pull",
        scope=HUB_SCOPE,
    localrule: True
    log:
        LAYOUT.shared_log("hub", f"{PROJECT.suite_name}-pull"),
    conda:
        "../envs/tunebench.yaml"
    script:
        "../scripts/hub_sync.py"
