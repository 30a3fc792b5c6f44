"""Rule leakage_check: one training set against one task's test split or benchmark's documents."""
from tunebench.core.job import run_job


def main(sm):
    import logging

    from tunebench.compare.leakage import benchmark_documents, item_text, leakage_report, read_rows
    from tunebench.core.atomic import write_json

    evalset, spec = sm.wildcards.evalset, sm.params.eval
    test = sm.input.get("test")
    if spec["kind"] == "task":
        rows = read_rows(test)
        documents = ([str(r["id"]) for r in rows], [item_text(r) for r in rows])
        kind = "task"
    else:
        documents = benchmark_documents(evalset, spec["spec"])
        kind = spec["spec"]["kind"]
    report = leakage_report(train_set=f"{sm.wildcards.task}-{sm.wildcards.size}", train_path=sm.input.train,
                            eval_set=evalset, eval_kind=kind, documents=documents, eval_file=test)
    write_json(sm.output[0], report)
    logging.getLogger("tunebench").info("%s vs %s: %s", report["train_set"], evalset,
                                        report["counts"] if report["checked"] else report["note"])


run_job(snakemake, main)  # noqa: F821
