"""Rule summary_collect: every score, comparison, gate and cost -> results/summary/collected.json (schema-checked)."""
from tunebench.core.job import project_root, run_job


def main(sm):
    from tunebench.core.atomic import write_json
    from tunebench.core.spec import System, Task
    from tunebench.report.summary import SummaryInputs, build_summary

    tasks = {name: Task.from_param(param) for name, param in sm.params.tasks.items()}
    summary = build_summary(SummaryInputs.read(
        score_paths=list(sm.input.scores),
        prepared_manifests=dict(zip(tasks, sm.input.prepared)),
        model_dirs=dict(zip(sm.params.model_names, sm.input.models)),
        tasks=tasks, suite=sm.params.suite, config_hash=sm.params.config_hash, root=project_root(sm),
        systems={name: System.parse(name) for name in sm.params.systems}, bootstrap=sm.params.bootstrap,
        adapter_records=dict(zip(sm.params.adapter_systems, sm.input.adapters)),
        gate_paths=list(sm.input.gates), pricing=sm.params.pricing, api_models=list(sm.params.api_models),
        agreement_paths=list(sm.input.agreement), leakage_paths=list(sm.input.leakage), decision=dict(sm.params.decision),
    ))
    write_json(sm.output[0], summary)


run_job(snakemake, main)  # noqa: F821
