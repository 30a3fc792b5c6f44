"""Rule classic_fit: the classic baseline (TF-IDF + logistic regression) for one (task, train size)."""
from tunebench.core.job import run_job


def main(sm):
    from pathlib import Path

    from tunebench.core.integrity import verify_split
    from tunebench.core.spec import Task
    from tunebench.train.classic import fit_classic

    if Path(sm.input.train).name == "train.jsonl":  # a cap (train-<n>.jsonl) is not in the manifest
        verify_split(sm.input.train, sm.input.manifest, "train")
    fit_classic(task=Task.from_param(sm.params.task), train_path=sm.input.train, out_dir=sm.output[0],
                settings=sm.params.settings)


run_job(snakemake, main)  # noqa: F821
