"""Rule lm_eval_score: lm-eval's files -> a tunebench score record."""
from tunebench.job import run_job


def main(sm):
    from tunebench.lm_eval_run import score_lm_eval

    score_lm_eval(run_dir=sm.input[0], out_path=sm.output[0], system=sm.wildcards.system,
                  model=sm.wildcards.system, benchmark=sm.wildcards.benchmark,
                  bootstrap=sm.params.bootstrap)


run_job(snakemake, main)  # noqa: F821
