"""Rule summary_collect: every score, comparison, gate and cost -> results/summary/collected.json (schema-checked)."""
from tunebench.core.job import load_job_project, project_root, run_job


def main(sm):
    from tunebench.core.atomic import read_json, write_json
    from tunebench.report.summary import SummaryInputs, build_summary

    project = load_job_project(sm)
    root = project_root(sm)
    summary = build_summary(SummaryInputs.read(
        score_paths=list(sm.input.scores),
        prepared_manifests=dict(zip(project.config["tasks"], sm.input.prepared)),
        model_dirs=dict(zip(sm.params.model_names, sm.input.models)),
        tasks=project.tasks, suite=project.suite_name, config_hash=sm.params.config_hash,
        root=root, schema=read_json(root / "configs" / "schema" / "summary.schema.json"),
        systems=project.systems, bootstrap=sm.params.bootstrap,
        adapter_records=dict(zip(sm.params.adapter_systems, sm.input.adapters)),
        gate_paths=list(sm.input.gates), pricing=sm.params.pricing, api_models=list(sm.params.api_models),
        agreement_paths=list(sm.input.agreement),
    ))
    write_json(sm.output[0], summary)


run_job(snakemake, main)  # noqa: F821
