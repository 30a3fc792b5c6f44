"""Regression gates: is this run worse than the stored baseline? PASS / FAIL / IMPROVED per metric.

A plain threshold (the seeds' ±5 %) raises false alarms on small test sets and misses real drops
on large ones. A verdict here needs both: the change exceeds the metric's threshold AND a test on
the same items says it is unlikely under noise (McNemar's exact test for binary per-item outcomes,
a paired bootstrap otherwise) at the configured alpha. Every row reports the minimum detectable
effect for its n, so a PASS on 16 items is read for what it is. When the runs share no items the
comparison falls back to an unpaired test, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from tunebench.compare.paired import paired_comparison
from tunebench.core.records import BENCHMARK, record_source

PASS, FAIL, IMPROVED = "PASS", "FAIL", "IMPROVED"
P_FLOOR = 0.001  # p-values below it are shown as "<0.001" (JSON keeps the number)


def format_p(p: float | None) -> str:
    """A p-value for people: '<0.001' below 0.001 (an exact 0 is never printed), else 3 significant
    digits; '-' when there is none."""
    if p is None:
        return "-"
    return f"<{P_FLOOR:g}" if p < P_FLOOR else f"{p:.3g}"


def p_clause(p: float) -> str:
    """'p<0.001' or 'p=0.0123', for sentences."""
    shown = format_p(p)
    return f"p{shown}" if shown.startswith("<") else f"p={shown}"


@dataclass(frozen=True)
class Threshold:
    absolute_pp: float | None = None  # percentage points
    relative_pct: float | None = None  # % of the baseline value

    def limit(self, base_value: float) -> float:
        """The largest change (as a fraction) that counts as 'within threshold'."""
        limits = []
        if self.absolute_pp is not None:
            limits.append(self.absolute_pp / 100)
        if self.relative_pct is not None:
            limits.append(abs(base_value) * self.relative_pct / 100)
        return max(limits) if limits else 0.0

    def describe(self) -> str:
        parts = ([f"±{self.absolute_pp:g} pp"] if self.absolute_pp is not None else []) + (
            [f"±{self.relative_pct:g} %"] if self.relative_pct is not None else [])
        return " or ".join(parts) or "any change"


def threshold_for(metric: str, gates: dict) -> Threshold:
    spec = {**gates.get("default", {}), **gates.get("metrics", {}).get(metric, {})}
    return Threshold(absolute_pp=spec.get("absolute_pp"), relative_pct=spec.get("relative_pct"))


MCNEMAR_EXACT_MAX = 2_000  # discordant pairs summed as exact integers (milliseconds); above: scipy's binomial


def mcnemar_exact(base: np.ndarray, current: np.ndarray) -> tuple[float, int, int]:
    """Two-sided exact McNemar test on paired binary outcomes: (p, base-only wins, current-only wins)."""
    b = int(np.sum((base == 1) & (current == 0)))
    c = int(np.sum((base == 0) & (current == 1)))
    n = b + c
    if n == 0:
        return 1.0, b, c
    if n > MCNEMAR_EXACT_MAX:  # the binomial tail in floating point: the sum of big integers is quadratic in n
        from scipy.stats import binom

        return min(1.0, 2 * float(binom.cdf(min(b, c), n, 0.5))), b, c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail), b, c


def _z(alpha: float, power: float) -> float:
    return NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)


def _binary_values(score: dict, metric: str, ids: list[str]) -> np.ndarray | None:
    """Per-item 0/1 outcomes of `metric` when it is a plain proportion, else None."""
    by_id = {str(it["id"]): it for it in score["items"]}
    if record_source(score) == BENCHMARK:
        vals = [by_id[i].get("values", {}).get(metric) for i in ids]
        if any(v is None or v[1] != 1 or v[0] not in (0, 1) for v in vals):
            return None
        return np.array([v[0] for v in vals], dtype=int)
    if metric in ("accuracy", "exact_match") and all(by_id[i]["score"] in (0, 1) for i in ids):
        if metric == "accuracy" or score["primary_metric"] == "exact_match":
            return np.array([int(by_id[i]["score"]) for i in ids])
    return None


def _standard_error(stats: dict) -> float:
    z = NormalDist().inv_cdf(0.5 + stats.get("confidence", 0.95) / 2)
    return (stats["ci_high"] - stats["ci_low"]) / (2 * z)


def _unpaired(base: dict, current: dict, metric: str) -> tuple[float, float, float]:
    """(delta, p, stderr of delta) from the two scores' own intervals, for runs that share no items."""
    b, c = base["metrics"][metric], current["metrics"][metric]
    se = math.hypot(_standard_error(b), _standard_error(c))
    delta = c["value"] - b["value"]
    p = 1.0 if se == 0 else 2 * (1 - NormalDist().cdf(abs(delta) / se))
    return delta, p, se


def gate_score(base: dict, current: dict, *, gates: dict, labels: list[str] | None, bootstrap: dict) -> list[dict]:
    """One verdict row per metric the baseline and the current score share."""
    alpha, power = gates.get("alpha", 0.05), gates.get("power", 0.8)
    current_ids = {str(it["id"]) for it in current["items"]}
    shared = [str(it["id"]) for it in base["items"] if str(it["id"]) in current_ids]
    paired = {r["metric"]: r for r in paired_comparison(base, current, labels=labels, **bootstrap)} if shared else {}
    rows = []
    shared_metrics = [m for m in base["metrics"] if m in current["metrics"]
                      and None not in (base["metrics"][m]["value"], current["metrics"][m]["value"])]  # n/a: no gate
    for metric in shared_metrics:
        threshold = threshold_for(metric, gates)
        base_value = base["metrics"][metric]["value"]
        if metric in paired:
            row = paired[metric]
            delta = row["finetuned"] - row["base"]
            binary_base, binary_cur = _binary_values(base, metric, shared), _binary_values(current, metric, shared)
            if binary_base is not None and binary_cur is not None:
                p, b, c = mcnemar_exact(binary_base, binary_cur)
                test = f"McNemar exact (paired, {b} vs {c} discordant)"
                discordant = max((b + c) / len(shared), 1 / len(shared))
                mde = _z(alpha, power) * math.sqrt(discordant / len(shared))
            else:
                p, test = row["p_value"], "paired bootstrap over items"
                # no item changed: the paired spread is 0; the baseline's own standard error bounds it
                spread = max(row["delta_sd_pp"] / 100, _standard_error(base["metrics"][metric]))
                mde = _z(alpha, power) * spread
            base_value, n = row["base"], len(shared)
            if len(shared) < len(base["items"]) or len(shared) < len(current["items"]):
                test += f"; only the {len(shared)} items both runs scored"
        else:
            delta, p, se = _unpaired(base, current, metric)
            test, n, mde = "unpaired (the runs share no items)", min(base["n"], current["n"]), _z(alpha, power) * se
        limit = threshold.limit(base_value)
        beyond, significant = abs(delta) > limit, p < alpha
        if beyond and significant:
            verdict = FAIL if delta < 0 else IMPROVED
            why = (f"{'dropped' if delta < 0 else 'rose'} {abs(100 * delta):.1f} pp, beyond {threshold.describe()}, "
                   f"and unlikely under noise ({p_clause(p)}, alpha {alpha:g})")
        elif beyond:
            verdict = PASS
            why = (f"changed {100 * delta:+.1f} pp, beyond {threshold.describe()} but within noise "
                   f"({p_clause(p)}, alpha {alpha:g}; detectable here: {100 * mde:.1f} pp)")
        else:
            verdict = PASS
            why = f"changed {100 * delta:+.1f} pp, within {threshold.describe()}"
        rows.append({
            "task": current["task"], "prompting": current["prompting"], "metric": metric,
            "primary": metric == current["primary_metric"], "baseline": round(base_value, 6),
            "current": round(base_value + delta, 6), "delta_pp": round(100 * delta, 3),
            "threshold": threshold.describe(), "threshold_pp": round(100 * limit, 3),
            "p_value": round(p, 5), "alpha": alpha, "test": test, "n": n,
            "mde_pp": round(100 * mde, 3), "power": power, "verdict": verdict, "why": why,
        })
    return rows
