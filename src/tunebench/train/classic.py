"""The classic baseline: TF-IDF features (word 1-2-grams and char 2-5-grams side by side) and a
logistic regression, fitted on exactly the training file a LoRA adapter of the same task and size
gets. A fine-tuned LLM that cannot beat it on the same examples is not worth its cost.

The text it reads is the row's own (input, then context): the fields the prompt shows, never the
label, and none of the prompt template (the same words in every row would only dilute the
features). The fitted pipeline is the system's "adapter": model.joblib with training.json beside it
(train_seconds, device cpu), so cost and TCO price it like any adapter.
"""

from __future__ import annotations

import hashlib
import logging
import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunebench.core.atomic import atomic_dir, read_jsonl, write_json
from tunebench.core.errors import DataError
from tunebench.core.spec import Task

log = logging.getLogger(__name__)

PIPELINE_FILE = "model.joblib"
# The rule passes these as a param: changing one refits every classic system. Deterministic: lbfgs
# has no randomness, and TF-IDF none.
SETTINGS: dict[str, Any] = {
    "word_ngrams": [1, 2],
    "char_ngrams": [2, 5],
    "sublinear_tf": True,
    "C": 10.0,
    "max_iter": 2000,
    "solver": "lbfgs",
    "random_state": 0,
}


def item_text(row: dict) -> str:
    """What the classic model reads of a row: its input, then its context when it has one."""
    context = row.get("context") or ""
    return f"{row['input']}\n{context}" if context else row["input"]


def build_pipeline(settings: dict[str, Any] | None = None):
    """The unfitted scikit-learn pipeline (text -> label)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    s = {**SETTINGS, **(settings or {})}
    features = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=tuple(s["word_ngrams"]), sublinear_tf=s["sublinear_tf"])),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(s["char_ngrams"]),
                                 sublinear_tf=s["sublinear_tf"])),
    ])
    model = LogisticRegression(C=s["C"], max_iter=s["max_iter"], solver=s["solver"], random_state=s["random_state"])
    return Pipeline([("features", features), ("classifier", model)])


def fit_classic(*, task: Task, train_path: str | Path, out_dir: str | Path,
                settings: dict[str, Any] | None = None) -> dict:
    """Fit on every row of `train_path`; write the pipeline and its training record to `out_dir`."""
    import joblib
    import sklearn

    started = datetime.now(timezone.utc)
    rows = read_jsonl(train_path)
    labels = sorted({r["target"] for r in rows})
    if len(labels) < 2:
        raise DataError(f"the classic baseline needs at least two labels to learn from, and the {len(rows)} "
                        f"training rows hold {len(labels)}", file=str(train_path), field="target",
                        fix="use a larger train size (suite `train_sizes`), or turn the baseline off with "
                            "`classic: {enabled: false}`")
    pipeline = build_pipeline(settings)
    t0 = time.perf_counter()
    pipeline.fit([item_text(r) for r in rows], [r["target"] for r in rows])
    train_s = time.perf_counter() - t0
    record = {
        "task": task.name, "trainer": "classic", "model": "tfidf+logistic_regression",
        "settings": {**SETTINGS, **(settings or {})}, "sklearn_version": sklearn.__version__,
        "device": "cpu", "threads": 1, "n_train": len(rows), "n_val": 0, "labels_seen": labels,
        "features": int(sum(len(v.vocabulary_) for _, v in pipeline.named_steps["features"].transformer_list)),
        "train_ids_sha256": hashlib.sha256("\n".join(r["id"] for r in rows).encode()).hexdigest(),
        "train_seconds": round(train_s, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(out_dir) as tmp:
        joblib.dump(pipeline, Path(tmp) / PIPELINE_FILE)
        write_json(Path(tmp) / "training.json", record)
    log.info("%s: classic baseline on %d rows, %d labels, %d features, fitted in %.2f s", task.name, len(rows),
             len(labels), record["features"], train_s)
    return record


def load_pipeline(adapter_dir: str | Path):
    import joblib

    return joblib.load(Path(adapter_dir) / PIPELINE_FILE)
