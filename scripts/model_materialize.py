"""Rule model_materialize: base model source -> resources/models/<model>/ (HF folder)."""
from tunebench.core.job import project_root, run_job


def main(sm):
    from tunebench.core.spec import Model
    from tunebench.data.models import materialize_model

    model = Model.from_param(sm.params.model)
    materialize_model(model.source, sm.output[0], root=project_root(sm), dtype=model.dtype,
                      model_file=model.file.as_posix())


run_job(snakemake, main)  # noqa: F821
