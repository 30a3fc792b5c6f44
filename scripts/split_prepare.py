"""Rule split_prepare: data/raw/<task>/ -> data/prepared/<task>/{train,val,test}.jsonl."""
from tunebench.core.job import load_job_project, project_root, run_job


def main(sm):
    from tunebench.core.schema import load_schema
    from tunebench.data.prepare import prepare_splits

    task = load_job_project(sm).tasks[sm.wildcards.task]
    prepare_splits(task, sm.input.raw, {s: sm.output[s] for s in ("train", "val", "test")},
                   sm.output.manifest, load_schema(project_root(sm), "row.schema.json"))


run_job(snakemake, main)  # noqa: F821
