"""Text overlap between two sets of items: exact duplicates and shared word 13-grams (the
decontamination rule of GPT-3 and lm-eval). The data stage removes training rows that touch the
test split (`split.decontaminate`); the compare stage reports what an adapter's training data
shares with each evaluation set (tunebench.compare.leakage). Both use this one definition.

Both sides are normalised the same way: Unicode NFKC, lowercase, punctuation removed, whitespace
collapsed. An item is `exact` when its normalised text equals one of the other side's; else `ngram`
when any of its word 13-grams occurs on the other side. An item shorter than 13 words has no 13-gram,
so it is compared by its full normalised text only (as GPT-3 did; a short text inside a long one is
too often chance).

Texts are normalised and split with polars, words hashed to 64-bit ints, and each 13-gram is a
polynomial hash of its words computed over all texts at once with numpy (uint64 arithmetic wraps):
100k training items x 10k evaluation items take a few seconds (perf/leakage_100k.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

NGRAM = 13
EXACT, NGRAM_KIND = "exact", "ngram"
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
    """A set of items' normalised texts (for exact matches) and 13-gram hashes (for overlap)."""

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

    def touches(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text: whether its normalised text is one of the index's items, and whether one of its
        13-grams is in the index."""
        words, counts, full = _normalised(list(texts))
        exact = (counts > 0) & _member(full, self.exact)
        grams, doc = _ngrams(words)
        touched = np.zeros(len(texts), dtype=bool)
        touched[doc[_member(grams, self.grams)]] = True
        return exact, touched & (counts >= NGRAM)

    def check(self, ids: Sequence[str], texts: Sequence[str]) -> dict[str, str]:
        """The evaluation items the training set touches: id -> `exact` or `ngram`."""
        exact, touched = self.touches(texts)
        return {str(ids[int(i)]): EXACT if exact[i] else NGRAM_KIND for i in np.flatnonzero(exact | touched)}


DECONTAMINATE = ("none", EXACT, NGRAM_KIND)


def contaminated(rows: Sequence[dict], test_rows: Sequence[dict], mode: str) -> dict[str, str]:
    """The rows to drop from a training (or validation) split because they touch the test split:
    id -> `exact` (its text is a test item's) or `ngram` (its text or its answer shares a 13-gram
    with a test item: what the leakage check would report from the test side). `mode`: one of
    DECONTAMINATE; `none` drops nothing."""
    if mode not in DECONTAMINATE:
        raise ValueError(f"decontaminate mode {mode!r} is not one of {DECONTAMINATE}")
    if mode == "none" or not rows or not test_rows:
        return {}
    index = TrainingIndex([item_text(r) for r in test_rows])
    exact, touched = index.touches([item_text(r) for r in rows])
    if mode == NGRAM_KIND:
        # an answer is trained on too: a target sharing a 13-gram with a test item leaks it
        touched |= index.touches([str(r.get("target") or "") for r in rows])[1]
    else:
        touched[:] = False
    return {str(rows[int(i)]["id"]): EXACT if exact[i] else NGRAM_KIND for i in np.flatnonzero(exact | touched)}
