"""Rule model_materialize: base model source -> resources/models/<model>/ (HF folder)."""
from tunebench.core.job import load_job_project, project_root, run_job


def main(sm):
    from tunebench.data.models import materialize_model

    model = load_job_project(sm).models[sm.wildcards.model]
    materialize_model(model.source, sm.output[0], root=project_root(sm), dtype=model.dtype,
                      model_file=str(model.file.relative_to(project_root(sm))))


run_job(snakemake, main)  # noqa: F821
