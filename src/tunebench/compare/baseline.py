"""Stored baselines (baselines/<system>.json) and comparisons against them.

A baseline keeps, per score of a system (task or benchmark x prompting): every metric's value,
interval and n, and the per-item outcomes, so a later run is compared item by item. It records the
run id, date, suite, commit and config hash. Writing one never replaces another silently: the
previous file is kept under baselines/history/<system>/.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import jsonschema

from tunebench.compare.gate import FAIL, IMPROVED, PASS, gate_score
from tunebench.core.atomic import read_json, write_json
from tunebench.core.errors import TunebenchError
from tunebench.core.layout import Layout
from tunebench.core.records import TASK, record_source

SCHEMA = Path("configs") / "schema" / "baseline.schema.json"
ITEM_KEYS = ("id", "score", "values", "target", "parsed")
BASELINE_VERSION = 1  # schema_version of the files this version writes and reads


class BaselineError(TunebenchError):
    """A baseline that is missing, malformed, or would be overwritten silently."""


def _score_entry(score: dict) -> dict:
    return {
        "task": score["task"], "prompting": score["prompting"], "source": record_source(score),
        **({"method": score["method"]} if record_source(score) == TASK else {}),
        "primary_metric": score["primary_metric"], "n": score["n"],
        "metrics": {m: {k: s.get(k) for k in ("value", "ci_low", "ci_high", "confidence")}
                    for m, s in score["metrics"].items()},
        "items": [{k: it[k] for k in ITEM_KEYS if k in it} for it in score["items"]],
    }


def baseline_from_results(results_dir: str | Path, system: str, run_id: str) -> dict:
    """A baseline document from a finished run's scores and summary."""
    results = Path(results_dir)
    layout = Layout(str(results))
    summary_path = Path(layout.summary())
    if not summary_path.is_file():
        raise BaselineError(f"no finished run in {results}: {summary_path} does not exist",
                            field="--results", fix="run the workflow first (make demo), or point --results at a run")
    summary = read_json(summary_path)
    scores = [read_json(p) for p in sorted(Path(layout.scores_dir(system)).glob("*/*.json"))]
    if not scores:
        every = Path(layout.scores_dir())
        known = sorted(p.name for p in every.iterdir()) if every.is_dir() else []
        raise BaselineError(f"no scores for system {system!r} in {every}", field="--system",
                            fix=f"use one of: {', '.join(known) or '(none)'}")
    prov = summary["provenance"]
    return {
        "schema_version": BASELINE_VERSION, "system": system, "model": scores[0]["model"], "adapter": scores[0]["adapter"],
        "run_id": run_id, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": summary["suite"], "git_commit": prov["git_commit"], "config_hash": prov["config_hash"],
        "run_started_at": prov["started_at"],
        "throughput": {f"{s['task']}/{s['prompting']}": s["timing"].get("items_per_s") for s in scores},
        "scores": [_score_entry(s) for s in scores],
    }


def load_baseline(path: str | Path, root: str | Path = ".") -> dict:
    """A baseline file, checked against its schema and its file name (one clear error naming the
    file and field). A baseline is written by `tunebench baseline update`, never by hand: every fix
    is to write it again from a finished run."""
    from tunebench.core.errors import ConfigError
    from tunebench.core.schema import check_schema, load_schema

    path = Path(path)
    system = path.stem
    again = (f"write it again from a finished run: `tunebench baseline update --system {system} --run-id ID "
             f"--replace` (the old file is kept under baselines/history/{system}/), or delete it")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(f"not valid JSON (line {exc.lineno}: {exc.msg})", file=str(path),
                            fix=f"restore it from baselines/history/{system}/ or {again}") from None
    except UnicodeDecodeError:
        raise BaselineError("not UTF-8 text (a JSON file must be)", file=str(path),
                            fix=f"restore it from baselines/history/{system}/ or {again}") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version is not None and version != BASELINE_VERSION:
        raise BaselineError(f"schema_version {version!r}: written by another tunebench version (this one reads "
                            f"version {BASELINE_VERSION})", file=str(path), field="schema_version", fix=again)
    try:
        check_schema(doc, load_schema(Path(root), "baseline.schema.json"), str(path))
    except ConfigError as exc:
        raise BaselineError(exc.problem, file=exc.file, field=exc.field, fix=f"{exc.fix}; better, {again}") from None
    if doc["system"] != system:
        raise BaselineError(f"holds the baseline of system {doc['system']!r}, but its file name says {system!r}: "
                            f"{system} would be compared with another system's scores", file=str(path),
                            field="system", fix=f"rename it to {doc['system']}.json if that is what it is, or {again}")
    return doc


def write_baseline(doc: dict, baselines_dir: str | Path, *, root: str | Path = ".", replace: bool = False) -> Path:
    """baselines/<system>.json; an existing one is archived under history/, never silently lost."""
    folder = Path(baselines_dir)
    target = folder / f"{doc['system']}.json"
    if target.exists():
        if not replace:
            old = read_json(target)
            raise BaselineError(f"{target} already holds run {old.get('run_id')!r} ({old.get('created_at')})",
                                file=str(target), fix="pass --replace to archive it under "
                                f"{folder / 'history' / doc['system']}/ and write the new one")
        old = read_json(target)
        stamp = str(old.get("created_at", "unknown")).replace(":", "").replace("+0000", "Z")
        archive = folder / "history" / doc["system"] / f"{stamp}-{old.get('run_id', 'unknown')}.json"
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, archive)
    jsonschema.validate(doc, read_json(Path(root) / SCHEMA))
    write_json(target, doc)
    return target


def compare_to_baseline(baseline: dict | None, scores: list[dict], *, system: str, gates: dict,
                        labels: dict[str, list[str] | None], bootstrap: dict, baseline_file: str) -> dict:
    """Every score of `system` against the baseline: verdict rows and a count per verdict."""
    if baseline is None:
        return {"system": system, "baseline": None, "rows": [], "counts": {},
                "note": f"no baseline yet: write one with `tunebench baseline update --system {system} --run-id ID`"}
    stored = {(s["task"], s["prompting"]): s for s in baseline["scores"]}
    rows, missing = [], []
    for score in sorted(scores, key=lambda s: (s["task"], s["prompting"])):
        base = stored.get((score["task"], score["prompting"]))
        if base is None:
            missing.append(f"{score['task']}/{score['prompting']}")
            continue
        rows += gate_score(base, score, gates=gates, labels=labels.get(score["task"]), bootstrap=bootstrap)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (PASS, FAIL, IMPROVED)}
    return {"system": system, "baseline": {"file": baseline_file, "run_id": baseline["run_id"],
                                           "created_at": baseline["created_at"], "suite": baseline["suite"]},
            "rows": rows, "counts": counts, "not_in_baseline": missing,
            "gate": FAIL if counts[FAIL] else PASS}
