"""Rule adapter_train: a LoRA adapter for one (model, task, train size)."""
from tunebench.core.job import load_job_project, model_input, run_job


def main(sm):
    from tunebench.train.lora import train_adapter

    project = load_job_project(sm)
    train_adapter(task=project.tasks[sm.wildcards.task], prompt_spec=project.prompts[sm.wildcards.task],
                  hp=sm.params.training, hp_file=sm.params.training_file, model_dir=model_input(sm),
                  train_path=sm.input.train, val_path=sm.input.val, out_dir=sm.output[0],
                  work_root=sm.params.work_root, threads=sm.threads)


run_job(snakemake, main)  # noqa: F821
