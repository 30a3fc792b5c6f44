"""Rule baseline_compare: one system's scores against its stored baseline."""
from tunebench.core.job import load_job_project, run_job


def main(sm):
    from tunebench.compare.baseline import compare_to_baseline, load_baseline
    from tunebench.core.atomic import read_json, write_json, write_text
    from tunebench.report.summary import gate_markdown

    project = load_job_project(sm)
    baseline_file = sm.input.get("baseline")
    report = compare_to_baseline(
        load_baseline(baseline_file, project.root) if baseline_file else None,
        [read_json(p) for p in sm.input.scores], system=sm.wildcards.system, gates=sm.params.gates,
        labels={n: list(t.labels) if t.labels else None for n, t in project.tasks.items()},
        bootstrap=sm.params.bootstrap, baseline_file=baseline_file)
    write_json(sm.output.json, report)
    write_text(sm.output.md, "\n".join(gate_markdown({"gates": [report]}) or [f"# {report['system']}", "",
                                                                           report.get("note", "")]) + "\n")


run_job(snakemake, main)  # noqa: F821
