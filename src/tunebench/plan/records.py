"""What earlier runs measured, read back as the estimator's calibration.

- Snakemake's `benchmark:` TSVs (results/<suite>/timings/, logs/timings/): a job's wall time (`s`),
  start-up and model loading included.
- Snakemake's own job records (.snakemake/metadata): start and end time of every job, for the
  rules that have no `benchmark:` file.
- Prediction meta files: items, generation seconds and throughput of one cell, and the rows next to
  them for tokens in and out (what the endpoint or tokenizer counted).
- Adapter training records (training.json): steps and training seconds.

Everything is keyed the way the DAG names a job (output and benchmark paths relative to the project),
so a job is matched to its own earlier measurement first, and to its rule's or model's otherwise.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tunebench.core.atomic import read_json, read_jsonl


@dataclass(frozen=True)
class PredictionRecord:
    """One measured cell: predictions_generate for (system, task, prompting)."""

    results_dir: str
    system: str
    model: str
    adapter: str | None
    task: str
    prompting: str
    method: str
    backend: str
    device: str | None
    n: int
    generate_s: float
    model_load_s: float
    wall_s: float | None  # the job's benchmark `s`, when its TSV is there
    tokens_in_mean: float | None
    tokens_out_mean: float | None

    @property
    def item_s(self) -> float:
        return self.generate_s / max(self.n, 1)

    @property
    def overhead_s(self) -> float:
        """Everything but generating: process start, imports, loading weights, writing rows."""
        if self.wall_s is not None:
            return max(self.wall_s - self.generate_s, 0.0)
        return self.model_load_s


@dataclass(frozen=True)
class TrainingRecord:
    """One measured adapter_train job."""

    model: str
    adapter: str  # <task>-<size>
    device: str | None
    steps: int
    train_s: float
    wall_s: float | None
    per_step: int = 8  # examples per optimizer step (batch size x gradient accumulation)
    n_val: int = 0  # validation items of each evaluation
    eval_steps: int = 0  # an evaluation every this many steps (0: none)

    @property
    def unit_s(self) -> float:
        """Seconds per work unit (training_units): the record's training time over its units."""
        return self.train_s / max(training_units(self.steps, self.per_step, self.n_val, self.eval_steps), 1e-9)

    @property
    def overhead_s(self) -> float:
        return max(self.wall_s - self.train_s, 0.0) if self.wall_s is not None else 0.0


@dataclass(frozen=True)
class LmEvalRecord:
    """One measured lm_eval_run: documents evaluated, of how many, and lm-eval's own evaluation time."""

    results_dir: str
    system: str
    benchmark: str
    original: int  # the benchmark's documents
    effective: int  # those evaluated (its limit applied)
    eval_s: float
    wall_s: float | None

    @property
    def doc_s(self) -> float:
        return self.eval_s / max(self.effective, 1)

    @property
    def overhead_s(self) -> float:
        return max(self.wall_s - self.eval_s, 0.0) if self.wall_s is not None else 0.0


def training_units(steps: int, per_step: int, n_val: int, eval_steps: int) -> float:
    """The work of a training run in forward passes over one example: a training example costs 3
    (forward and backward), and each evaluation one per validation item (forward only). A short
    run is mostly evaluation, a long one mostly training: counting both is what lets a one-step
    record estimate a run of hundreds of steps."""
    evals = math.ceil(steps / min(eval_steps, steps)) if eval_steps > 0 and steps > 0 else 0
    return 3.0 * steps * per_step + evals * n_val


@dataclass
class Records:
    timings: dict[str, float] = field(default_factory=dict)  # benchmark TSV (relative path) -> s
    job_seconds: dict[str, float] = field(default_factory=dict)  # an output (relative path) -> its job's seconds
    by_rule: dict[str, list[float]] = field(default_factory=dict)  # rule -> every measured job's seconds
    predictions: list[PredictionRecord] = field(default_factory=list)
    trainings: list[TrainingRecord] = field(default_factory=list)
    lm_evals: list[LmEvalRecord] = field(default_factory=list)

    def rule_median(self, rule: str) -> float | None:
        seconds = self.by_rule.get(rule)
        return statistics.median(seconds) if seconds else None


def benchmark_seconds(path: Path) -> float | None:
    """The mean `s` of a Snakemake benchmark TSV (one row per repeat), None if unreadable."""
    try:
        with open(path, newline="") as f:
            values = [float(row["s"]) for row in csv.DictReader(f, delimiter="\t") if row.get("s")]
    except (OSError, ValueError, KeyError):
        return None
    return statistics.fmean(values) if values else None


def _timing_files(root: Path) -> list[Path]:
    found = []
    for top in ("logs", "results"):
        base = root / top
        if base.is_dir():
            found += [p for p in base.rglob("*.tsv") if "timings" in p.relative_to(root).parts]
    return found


def _rule_of_timing(rel: str) -> str | None:
    parts = Path(rel).parts
    i = parts.index("timings") if "timings" in parts else -1
    return parts[i + 1] if 0 <= i < len(parts) - 1 else None


def _metadata(root: Path) -> dict[str, dict]:
    """Snakemake's job records (.snakemake/metadata), by output path. A long path is split into
    nested folders whose names start with '@', the last part a file: the name is base64 of the path."""
    from base64 import urlsafe_b64decode

    folder = root / ".snakemake" / "metadata"
    out: dict[str, dict] = {}
    if not folder.is_dir():
        return out
    for dirpath, _dirs, files in os.walk(folder):
        prefix = "".join(p[1:] for p in Path(dirpath).relative_to(folder).parts)
        for name in files:
            try:
                key = urlsafe_b64decode(prefix + name).decode()
                record = json.loads((Path(dirpath) / name).read_text())
            except (ValueError, OSError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                out[key] = record
    return out


def _mean(values: list) -> float | None:
    nums = [v for v in values if isinstance(v, (int, float))]
    return statistics.fmean(nums) if nums else None


def _prediction(root: Path, meta_path: Path, timings: dict[str, float]) -> PredictionRecord | None:
    try:
        meta = read_json(meta_path)
        rel = meta_path.relative_to(root).as_posix()
        results_dir = rel.split("/predictions/")[0]
        n, gen_s = int(meta["n"]), float(meta["generate_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rows_path = meta_path.with_name(meta_path.name.replace(".meta.json", ".jsonl"))
    try:
        rows = read_jsonl(rows_path)
    except (OSError, ValueError):
        rows = []
    timing = f"{results_dir}/timings/predictions_generate/{meta['system']}/{meta['task']}/{meta['prompting']}.tsv"
    return PredictionRecord(
        results_dir=results_dir, system=meta["system"], model=meta.get("model") or meta["system"].split("+")[0],
        adapter=meta.get("adapter"), task=meta["task"], prompting=meta["prompting"],
        method=meta.get("method") or "generate", backend=meta.get("backend") or "", device=meta.get("device"),
        n=n, generate_s=gen_s, model_load_s=float(meta.get("model_load_s") or 0.0), wall_s=timings.get(timing),
        tokens_in_mean=_mean([r.get("tokens_in") for r in rows]),
        tokens_out_mean=_mean([r.get("tokens_out") for r in rows]))


def _training(root: Path, record_path: Path, timings: dict[str, float]) -> TrainingRecord | None:
    try:
        doc = read_json(record_path)
        adapter_dir = record_path.parent.relative_to(root).as_posix()
        results_dir, rest = adapter_dir.split("/adapters/")
        model, adapter = rest.split("/")
        steps = int(doc.get("steps_this_run") or doc["steps"])
        train_s = float(doc["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    hp = doc.get("training") or {}
    return TrainingRecord(model=model, adapter=adapter, device=doc.get("device"), steps=steps, train_s=train_s,
                          wall_s=timings.get(f"{results_dir}/timings/adapter_train/{model}/{adapter}.tsv"),
                          per_step=int(hp.get("batch_size", 8)) * int(hp.get("gradient_accumulation_steps", 1)),
                          n_val=int(doc.get("n_val") or 0), eval_steps=int(hp.get("eval_steps", 50)))


def _lm_eval(root: Path, path: Path, timings: dict[str, float]) -> LmEvalRecord | None:
    """results_*.json of lm-eval, in <results_dir>/lm_eval/<system>/<benchmark>/<run>/."""
    try:
        doc = read_json(path)
        results_dir, rest = path.relative_to(root).as_posix().split("/lm_eval/")
        system, benchmark = rest.split("/")[:2]
        ((original, effective),) = [(int(n["original"]), int(n["effective"])) for n in doc["n-samples"].values()]
        eval_s = float(doc["total_evaluation_time_seconds"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return LmEvalRecord(results_dir=results_dir, system=system, benchmark=benchmark, original=original,
                        effective=effective, eval_s=eval_s,
                        wall_s=timings.get(f"{results_dir}/timings/lm_eval_run/{system}/{benchmark}.tsv"))


def load_records(root: str | Path) -> Records:
    """Every measurement under `root` (any suite's results folder, the shared logs, Snakemake's records)."""
    root = Path(root)
    records = Records()
    for path in _timing_files(root):
        seconds = benchmark_seconds(path)
        rel = path.relative_to(root).as_posix()
        rule = _rule_of_timing(rel)
        if seconds is None or rule is None:
            continue
        records.timings[rel] = seconds
    jobs: dict[tuple, float] = {}  # one entry per job, not per output: its log files name it
    for key, record in _metadata(root).items():
        start, end, rule = record.get("starttime"), record.get("endtime"), record.get("rule")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start and rule:
            records.job_seconds[key] = end - start
            job = (rule, tuple(record.get("log") or ()) or key)
            jobs[job] = max(jobs.get(job, 0.0), end - start)
    for (rule, _), seconds in jobs.items():
        records.by_rule.setdefault(rule, []).append(seconds)
    # a benchmark's `s` is the job's own measure: it replaces the record's for rules that have one
    benchmarked: dict[str, list[float]] = {}
    for rel, seconds in records.timings.items():
        benchmarked.setdefault(_rule_of_timing(rel) or "", []).append(seconds)
    records.by_rule.update(benchmarked)
    results = root / "results"
    if results.is_dir():
        for meta_path in sorted(results.rglob("*.meta.json")):
            if "predictions" in meta_path.relative_to(root).parts:
                pred = _prediction(root, meta_path, records.timings)
                if pred is not None:
                    records.predictions.append(pred)
        for path in sorted(results.rglob("results_*.json")):
            if "lm_eval" in path.relative_to(root).parts and ".resume" not in path.parts:
                lm = _lm_eval(root, path, records.timings)
                if lm is not None:
                    records.lm_evals.append(lm)
        for record_path in sorted(results.rglob("training.json")):
            if "adapters" in record_path.relative_to(root).parts and ".work" not in record_path.parts:
                train = _training(root, record_path, records.timings)
                if train is not None:
                    records.trainings.append(train)
    return records
