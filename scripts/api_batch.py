"""Rules api_batch_submit and api_batch_collect: one cell of an API model with `batch: true`, sent
through OpenAI's Batch API (tunebench.backends.openai_batch). Both phases make the cell as
predictions_generate does, so the requests and cache keys are the synchronous path's."""
import logging

from tunebench.core.job import run_job

log = logging.getLogger("tunebench.api_batch")


def main(sm):
    from tunebench.backends.openai_batch import Submitted
    from tunebench.core.integrity import verify_split
    from tunebench.core.spec import Model, Task
    from tunebench.predict.generate import generate_predictions

    for split in ("train", "test"):  # the prepared splits as split_prepare wrote them (not edited since)
        verify_split(sm.input[split], sm.input.manifest, split)
    model = Model.from_param(sm.params.model)
    submit = sm.rule == "api_batch_submit"
    batch = ({"phase": "submit", "receipt": sm.output.receipt, "requests": sm.output.requests} if submit else
             {"phase": "collect", "receipt": sm.input.receipt, "poll_s": model.source.get("batch_poll_s", 30)})
    # submit ends before any row is written (Submitted): its rows and meta paths are never used
    rows, meta = (f"{sm.output.receipt}.rows", f"{sm.output.receipt}.meta") if submit else (sm.output.rows,
                                                                                            sm.output.meta)
    try:
        generate_predictions(
            task=Task.from_param({**sm.params.task, "method": sm.params.method}).with_labels(sm.input.manifest),
            model=model, model_dir=None, prompt_spec=sm.params.prompt,
            train_path=sm.input.train, test_path=sm.input.test, shots=sm.params.shots,
            fewshot_seed=sm.params.fewshot_seed, max_items=sm.params.max_items, threads=sm.threads,
            out_rows=rows, out_meta=meta, system=sm.wildcards.system, prompting=sm.wildcards.prompting,
            progress=False, batch=batch,
        )
    except Submitted as done:
        log.info("%s", done)
        return
    if submit:
        raise RuntimeError("the submit phase ended without submitting")  # a bug, never a user's error


run_job(snakemake, main)  # noqa: F821
