"""Rule adapter_merge: base model + LoRA adapter -> one merged model folder."""
from tunebench.core.job import run_job
from tunebench.data.models import model_input


def main(sm):
    from tunebench.train.lora import merge_adapter

    merge_adapter(model_input(sm), sm.input.adapter, sm.output[0])


run_job(snakemake, main)  # noqa: F821
