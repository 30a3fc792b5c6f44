"""Rule train_subset: train.jsonl -> train-<n>.jsonl (stratified; smaller caps nest in larger)."""
from tunebench.core.job import run_job


def main(sm):
    from pathlib import Path

    from tunebench.core.integrity import verify_split
    from tunebench.core.spec import Task
    from tunebench.data.prepare import write_train_subset

    manifest = Path(sm.input.train).with_name("manifest.json")  # written with it by split_prepare
    if manifest.is_file():
        verify_split(sm.input.train, manifest, "train")

    write_train_subset(Task.from_param(sm.params.task), sm.input.train, int(sm.wildcards.n), sm.output[0])


run_job(snakemake, main)  # noqa: F821
