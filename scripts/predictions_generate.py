"""Rule predictions_generate: one cell's predictions (system x task x prompting)."""
from tunebench.core.job import load_job_project, model_input, run_job


def main(sm):
    from tunebench.predict.generate import generate_predictions

    project = load_job_project(sm)
    generate_predictions(
        task=project.tasks[sm.wildcards.task], model=project.models[sm.params.model],
        model_dir=model_input(sm), prompt_spec=project.prompts[sm.wildcards.task],
        train_path=sm.input.train, test_path=sm.input.test, shots=sm.params.shots,
        fewshot_seed=sm.params.fewshot_seed, max_items=sm.params.max_items, threads=sm.threads,
        out_rows=sm.output.rows, out_meta=sm.output.meta, system=sm.wildcards.system,
        prompting=sm.wildcards.prompting, adapter_dir=sm.input.get("adapter"),
        stall_timeout_s=sm.config["watchdog"]["stall_timeout_s"],
    )


run_job(snakemake, main)  # noqa: F821
