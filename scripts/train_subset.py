"""Rule train_subset: train.jsonl -> train-<n>.jsonl (stratified; smaller caps nest in larger)."""
from tunebench.core.job import run_job


def main(sm):
    from tunebench.core.spec import Task
    from tunebench.data.prepare import write_train_subset

    write_train_subset(Task.from_param(sm.params.task), sm.input.train, int(sm.wildcards.n), sm.output[0])


run_job(snakemake, main)  # noqa: F821
