"""Rule split_prepare: data/raw/<task>/ -> data/prepared/<task>/{train,val,test}.jsonl."""
from tunebench.job import load_job_project, project_root, run_job


def main(sm):
    from tunebench.config import load_schema
    from tunebench.prepare import prepare_splits

    task = load_job_project(sm).tasks[sm.wildcards.task]
    prepare_splits(task, sm.input.raw, {s: sm.output[s] for s in ("train", "val", "test")},
                   sm.output.manifest, load_schema(project_root(sm), "row.schema.json"))


run_job(snakemake, main)  # noqa: F821
