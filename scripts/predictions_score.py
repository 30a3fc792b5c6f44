"""Rule predictions_score: predictions + test split -> metrics with bootstrap CIs."""
from tunebench.core.job import run_job


def main(sm):
    from tunebench.compare.leakage import touched_ids
    from tunebench.core.atomic import read_json
    from tunebench.core.spec import Task
    from tunebench.predict.score import score_predictions

    score_predictions(task=Task.from_param(sm.params.task).with_labels(sm.input.manifest), predictions_path=sm.input.rows,
                      meta_path=sm.input.meta, test_path=sm.input.test,
                      max_items=sm.params.max_items, bootstrap=sm.params.bootstrap,
                      out_path=sm.output[0], manifest_path=sm.input.manifest,
                      exclude=touched_ids(read_json(p) for k, p in sm.input.items() if k.startswith("leakage_"))
                      if sm.params.leakage_exclude else None)


run_job(snakemake, main)  # noqa: F821
