"""Rule split_prepare: data/raw/<task>/ -> data/prepared/<task>/{train,val,test}.jsonl."""
from tunebench.core.job import project_root, run_job


def main(sm):
    from tunebench.core.integrity import verify_raw
    from tunebench.core.schema import load_schema
    from tunebench.core.spec import Task
    from tunebench.data.prepare import prepare_splits

    tests = sm.input.against  # Snakemake gives a one-file named input as a str, not a list
    tests = [tests] if isinstance(tests, str) else list(tests)
    verify_raw(sm.input.raw)  # the raw files as raw_fetch copied them (sha256 in their manifest)
    prepare_splits(Task.from_param(sm.params.task), sm.input.raw, {s: sm.output[s] for s in ("train", "val", "test")},
                   sm.output.manifest, load_schema(project_root(sm), "row.schema.json"),
                   against=dict(zip(sm.params.against, tests, strict=True)))


run_job(snakemake, main)  # noqa: F821
