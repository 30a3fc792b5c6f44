"""Rule model_gguf_fetch: base model source -> resources/gguf/<model>/model.gguf (backend llamacpp)."""
from tunebench.core.job import load_job_project, project_root, run_job


def main(sm):
    from tunebench.data.models import materialize_model

    model = load_job_project(sm).models[sm.wildcards.model]
    materialize_model(model.source, sm.output[0], root=project_root(sm), dtype=model.dtype,
                      model_file=str(model.file.relative_to(project_root(sm))), backend="llamacpp")


run_job(snakemake, main)  # noqa: F821
