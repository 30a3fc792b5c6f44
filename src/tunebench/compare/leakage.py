"""Did the adapter see the test? Exact duplicates and 13-gram overlap between a training set and an
evaluation set (the decontamination rule of GPT-3 and lm-eval).

Both sides are normalised the same way: Unicode NFKC, lowercase, punctuation removed, whitespace
collapsed. An evaluation item is `exact` when its normalised text equals a training item's; else
`ngram` when any of its word 13-grams occurs in the training set (items and their answers: an
adapter learns both). An item shorter than 13 words has no 13-gram, so it is compared by its full
normalised text only (as GPT-3 did; a short text inside a long one is too often chance).

Texts are normalised and split with polars, words hashed to 64-bit ints, and each 13-gram is a
polynomial hash of its words computed over all texts at once with numpy (uint64 arithmetic wraps):
100k training items x 10k evaluation items take a few seconds (perf/leakage_100k.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tunebench.core.errors import DataError

NGRAM = 13
EXACT, NGRAM_KIND = "exact", "ngram"
NOT_AVAILABLE = "not checked: documents not available offline"
_PUNCTUATION = r"[^\w\s]|_"  # \w keeps letters and digits of every script
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so every power is invertible mod 2**64


def item_text(row: dict) -> str:
    """A prepared row's text as the model reads it: its input, its document (extraction) and its
    options (multiple choice); never the target alone, since labels repeat across items by design."""
    parts = [row.get("input") or "", row.get("context") or "", *(row.get("options") or [])]
    return "\n".join(str(p) for p in parts if p)


def _normalised(texts: Sequence[str]) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """One row per word (`doc`: the text's index, `h`: the word's 64-bit hash, in text order), and
    per text its word count and the hash of its normalised text."""
    frame = (pl.DataFrame({"text": list(texts)}, schema={"text": pl.String}).with_row_index("doc")
             .select("doc", pl.col("text").fill_null("").str.normalize("NFKC").str.to_lowercase()
                     .str.replace_all(_PUNCTUATION, "").str.extract_all(r"\w+").alias("w")))
    counts = frame["w"].list.len().to_numpy().astype(np.int64)
    full = frame["w"].list.join(" ").hash(seed=1).to_numpy().astype(np.uint64)
    words = frame.explode("w").drop_nulls("w").select("doc", pl.col("w").hash(seed=0).alias("h"))
    return words, counts, full


def _ngrams(words: pl.DataFrame, n: int = NGRAM) -> tuple[np.ndarray, np.ndarray]:
    """Every word n-gram's hash and the text it starts in (grams crossing two texts are dropped)."""
    h = words["h"].to_numpy().astype(np.uint64)
    doc = words["doc"].to_numpy()
    m = len(h) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=doc.dtype)
    grams = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            grams = grams * _BASE + h[k:k + m]
    same = doc[:m] == doc[n - 1:]
    return grams[same], doc[:m][same]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # np.sort + a mask: np.unique of this numpy build takes seconds for a few million uint64s
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _member(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Whether each value is in `table` (sorted, unique), by binary search."""
    if not len(table):
        return np.zeros(len(values), dtype=bool)
    return table[np.minimum(np.searchsorted(table, values), len(table) - 1)] == values


class TrainingIndex:
    """A training set's normalised texts (for exact matches) and 13-gram hashes (for overlap)."""

    def __init__(self, texts: Sequence[str], extra: Iterable[str] = ()):
        """`texts`: the items (exact matches are against these); `extra`: more text the model was
        trained on (the answers), searched for 13-grams only."""
        texts = list(texts)
        words, counts, full = _normalised(texts)
        self.n = len(texts)
        self.exact = _sorted_unique(full[counts > 0])
        grams = [_ngrams(words)[0]]
        extra = [t for t in extra if t]
        if extra:
            grams.append(_ngrams(_normalised(extra)[0])[0])
        self.grams = _sorted_unique(np.concatenate(grams))

    def check(self, ids: Sequence[str], texts: Sequence[str]) -> dict[str, str]:
        """The evaluation items the training set touches: id -> `exact` or `ngram`."""
        words, counts, full = _normalised(list(texts))
        exact = (counts > 0) & _member(full, self.exact)
        grams, doc = _ngrams(words)
        touched = np.zeros(len(texts), dtype=bool)
        touched[doc[_member(grams, self.grams)]] = True
        touched &= counts >= NGRAM
        out = {}
        for i in np.flatnonzero(exact | touched):
            out[str(ids[int(i)])] = EXACT if exact[i] else NGRAM_KIND
        return out


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(path: str | Path) -> list[dict]:
    """A prepared split (JSON lines), read with polars: 100k rows in a fraction of a second."""
    try:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    except pl.exceptions.PolarsError as err:
        raise DataError(f"cannot read the rows: {err}", file=str(path), field="(row)",
                        fix="rerun the split_prepare rule to rewrite the split") from None
    return frame.to_dicts()


def benchmark_documents(name: str, spec: dict) -> tuple[list[str], list[str]] | None:
    """A benchmark's documents as (ids, texts), or None when they are not available offline (lm-eval's
    own tasks load them from the Hub)."""
    kind = spec["kind"]
    if kind == "ifbench":
        from tunebench.benchmarks.ifbench import load_prompts

        docs = load_prompts()
        return [str(d["key"]) for d in docs], [d["prompt"] for d in docs]
    if kind == "humaneval":
        import gzip
        import json

        from tunebench.benchmarks.tasks import humaneval_problems_file

        with gzip.open(humaneval_problems_file(), "rt", encoding="utf-8") as fh:
            docs = [json.loads(line) for line in fh if line.strip()]
        return [d["task_id"] for d in docs], [d["prompt"] for d in docs]
    if kind == "local":
        from tunebench.benchmarks.tasks import read_local_rows

        fields = spec["fields"]
        rows = read_local_rows(Path(spec["path"]), spec, f"configs/benchmarks/{name}.yaml", "path")
        texts = ["\n".join([str(r[fields["input"]]), *map(str, r.get(fields.get("choices") or "", None) or [])])
                 for r in rows]
        return [str(r.get("id", i)) for i, r in enumerate(rows)], texts
    return None


def leakage_report(*, train_set: str, train_path: str | Path, eval_set: str, eval_kind: str,
                   documents: tuple[list[str], list[str]] | None, eval_file: str | None = None) -> dict[str, Any]:
    """One (training set, evaluation set) pair's report (results/<suite>/leakage/<train>/<eval>.json)."""
    report: dict[str, Any] = {"train_set": train_set, "train_file": str(train_path),
                              "train_sha256": sha256_file(train_path), "eval_set": eval_set,
                              "eval_kind": eval_kind, "eval_file": eval_file, "ngram": NGRAM}
    if documents is None:
        return {**report, "checked": False, "note": NOT_AVAILABLE, "n": None, "counts": None,
                "touched_share": None, "items": []}
    rows = read_rows(train_path)
    index = TrainingIndex([item_text(r) for r in rows], [str(r.get("target") or "") for r in rows])
    ids, texts = documents
    touched = index.check(ids, texts)
    counts = {EXACT: sum(k == EXACT for k in touched.values()), NGRAM_KIND: sum(k == NGRAM_KIND for k in touched.values())}
    return {**report, "checked": True, "n_train": index.n, "n": len(ids), "counts": counts,
            "touched_share": round(len(touched) / len(ids), 6) if ids else 0.0,
            "items": [{"id": i, "kind": k} for i, k in touched.items()]}


def touched_ids(reports: Iterable[dict]) -> dict[str, list[str]]:
    """Evaluation item id -> the training sets that touched it, over several reports."""
    out: dict[str, list[str]] = {}
    for report in reports:
        for item in report.get("items", []):
            out.setdefault(item["id"], []).append(report["train_set"])
    return out


def leakage_gate(gate: dict, reports: Iterable[dict]) -> dict:
    """A fine-tuned system whose training data holds exact test items of a task FAILs, with or
    without a stored baseline: its scores there measure memory, not skill."""
    found = [r for r in reports if r.get("checked") and r["counts"][EXACT]]
    if not found:
        return gate
    rows = []
    for r in found:
        ids = [it["id"] for it in r["items"] if it["kind"] == EXACT]
        rows.append({"train_set": r["train_set"], "eval_set": r["eval_set"], "exact": len(ids), "ids": ids,
                     "message": f"{len(ids)} test item(s) of {r['eval_set']} are in the training data "
                                f"{r['train_file']} verbatim: {', '.join(ids[:20])}"
                                + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")})
    return {**gate, "gate": "FAIL", "leakage": rows}
