"""Rule agreement_check: the same model on two backends, compared cell by cell."""
from tunebench.core.job import run_job


def main(sm):
    from tunebench.compare.agreement import agreement_report
    from tunebench.core.atomic import write_json

    cells = [{"task": task, "prompting": p,
              **{f"{kind}_{side}": sm.input[f"{kind}_{side}_{task}_{p}"] for kind in ("score", "rows") for side in "ab"}}
             for task, promptings in sm.params.promptings.items() for p in promptings]
    report = agreement_report(systems=(sm.wildcards.a, sm.wildcards.b), cells=cells, labels=sm.params.labels,
                              min_rate=sm.params.min_rate, bootstrap=sm.params.bootstrap)
    write_json(sm.output[0], report)


run_job(snakemake, main)  # noqa: F821
