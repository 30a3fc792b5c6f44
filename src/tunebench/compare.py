"""Did fine-tuning help, and what did it break: each fine-tuned system against its base model, per
task or benchmark and metric, on the same items.

Every comparison is paired: the items both systems were scored on are resampled together (paired
bootstrap), so the interval of the difference reflects the items' shared difficulty, not two
independent intervals. The arrow follows the interval: ↗ when it lies above zero, ↘ below, →
when it contains zero (the change is within noise).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunebench.metrics import NO_ANSWER, _f1_from_codes, exact_match, token_f1

UP, DOWN, FLAT = "↗", "↘", "→"


def _statistics(score: dict, ids: list[str], labels: list[str] | None) -> dict[str, Callable]:
    """metric -> f(index array) computing the metric over those items (ids order)."""
    by_id = {str(it["id"]): it for it in score["items"]}
    rows = [by_id[i] for i in ids]
    stats: dict[str, Callable] = {}
    if score["method"] == "lm-eval":
        for label in score["metrics"]:
            if all(label in r.get("values", {}) for r in rows):
                num = np.array([r["values"][label][0] for r in rows], dtype=float)
                den = np.array([r["values"][label][1] for r in rows], dtype=float)
                stats[label] = lambda idx, num=num, den=den: float(num[idx].sum() / max(den[idx].sum(), 1e-12))
        return stats
    if labels:
        codes = {label: i for i, label in enumerate(labels)}
        y_true = np.array([codes[r["target"]] for r in rows], dtype=int)
        y_pred = np.array([codes.get(r["parsed"], NO_ANSWER) if r["parsed"] is not None else NO_ANSWER
                           for r in rows], dtype=int)
        for metric in score["metrics"]:
            if metric == "accuracy":
                correct = (y_true == y_pred).astype(float)
                stats[metric] = lambda idx, c=correct: float(c[idx].mean())
            else:
                average = metric.split("_")[0]
                stats[metric] = lambda idx, a=average: _f1_from_codes(y_true[idx], y_pred[idx], len(labels), a)
        return stats
    scorers = {"token_f1": token_f1, "exact_match": exact_match}
    for metric in score["metrics"]:
        values = np.array([scorers[metric](r["parsed"], r["target"]) for r in rows], dtype=float)
        stats[metric] = lambda idx, v=values: float(v[idx].mean())
    return stats


def paired_comparison(base: dict, tuned: dict, *, labels: list[str] | None, resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """One row per metric both scores have: values on the shared items, the difference with its
    paired-bootstrap interval, and the arrow."""
    tuned_ids = {str(it["id"]) for it in tuned["items"]}
    ids = [str(it["id"]) for it in base["items"] if str(it["id"]) in tuned_ids]
    if not ids:
        return []
    a, b = _statistics(base, ids, labels), _statistics(tuned, ids, labels)
    n = len(ids)
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    everything = np.arange(n)
    alpha = (1 - confidence) / 2
    rows = []
    for metric in [m for m in a if m in b]:
        base_value, tuned_value = a[metric](everything), b[metric](everything)
        deltas = np.array([b[metric](i) - a[metric](i) for i in index])
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
            "test": "paired bootstrap over items",
        })
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
            # own task: against every prompting of the base (0-shot, 5-shot); benchmarks: like for like
            bases = [s for (b, t, p), s in sorted(by_key.items())
                     if b == base_system and t == task and (not general or p == prompting)]
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
