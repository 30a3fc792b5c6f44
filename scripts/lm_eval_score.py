"""Rule lm_eval_score: lm-eval's files -> a tunebench score record."""
from tunebench.core.job import run_job


def main(sm):
    from tunebench.benchmarks.score import score_lm_eval
    from tunebench.core.spec import System

    system = System.parse(sm.wildcards.system)
    score_lm_eval(run_dir=sm.input[0], out_path=sm.output[0], system=system.name, model=system.model,
                  adapter=system.adapter, benchmark=sm.wildcards.benchmark, bootstrap=sm.params.bootstrap)


run_job(snakemake, main)  # noqa: F821
