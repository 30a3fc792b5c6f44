"""Rule baseline_compare: one system's scores against its stored baseline."""
from tunebench.core.job import project_root, run_job


def main(sm):
    from tunebench.compare.baseline import compare_to_baseline, load_baseline
    from tunebench.compare.leakage import leakage_gate
    from tunebench.core.atomic import read_json, write_json, write_text
    from tunebench.report.markdown import gate_markdown

    baseline_file = sm.input.get("baseline")
    report = compare_to_baseline(
        load_baseline(baseline_file, project_root(sm)) if baseline_file else None,
        [read_json(p) for p in sm.input.scores], system=sm.wildcards.system, gates=sm.params.gates,
        labels=sm.params.labels, bootstrap=sm.params.bootstrap, baseline_file=baseline_file)
    report = leakage_gate(report, [read_json(p) for k, p in sm.input.items() if k.startswith("leakage_")])
    write_json(sm.output.json, report)
    write_text(sm.output.md, "\n".join(gate_markdown({"gates": [report]}) or [f"# {report['system']}", "",
                                                                           report.get("note", "")]) + "\n")


run_job(snakemake, main)  # noqa: F821
