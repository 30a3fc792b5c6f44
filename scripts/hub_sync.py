"""Rules hub_push / hub_pull: the suite's artifacts to or from the configured Hub repo
(tunebench.hub.sync). Sync that is off, offline or not for this suite is a message, not an error."""
from tunebench.core.job import run_job


def main(sm):
    import logging

    from tunebench.core.job import load_job_project, project_root
    from tunebench.hub.sync import HubSkip, pull, push

    project = load_job_project(sm)
    try:
        if sm.params.direction == "push":
            push(project_root(sm), project)
        else:
            pull(project_root(sm), project)
    except HubSkip as why:
        logging.getLogger("tunebench").warning("hub %s skipped: %s", sm.params.direction, why)


run_job(snakemake, main)  # noqa: F821
