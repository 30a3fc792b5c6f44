"""Rules hub_push / hub_pull: the suite's artifacts to or from the configured Hub repo
(tunebench.hub.sync). The rule passes what the sync needs as `params.scope` (SyncScope.to_param):
the project is not loaded again. Sync that is off, offline or not for this suite is a message,
not an error."""
from tunebench.core.job import run_job


def main(sm):
    import logging

    from tunebench.core.job import project_root
    from tunebench.hub.sync import HubSkip, SyncScope, pull, push

    scope = SyncScope.from_param(sm.params.scope)
    try:
        if sm.params.direction == "push":
            push(project_root(sm), scope)
        else:
            pull(project_root(sm), scope)
    except HubSkip as why:
        logging.getLogger("tunebench").warning("hub %s skipped: %s", sm.params.direction, why)


run_job(snakemake, main)  # noqa: F821
