"""Rule lm_eval_run: one benchmark for one system through lm-evaluation-harness, watched."""
from pathlib import Path

from tunebench.core.job import run_job
from tunebench.data.models import model_input


def main(sm):
    from tunebench.benchmarks.run import hf_model, run_lm_eval, vllm_model
    from tunebench.core.spec import Model

    model = Model.from_param(sm.params.model)
    adapter = sm.input.get("adapter")
    model_dir = model_input(sm)

    spec, limit = sm.params.run["spec"], sm.params.run["limit"]
    # A local benchmark's rows were checked when the workflow loaded its config.
    data_files = {role: str(Path(sm.input[role]).resolve()) for role in ("test", "fewshot")
                  if role in sm.input.keys()}
    run_lm_eval(benchmark=sm.wildcards.benchmark, spec=spec, model_dir=model_dir, adapter_dir=adapter,
                model=vllm_model(model_dir, adapter, model.dtype, model.chat_template_kwargs) if model.backend == "vllm"
                else hf_model(model_dir, adapter, chat_template_kwargs=model.chat_template_kwargs),
                out_dir=sm.output[0], nltk_dir=sm.params.nltk_dir, cache_dir=sm.params.cache_dir, limit=limit,
                threads=sm.threads, stall_timeout_s=sm.config["watchdog"]["stall_timeout_s"], log_path=sm.log[0],
                data_files=data_files or None)


run_job(snakemake, main)  # noqa: F821
