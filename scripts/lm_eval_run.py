"""Rule lm_eval_run: one benchmark for one system through lm-evaluation-harness."""
import os

from tunebench.job import run_job

# lm-eval reads its datasets from local files here; never let it reach for the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main(sm):
    from tunebench.lm_eval_run import run_lm_eval

    spec = sm.params.spec
    run_lm_eval(benchmark=sm.wildcards.benchmark, model_dir=sm.input.model, out_dir=sm.output[0],
                nltk_dir="resources/nltk_data", limit=spec["limit"], max_gen_toks=spec["max_gen_toks"],
                batch_size=spec["batch_size"], threads=sm.threads, chat_template=spec["chat_template"])


run_job(snakemake, main)  # noqa: F821
