"""Rule adapter_train: a LoRA adapter for one (model, task, train size)."""
from tunebench.core.job import run_job
from tunebench.data.models import model_input


def main(sm):
    from pathlib import Path

    from tunebench.core.integrity import verify_split
    from tunebench.core.spec import Task
    from tunebench.train.lora import train_adapter

    if Path(sm.input.manifest).is_file():  # as split_prepare wrote it (not edited since)
        verify_split(sm.input.val, sm.input.manifest, "val")
        if Path(sm.input.train).name == "train.jsonl":  # a cap (train-<n>.jsonl) is not in the manifest
            verify_split(sm.input.train, sm.input.manifest, "train")

    train_adapter(task=Task.from_param(sm.params.task).with_labels(sm.input.manifest), prompt_spec=sm.params.prompt,
                  hp=sm.params.training, hp_file=sm.params.training_file, model_dir=model_input(sm),
                  train_path=sm.input.train, val_path=sm.input.val, out_dir=sm.output[0],
                  work_root=sm.params.work_root, threads=sm.threads,
                  chat_template_kwargs=sm.params.get("chat_template_kwargs"),
                  mem_mb=sm.resources.get("mem_mb"))  # a run estimated to need more is refused before it loads


run_job(snakemake, main)  # noqa: F821
