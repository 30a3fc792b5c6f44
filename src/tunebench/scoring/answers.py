"""Answer-level scores for extraction: SQuAD-style answer normalization, token-F1 and exact match
(the best over an item's gold answers), computed once per distinct (gold, prediction) pair."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace (SQuAD's normalization)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def _token_f1_normalized(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str | None, target: str) -> float:
    return _token_f1_normalized(normalize_answer(prediction or "").split(), normalize_answer(target).split())


def exact_match(prediction: str | None, target: str) -> float:
    return float(normalize_answer(prediction or "") == normalize_answer(target))


def item_scores(targets: Sequence[str], predictions: Sequence[str | None], metric: str) -> np.ndarray:
    """Per-item token_f1 or exact_match (each distinct text normalized once, each pair scored once)."""
    norm: dict[str, str] = {}
    pairs: dict[tuple, float] = {}
    out = np.empty(len(targets), dtype=float)
    for k, (p, t) in enumerate(zip(predictions, targets)):
        key = (p or "", t)
        value = pairs.get(key)
        if value is None:
            a = norm.get(key[0])
            if a is None:
                a = norm[key[0]] = normalize_answer(key[0])
            b = norm.get(t)
            if b is None:
                b = norm[t] = normalize_answer(t)
            if metric == "token_f1":
                value = _token_f1_normalized(a.split(), b.split())
            elif metric == "exact_match":
                value = float(a == b)
            else:
                raise KeyError(metric)
            pairs[key] = value
        out[k] = value
    return out


def best_item_scores(answers: Sequence[Sequence[str]], predictions: Sequence[str | None],
                     metric: str) -> np.ndarray:
    """Per item, the best token_f1 or exact_match over its gold answers (an item without any scores
    against the empty answer: 1 for an empty prediction, else 0)."""
    lists = [list(a) or [""] for a in answers]
    flat = item_scores([t for a in lists for t in a], [p for p, a in zip(predictions, lists) for _ in a], metric)
    starts = np.cumsum([0] + [len(a) for a in lists[:-1]])
    return np.maximum.reduceat(flat, starts) if len(lists) else np.empty(0)
