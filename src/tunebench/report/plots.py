"""matplotlib PNGs of the key figures, from the collected summary: per-task scores with their
confidence intervals, fine-tuning deltas (forgetting), accuracy against cost per query, and TCO.

Every figure is drawn from summary data only (never from scores on disk), so the plots, the site and
summary.md always show the same numbers. The set of files is known before the run (one per task and
benchmark, plus forgetting, cost_accuracy and tco), so each is a file target; a figure with nothing to
show yet says so instead of being left out.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tunebench.core.atomic import atomic_path

log = logging.getLogger(__name__)

COLORS = {"0shot": "#4c78a8", "5shot": "#f58518", "lora": "#54a24b", "classic": "#b279a2", "api": "#e45756"}


def _pyplot():
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("MPLCONFIGDIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "tunebench-mpl"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "font.size": 9,
                         "svg.hashsalt": "tunebench", "path.simplify": False})
    return plt


def condition(cell: dict) -> str:
    """0shot / 5shot / lora / classic: the colour and legend group of a cell."""
    if cell.get("adapter"):
        return "classic" if cell.get("model") == "classic" else "lora"
    return cell["prompting"]


def _save(fig, path: Path, plt) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _placeholder(title: str, why: str, plt):
    fig, ax = plt.subplots(figsize=(5.0, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", fontsize=11)
    ax.text(0.5, 0.25, f"Not run yet: {why}", ha="center", color="#5b6573")
    return fig


def task_figure(task: str, cells: list[dict], plt):
    rows = [c for c in cells if c["task"] == task and c["primary"] and c["value"] is not None]
    if not rows:
        return None
    rows.sort(key=lambda c: (c["system"], c["shots"]))
    labels = [f"{c['system']}\n{c['prompting']}" for c in rows]
    values = [c["value"] for c in rows]
    err = [[c["value"] - c["ci_low"] for c in rows], [c["ci_high"] - c["value"] for c in rows]]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 3.4))
    ax.bar(range(len(rows)), values, yerr=err, capsize=4,
           color=[COLORS.get(condition(c), "#999999") for c in rows])
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right")
    ax.set_ylabel(rows[0]["metric"])
    ax.set_ylim(0, max(1.0, max(c["ci_high"] for c in rows) * 1.05))
    ax.set_title(f"{task}: {rows[0]['metric']} with {rows[0]['confidence']:.0%} CI (n={rows[0]['n']})")
    return fig


def forgetting_figure(comparisons: list[dict], plt):
    rows = [(rep["system"], r) for rep in comparisons for r in rep["rows"] if r["primary"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.2))
    ys = range(len(rows))
    deltas = [r["delta_pp"] for _, r in rows]
    err = [[r["delta_pp"] - r["ci_low_pp"] for _, r in rows], [r["ci_high_pp"] - r["delta_pp"] for _, r in rows]]
    colors = ["#54a24b" if r["ci_low_pp"] > 0 else "#e45756" if r["ci_high_pp"] < 0 else "#999999" for _, r in rows]
    ax.barh(list(ys), deltas, xerr=err, capsize=3, color=colors)
    ax.scatter(deltas, list(ys), color="black", s=10, zorder=3)  # a zero change still shows
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(list(ys), [f"{r['task']} vs base {r['base_prompting']}" if r["role"] == "target"
                             else f"{r['task']} (general)" for _, r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("fine-tuned − base, percentage points (paired bootstrap CI)")
    ax.set_title("What fine-tuning changed: " + ", ".join(dict.fromkeys(s for s, _ in rows)))
    return fig


def cost_figure(costs: dict | None, plt):
    rows = [r for r in (costs or {}).get("rows", []) if r["cost_per_query_usd"]]
    if not rows or costs is None:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for task in dict.fromkeys(r["task"] for r in rows):
        part = [r for r in rows if r["task"] == task]
        ax.scatter([r["cost_per_query_usd"] for r in part], [r["value"] for r in part], label=task, s=36)
        for r in part:
            ax.annotate(f"{r['system']} {r['prompting']}", (r["cost_per_query_usd"], r["value"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"cost per query ({costs['currency']}, log scale)")
    ax.set_ylabel("primary metric")
    ax.set_title("Quality against cost per query")
    ax.legend(fontsize=7)
    return fig


def tco_figure(costs: dict | None, plt):
    rows = [r for r in (costs or {}).get("rows", []) if r["tco_usd"] is not None]
    if not rows or costs is None:
        return None
    best: dict[str, dict] = {}  # one bar per system: its cheapest cell (the condition one would deploy)
    for r in rows:
        if r["system"] not in best or r["tco_usd"] < best[r["system"]]["tco_usd"]:
            best[r["system"]] = r
    systems = sorted(best, key=lambda s: best[s]["tco_usd"])
    fig, ax = plt.subplots(figsize=(6.0, 0.5 * len(systems) + 1.3))
    serving = [best[s]["tco_breakdown"].get("serving_usd") or best[s]["tco_breakdown"].get("queries_usd") or 0
               for s in systems]
    training = [best[s]["tco_breakdown"].get("training_usd") or 0 for s in systems]
    ax.barh(systems, serving, color="#4c78a8", label="serving / queries")
    ax.barh(systems, training, left=serving, color="#54a24b", label="adapter training")
    ax.invert_yaxis()
    tco = costs["tco"]
    ax.set_xlabel(f"{tco['months']}-month TCO ({costs['currency']}) at {tco['queries_per_day']:,g} queries/day")
    ax.set_title("Total cost of ownership (cheapest condition per system)")
    ax.legend(fontsize=7)
    return fig


def plot_names(tasks: list[str]) -> list[str]:
    """The plot files of a run, in reading order (task and benchmark names, then the comparisons)."""
    return [f"task_{t}.png" for t in tasks] + ["forgetting.png", "cost_accuracy.png", "tco.png"]


def render_plots(summary: dict, paths: dict[str, str | Path]) -> None:
    """Write every plot of `paths` (name -> file, names from plot_names)."""
    plt = _pyplot()
    costs = summary.get("costs")
    for name, path in paths.items():
        if name.startswith("task_"):
            task = name.removeprefix("task_").removesuffix(".png")
            fig = task_figure(task, summary["cells"], plt) or _placeholder(task, "no scores for this task", plt)
        elif name == "forgetting.png":
            fig = forgetting_figure(summary.get("comparisons", []), plt) or _placeholder(
                "What fine-tuning changed", "no fine-tuned system compared with its base", plt)
        elif name == "cost_accuracy.png":
            fig = cost_figure(costs, plt) or _placeholder("Quality against cost per query", "no priced cells", plt)
        elif name == "tco.png":
            fig = tco_figure(costs, plt) or _placeholder("Total cost of ownership", "no priced cells", plt)
        else:
            raise ValueError(f"unknown plot {name}")
        _save(fig, Path(path), plt)
    log.info("%d plot(s): %s", len(paths), ", ".join(paths))
