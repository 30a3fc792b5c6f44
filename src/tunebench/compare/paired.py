"""Did fine-tuning help, and what did it break: each fine-tuned system against its base model, per
task or benchmark and metric, on the same items.

Every comparison is paired: the items both systems were scored on are resampled together (paired
bootstrap), so the interval of the difference reflects the items' shared difficulty, not two
independent intervals. The arrow follows the interval: ↗ when it lies above zero, ↘ below, →
when it contains zero (the change is within noise). Above MULTINOMIAL_ABOVE paired items, a metric
of outcome counts (label confusions, per-item ratios) resamples the counts of the items' joint
(base outcome, fine-tuned outcome) pairs: one multinomial draw per resample, which keeps the pairing
(tunebench.scoring.metrics); the row then names its `bootstrap_method`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunebench.core.records import BENCHMARK, TASK, record_source
from tunebench.core.spec import parse_prompting
from tunebench.scoring.metrics import (
    EXTRACTION,
    MULTINOMIAL,
    MULTINOMIAL_ABOVE,
    NO_ANSWER,
    bootstrap_plan,
    classification_rows,
    confusion_counts,
    distinct_outcomes,
    item_scores,
    multinomial_chunks,
    pair_codes,
    resample_chunks,
)

UP, DOWN, FLAT = "↗", "↘", "→"
# f(counts, metrics) -> metric -> its value for each row of counts (resamples x a score's outcomes)
FromCounts = Callable[[np.ndarray, list[str]], dict[str, np.ndarray]]
# () -> each item's outcome code, how many outcomes, and the metrics from their counts
Outcomes = Callable[[], tuple[np.ndarray, int, FromCounts]]


def _statistics(score: dict, ids: list[str], labels: list[str] | None) -> tuple[list[str], Callable]:
    """The metrics a score supports on those items, and f(index, metrics) -> metric -> the metric
    over the items of each row of `index` (resamples x items, positions in ids)."""
    names, by_index, _ = _statistics_and_outcomes(score, ids, labels)
    return names, by_index


def _statistics_and_outcomes(score: dict, ids: list[str], labels: list[str] | None
                             ) -> tuple[list[str], Callable, Outcomes | None]:
    """_statistics, and the same metrics as functions of the counts of the items' distinct
    outcomes (a confusion cell, or a ratio's (numerator, denominator) values): the multinomial
    bootstrap of large cells."""
    rows = score["items"]
    if [str(it["id"]) for it in rows] != ids:  # the same items in the same order need no lookup
        by_id = {str(it["id"]): it for it in rows}
        rows = [by_id[i] for i in ids]
    ratios: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if record_source(score) == BENCHMARK:  # per item a numerator and denominator per metric
        for label in score["metrics"]:
            if all(label in r.get("values", {}) for r in rows):
                ratios[label] = (np.array([r["values"][label][0] for r in rows], dtype=float),
                                 np.array([r["values"][label][1] for r in rows], dtype=float))
    elif not labels:
        ratios = _item_ratios(score, rows)
    if ratios:

        def ratio(index: np.ndarray, metrics: list[str]) -> dict[str, np.ndarray]:
            sums = {m: (np.take(num, index).sum(axis=1), np.take(den, index).sum(axis=1))
                    for m, (num, den) in ratios.items() if m in metrics}
            return {m: num / np.maximum(den, 1e-12) for m, (num, den) in sums.items()}

        def ratio_outcomes() -> tuple[np.ndarray, int, FromCounts]:
            code, per = distinct_outcomes([column for pair in ratios.values() for column in pair])

            def from_counts(counts: np.ndarray, metrics: list[str]) -> dict[str, np.ndarray]:
                return {m: (counts @ per[2 * j]) / np.maximum(counts @ per[2 * j + 1], 1e-12)
                        for j, m in enumerate(ratios) if m in metrics}
            return code, len(per[0]), from_counts

        return list(ratios), ratio, ratio_outcomes
    if labels:
        codes = {label: i for i, label in enumerate(labels)}
        y_true = np.array([codes[r["target"]] for r in rows], dtype=int)
        y_pred = np.array([codes.get(r["parsed"], NO_ANSWER) if r["parsed"] is not None else NO_ANSWER
                           for r in rows], dtype=int)
        pairs = pair_codes(y_true, y_pred, len(labels))
        shape = (len(labels), len(labels) + 1)
        return list(score["metrics"]), lambda index, metrics: classification_rows(
            confusion_counts(pairs, len(labels), index), metrics, len(ids)), lambda: (
            pairs, shape[0] * shape[1],
            lambda counts, metrics: classification_rows(counts.reshape(-1, *shape), metrics, len(ids)))
    return [], lambda index, metrics: {}, None


def _paired_counts(a: Outcomes, b: Outcomes, n: int, resamples: int, seed: int, plan: dict
                   ) -> tuple[list, FromCounts, FromCounts] | None:
    """The multinomial bootstrap of paired items: resampling items draws the counts of their joint
    (a's outcome, b's outcome) pairs, Multinomial(n, pair shares), which sum to each side's outcome
    counts. Returns the blocks of (a's counts, b's counts) and both sides' metrics of counts, or
    None when the pairs are too many (index resampling then); `plan` receives the choice."""
    codes_a, ka, from_a = a()
    codes_b, kb, from_b = b()
    joint, inverse = np.unique(codes_a.astype(np.int64) * kb + codes_b, return_inverse=True)
    plan.update(bootstrap_plan(n, len(joint)))
    if plan["bootstrap_method"] != MULTINOMIAL:
        return None
    counts = np.bincount(inverse.reshape(-1), minlength=len(joint))
    side_a, side_b = joint // kb, joint % kb
    a_seen, a_starts = np.unique(side_a, return_index=True)  # joint is sorted by a's outcome first
    order = np.argsort(side_b, kind="stable")
    b_seen, b_starts = np.unique(side_b[order], return_index=True)

    def blocks():
        for draw in multinomial_chunks(np.random.default_rng(seed), counts, resamples, width=ka + kb + len(joint)):
            ca, cb = np.zeros((len(draw), ka), dtype=np.int64), np.zeros((len(draw), kb), dtype=np.int64)
            ca[:, a_seen] = np.add.reduceat(draw, a_starts, axis=1)
            cb[:, b_seen] = np.add.reduceat(draw[:, order], b_starts, axis=1)
            yield ca, cb
    return blocks(), from_a, from_b


def _item_ratios(score: dict, rows: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What a task record without labels can rebuild per item, as (numerator, denominator) pairs:
    its primary metric from each item's own score, and token F1 / exact match from the answers, both
    over the items that have an answer (an abstaining extraction task scores those on present items
    only). Metrics that are no sum over items (AUPR, answer detection, macro F1 over letters) are not
    paired: a gate compares them through their own intervals."""
    present = np.array([r["target"] != "" for r in rows], dtype=float)
    texts = ([r["target"] for r in rows], [r["parsed"] for r in rows])
    out = {}
    for metric, stats in score["metrics"].items():
        if stats.get("value") is None:
            continue
        if metric == score["primary_metric"]:
            out[metric] = (np.array([r["score"] for r in rows], dtype=float) * present, present)
        elif metric in EXTRACTION:
            out[metric] = (item_scores(*texts, metric) * present, present)
    return out


def paired_comparison(base: dict, tuned: dict, *, labels: list[str] | None, resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """One row per metric both scores have: values on the shared items, the difference with its
    paired-bootstrap interval, and the arrow. The resamples are drawn in blocks (bounded memory).
    `labels`: the task's label set; a record scored with `labels: auto` carries its own."""
    labels = labels or tuned.get("labels") or base.get("labels")
    tuned_ids = {str(it["id"]) for it in tuned["items"]}
    ids = [str(it["id"]) for it in base["items"] if str(it["id"]) in tuned_ids]
    if not ids:
        return []
    (names_a, a, outcomes_a), (names_b, b, outcomes_b) = (_statistics_and_outcomes(base, ids, labels),
                                                           _statistics_and_outcomes(tuned, ids, labels))
    metrics = [m for m in names_a if m in names_b]
    n = len(ids)
    everything = np.arange(n)[None, :]
    base_values, tuned_values = a(everything, metrics), b(everything, metrics)
    plan: dict = {}
    drawn = None
    if n > MULTINOMIAL_ABOVE:
        plan = bootstrap_plan(n, None)
        drawn = (_paired_counts(outcomes_a, outcomes_b, n, resamples, seed, plan)
                 if metrics and outcomes_a is not None and outcomes_b is not None else None)
    blocks = []
    if drawn is not None:
        draws, from_a, from_b = drawn
        for ca, cb in draws:
            sa, sb = from_a(ca, metrics), from_b(cb, metrics)
            blocks.append({m: sb[m] - sa[m] for m in metrics})
    else:
        for index in resample_chunks(np.random.default_rng(seed), n, resamples):
            sa, sb = a(index, metrics), b(index, metrics)
            blocks.append({m: sb[m] - sa[m] for m in metrics})
    alpha = (1 - confidence) / 2
    rows = []
    for metric in metrics:
        base_value, tuned_value = float(base_values[metric][0]), float(tuned_values[metric][0])
        deltas = np.concatenate([d[metric] for d in blocks]) if blocks else np.empty(0)
        lo, hi = np.quantile(deltas, [alpha, 1 - alpha])
        delta = tuned_value - base_value
        # two-sided bootstrap p-value: how often the resampled difference lands on the other side of 0
        p = min(1.0, 2 * min((deltas <= 0).mean(), (deltas >= 0).mean())) if delta != 0 else 1.0
        rows.append({
            "metric": metric, "primary": metric == base["primary_metric"],
            "base": round(base_value, 6), "finetuned": round(tuned_value, 6),
            "delta_pp": round(100 * delta, 3),
            "delta_rel_pct": round(100 * delta / base_value, 2) if base_value else None,
            "ci_low_pp": round(100 * float(lo), 3), "ci_high_pp": round(100 * float(hi), 3),
            "delta_sd_pp": round(100 * float(deltas.std(ddof=1)), 3),
            "p_value": round(float(p), 4), "confidence": confidence,
            "direction": UP if lo > 0 else DOWN if hi < 0 else FLAT,
            "n_paired": n, "n_base": len(base["items"]), "n_finetuned": len(tuned["items"]),
            "test": "paired bootstrap over items", **plan,
        })
    return rows


def method_report(scores: list[dict], labels: dict[str, list[str] | None], bootstrap: dict) -> list[dict]:
    """Methods side by side: each condition under another method (5shot-loglik) against the same
    system's condition under the task's own method (5shot), paired on the same items."""
    by_key = {(s["system"], s["task"], s["prompting"]): s for s in scores if record_source(s) == TASK}
    rows = []
    for (system, task, prompting), other in sorted(by_key.items()):
        shots, method = parse_prompting(prompting)
        main = by_key.get((system, task, f"{shots}shot"))
        if method is None or main is None:
            continue
        for row in paired_comparison(main, other, labels=labels.get(task), **bootstrap):
            rows.append({"system": system, "task": task, "shots": shots, "method": main.get("method"),
                         "other_method": other.get("method"), "prompting": f"{shots}shot",
                         "other_prompting": prompting, **row})
    return rows


def forgetting_report(scores: list[dict], systems: dict[str, dict], labels: dict[str, list[str] | None],
                      bootstrap: dict) -> list[dict]:
    """Per fine-tuned system: its own task against every prompting of the base model, and every
    general benchmark against the base; then how many metrics went up, down, and the mean change."""
    by_key = {(s["system"], s["task"], s["prompting"]): s for s in scores}
    reports = []
    for system, info in systems.items():
        if info["adapter"] is None:
            continue
        base_system, own_task = info["model"], info["task"]
        rows = []
        for (sys_name, task, prompting), tuned in sorted(by_key.items()):
            if sys_name != system:
                continue
            general = task != own_task
            # own task: against every prompting of the base (0-shot, 5-shot) under the same method;
            # benchmarks: like for like
            bases = [s for (b, t, p), s in sorted(by_key.items())
                     if b == base_system and t == task and (p == prompting if general else
                                                            parse_prompting(p)[1] == parse_prompting(prompting)[1])]
            for base in bases:
                for row in paired_comparison(base, tuned, labels=labels.get(task), **bootstrap):
                    rows.append({"task": task, "role": "general" if general else "target",
                                 "base_prompting": base["prompting"], "finetuned_prompting": prompting, **row})
        rows.sort(key=lambda r: (r["role"] != "target", r["task"], r["base_prompting"], not r["primary"]))
        general_primary = [r for r in rows if r["role"] == "general" and r["primary"]]
        reports.append({
            "system": system, "base_system": base_system, "adapter": info["adapter"], "task": own_task,
            "rows": rows,
            "general": {
                "improved": sum(r["direction"] == UP for r in general_primary),
                "regressed": sum(r["direction"] == DOWN for r in general_primary),
                "unchanged": sum(r["direction"] == FLAT for r in general_primary),
                "mean_delta_pp": round(float(np.mean([r["delta_pp"] for r in general_primary])), 3)
                if general_primary else None,
            },
        })
    return reports
