"""Rule train_subset: train.jsonl -> train-<n>.jsonl (stratified; smaller caps nest in larger)."""
from tunebench.core.job import load_job_project, run_job


def main(sm):
    from tunebench.data.prepare import write_train_subset

    task = load_job_project(sm).tasks[sm.wildcards.task]
    write_train_subset(task, sm.input.train, int(sm.wildcards.n), sm.output[0])


run_job(snakemake, main)  # noqa: F821
