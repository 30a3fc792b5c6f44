"""Rule predictions_generate: one cell's predictions (system x task x prompting)."""
from tunebench.core.job import run_job
from tunebench.data.models import model_input


def main(sm):
    from tunebench.core.integrity import verify_split
    from tunebench.core.spec import Model, Task
    from tunebench.predict.generate import generate_predictions

    for split in ("train", "test"):  # the prepared splits as split_prepare wrote them (not edited since)
        verify_split(sm.input[split], sm.input.manifest, split)

    generate_predictions(
        task=Task.from_param({**sm.params.task, "method": sm.params.method}).with_labels(sm.input.manifest), model=Model.from_param(sm.params.model),
        model_dir=model_input(sm), prompt_spec=sm.params.prompt,
        train_path=sm.input.train, test_path=sm.input.test, shots=sm.params.shots,
        fewshot_seed=sm.params.fewshot_seed, max_items=sm.params.max_items, threads=sm.threads,
        out_rows=sm.output.rows, out_meta=sm.output.meta, system=sm.wildcards.system,
        prompting=sm.wildcards.prompting, adapter_dir=sm.input.get("adapter"),
        stall_timeout_s=sm.config["watchdog"]["stall_timeout_s"],
    )


run_job(snakemake, main)  # noqa: F821
