"""Per-job estimates of wall time, device and API dollars (totals and the budget: plan.budget).

The estimator model, per rule:
- predictions_generate: overhead + items x seconds per item, both measured on an earlier cell
  (its benchmark `s` minus its `generate_s` is the overhead: process start, imports, loading the
  model). The closest record wins: this very cell, else the same model on the same task and
  prompting (another adapter), else the same model and prompting, else the same model; without one, a
  calibration probe of the model (tunebench.plan.probe) when its weights are here, else a default.
- adapter_train: overhead + the planned run's work x measured seconds per unit of work (the same
  model's training; records.training_units counts training steps and evaluations).
- lm_eval_run: overhead + documents x seconds per document, from the benchmark's earlier run on this
  system, else on another; the documents are the benchmark's, under this run's limit.
- every other rule: its own earlier job, else the median of the rule's measured jobs, else a default.
Each estimate says where it came from: `record`, `probe` or `default`.

API dollars (API models only): items x (prompt tokens x input price + output tokens x output price).
Prompt tokens as the endpoint counted them on an earlier run of the cell, else the prompts built from
the prepared data at 4 characters a token (an API model's tokenizer is not available here); output
tokens as measured (expected) and max_new_tokens (upper bound).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunebench.core.spec import Project, System, parse_prompting
from tunebench.plan.dag import PlannedJob
from tunebench.plan.records import PredictionRecord, Records, training_units

DEFAULT_JOB_S = 10.0  # a rule never measured here: a Python process start and a small file
DEFAULT_LOAD_S = 30.0  # start-up and loading a model never measured here
DEFAULT_ITEM_S = {"cpu": 2.0, "gpu": 0.2, "api": 1.0}  # per item, generating, for a model never measured
DEFAULT_STEP_S = 10.0  # per training step
CHARS_PER_TOKEN = 4.0  # the usual approximation for English text, where no tokenizer is at hand


@dataclass
class JobEstimate:
    job: PlannedJob
    seconds: float
    source: str  # record | probe | default
    basis: str  # which measurement, in words
    device: str  # cpu | gpu | api
    usd: float | None = 0.0  # API dollars, expected (None: unknown)
    usd_upper: float | None = 0.0  # API dollars if every answer used max_new_tokens

    @property
    def gpu_hours(self) -> float:
        return self.seconds / 3600.0 if self.device == "gpu" else 0.0


class Estimator:
    """Estimates for the jobs of one project, from `records` (and probes, when `probe` is given:
    model name -> {"load_s", "item_s"} or None)."""

    def __init__(self, project: Project, records: Records, root: str | Path,
                 probe: Callable[[str], dict | None] | None = None):
        self.project = project
        self.records = records
        self.root = Path(root)
        self.probe = probe
        self.results_dir = str(project.results_dir).rstrip("/")

    # -- helpers ---------------------------------------------------------------------------------
    def _lines(self, rel: str) -> int | None:
        path = self.root / rel
        try:
            with open(path, "rb") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return None

    def _items(self, task: str) -> int | None:
        """How many test items a cell of `task` evaluates: the suite's cap and the prepared split (before
        the data is prepared: the task's test sample size, or its expected rows x its test share)."""
        cap = self.project.suite.get("max_eval_items")
        rows = self._lines(self.project.layout.prepared(task, "test"))
        spec = self.project.tasks[task]
        if rows is None and spec.test_sample_size:
            rows = int(spec.test_sample_size)
        expected = spec.expected_rows
        if rows is None and isinstance(expected, dict) and expected.get("test"):  # per official split
            rows = int(expected["test"])
        elif rows is None and isinstance(expected, int) and spec.split.get("test"):
            rows = round(expected * float(spec.split["test"]))
        if cap and rows is not None:
            return min(cap, rows)
        return cap or rows

    def _model_device(self, model: str) -> str:
        spec = self.project.models.get(model)
        if spec is None:
            return "cpu"
        if spec.is_api:
            return "api"
        return "gpu" if spec.backend == "vllm" else "cpu"

    def _own_record(self, job: PlannedJob) -> float | None:
        if job.benchmark and job.benchmark in self.records.timings:
            return self.records.timings[job.benchmark]
        for out in job.outputs:
            if out in self.records.job_seconds:
                return self.records.job_seconds[out]
        return None

    def _prefer_suite(self, found: list[PredictionRecord]) -> list[PredictionRecord]:
        mine = [r for r in found if r.results_dir == self.results_dir]
        return mine or found

    # -- per rule --------------------------------------------------------------------------------
    def estimate(self, job: PlannedJob) -> JobEstimate:
        if job.rule in ("predictions_generate", "api_batch_submit"):  # a batch pays when it is submitted
            return self._prediction(job)
        if job.rule == "adapter_train":
            return self._training(job)
        device = "gpu" if job.gpu else "cpu"
        if not job.outputs:  # a target rule (all): nothing runs
            return JobEstimate(job, 0.0, "record", "no command", device)
        own = self._own_record(job)
        if own is not None:
            return JobEstimate(job, own, "record", "this job's earlier run", device)
        if job.rule == "lm_eval_run":
            scaled = self._lm_eval(job, device)
            if scaled is not None:
                return scaled
        median = self.records.rule_median(job.rule)
        if median is not None:
            count = len(self.records.by_rule[job.rule])
            return JobEstimate(job, median, "record", f"median of {count} measured {job.rule} job(s)", device)
        return JobEstimate(job, DEFAULT_JOB_S, "default", f"no {job.rule} job measured here", device)

    def _lm_eval(self, job: PlannedJob, device: str) -> JobEstimate | None:
        """The benchmark's earlier runs (this system's first, this suite's first), scaled to the
        documents this run evaluates (its limit: a count, or a share of the benchmark). Not scaled:
        max_gen_toks, whose effect depends on where the model stops on its own."""
        system, benchmark = job.wildcards["system"], job.wildcards["benchmark"]
        basis, found = _closest([("this system", lambda r: r.system == system and r.benchmark == benchmark),
                                 ("another system", lambda r: r.benchmark == benchmark)], self.records.lm_evals)
        if not found:
            return None
        found = [r for r in found if r.results_dir == self.results_dir] or found
        original = found[0].original
        limit = self.project.benchmark_limit(benchmark) if benchmark in self.project.benchmarks else None
        if limit is None:
            docs = original
        elif isinstance(limit, float) and limit < 1:
            docs = int(limit * original)  # as lm-eval reads a share
        else:
            docs = min(int(limit), original)
        doc_s = statistics.median(r.doc_s for r in found)
        overhead = statistics.median(r.overhead_s for r in found)
        return JobEstimate(job, overhead + docs * doc_s, "record",
                           f"{basis}'s {benchmark} ({len(found)} record(s)): {overhead:.0f} s + {docs} docs x "
                           f"{doc_s:.2f} s", device)

    def _prediction(self, job: PlannedJob) -> JobEstimate:
        w = job.wildcards
        system, task, prompting = w["system"], w["task"], w["prompting"]
        model = System.parse(system).model
        device = "gpu" if job.gpu else self._model_device(model)
        n = self._items(task)
        levels = [
            ("this cell", lambda r: r.system == system and r.task == task and r.prompting == prompting),
            ("the same model, task and prompting",
             lambda r: r.model == model and r.task == task and r.prompting == prompting),
            ("the same model and prompting", lambda r: r.model == model and r.prompting == prompting),
            ("the same model", lambda r: r.model == model),
        ]
        basis, found = _closest(levels, self.records.predictions)
        # an adapter's cell loads and runs differently from its base model's: like for like first
        found = self._prefer_suite([r for r in found if (r.adapter is None) == (System.parse(system).adapter is None)]
                                   or found)
        if found:
            item_s = statistics.median(r.item_s for r in found)
            overhead = statistics.median(r.overhead_s for r in found)
            items = n if n is not None else round(statistics.median(r.n for r in found))
            est = JobEstimate(job, overhead + items * item_s, "record",
                              f"{basis} ({len(found)} record(s)): {overhead:.0f} s + {items} x {item_s:.2f} s", device)
        else:
            items = n if n is not None else 1  # unknown before the data is prepared: the basis says 1
            calibration = self.probe(model) if self.probe and device != "api" else None
            if calibration:
                item_s = calibration["item_s"] * self._new_tokens(task) / calibration["tokens"]
                est = JobEstimate(job, calibration["load_s"] + items * item_s, "probe",
                                  f"probe of {model}: {calibration['load_s']:.0f} s + {items} x {item_s:.2f} s", device)
            else:
                item_s = DEFAULT_ITEM_S[device]
                est = JobEstimate(job, DEFAULT_LOAD_S + items * item_s, "default",
                                  f"no record of {model}: {DEFAULT_LOAD_S:.0f} s + {items} x {item_s:.2f} s", device)
        if device == "api":
            est.usd, est.usd_upper = self._api_dollars(model, task, prompting, items, found)
        return est

    def _new_tokens(self, task: str) -> int:
        return int(self.project.tasks[task].generation["max_new_tokens"])

    def _api_dollars(self, model: str, task: str, prompting: str, items: int,
                     found: list[PredictionRecord]) -> tuple[float | None, float | None]:
        price = (self.project.pricing or {}).get("api", {}).get(model)
        if price is None:
            return None, None
        spec = self.project.models.get(model)
        if spec is not None and spec.source.get("batch"):  # the Batch API's prices (report.cost)
            from tunebench.report.cost import batch_prices

            usd_in, usd_out = batch_prices(price, (self.project.pricing or {}).get("batch_discount", 0.5))
            price = {"input_per_mtok": usd_in, "output_per_mtok": usd_out}
        same_cell = [r for r in found if r.model == model and r.task == task and r.prompting == prompting]
        measured = [r.tokens_in_mean for r in same_cell if r.tokens_in_mean is not None]
        tokens_in = statistics.median(measured) if measured else self._prompt_tokens_approx(task, prompting, items)
        if tokens_in is None:
            return None, None
        upper_out = float(self._new_tokens(task))
        outs = [r.tokens_out_mean for r in same_cell if r.tokens_out_mean is not None]
        expected_out = statistics.median(outs) if outs else upper_out

        def dollars(out: float) -> float:
            return items * (tokens_in * price["input_per_mtok"] + out * price["output_per_mtok"]) / 1e6

        return dollars(expected_out), dollars(upper_out)

    def _prompt_tokens_approx(self, task_name: str, prompting: str, items: int) -> float | None:
        """Mean prompt tokens of the cell's real prompts (prepared data, shots drawn as the job draws
        them) at CHARS_PER_TOKEN; None before the data is prepared."""
        from tunebench.core.atomic import read_jsonl
        from tunebench.tasks import task_type
        from tunebench.tasks.prompting import PromptTemplate, draw_shots

        task = self.project.tasks[task_name]
        layout = self.project.layout
        try:
            test = read_jsonl(self.root / layout.prepared(task_name, "test"))[: max(items, 1)]
            train = read_jsonl(self.root / layout.prepared(task_name, "train"))
        except (OSError, ValueError):
            return None
        shots = parse_prompting(prompting)[0]
        examples = draw_shots(train, shots, self.project.config["prompting"]["fewshot_seed"], task.name,
                              stratify=task_type(task.type).stratify)
        template = PromptTemplate.from_spec(self.project.prompts[task_name], task.abstain)
        labels = list(task.labels or [])
        chars = [sum(len(str(m.get("content", ""))) for m in template.messages(item, examples, labels, task.answer_format))
                 for item in test]
        return statistics.fmean(chars) / CHARS_PER_TOKEN if chars else None

    def _training(self, job: PlannedJob) -> JobEstimate:
        w = job.wildcards
        model, adapter = w["model"], f"{w['task']}-{w['size']}"
        hp = self.project.training or {}
        device = "gpu" if job.gpu else "cpu"
        per_step = int(hp.get("batch_size", 8)) * int(hp.get("gradient_accumulation_steps", 1))
        if hp.get("max_steps", -1) and hp.get("max_steps", -1) > 0:
            steps = int(hp["max_steps"])
        else:  # as adapter_train counts them (tunebench.train.lora)
            split = "train" if w["size"] == "full" else f"train-{w['size']}"
            examples = self._lines(self.project.layout.prepared(w["task"], split))
            if examples is None:
                examples = int(w["size"]) if w["size"].isdigit() else None
            if examples is None:
                examples = self._lines(self.project.layout.prepared(w["task"], "train")) or 1000
            steps = math.ceil(math.ceil(examples / per_step) * hp.get("epochs", 1))
        val_rows = self._lines(self.project.layout.prepared(w["task"], "val"))
        n_val = min(int(hp.get("max_val_items", 256)), val_rows if val_rows is not None else 256)
        units = training_units(steps, per_step, n_val, int(hp.get("eval_steps", 50)))
        # never from another model: a 135M model's CPU steps say nothing about an 8B model's on a GPU
        basis, found = _closest([("this adapter", lambda r: r.model == model and r.adapter == adapter),
                                 ("the same model", lambda r: r.model == model)], self.records.trainings)
        if found:
            unit_s = statistics.median(r.unit_s for r in found)
            overhead = statistics.median(r.overhead_s for r in found)
            return JobEstimate(job, overhead + units * unit_s, "record",
                               f"{basis} ({len(found)} record(s)): {overhead:.0f} s + {steps} steps "
                               f"({units:.0f} units x {unit_s:.2f} s)", device)
        return JobEstimate(job, DEFAULT_LOAD_S + steps * DEFAULT_STEP_S, "default",
                           f"no training measured here: {DEFAULT_LOAD_S:.0f} s + {steps} steps x {DEFAULT_STEP_S:.0f} s",
                           device)


def _closest(levels: list, records: list) -> tuple[str, list]:
    """The records of the first level (closest first) that has any, and that level's name."""
    for basis, match in levels:
        found = [r for r in records if match(r)]
        if found:
            return basis, found
    return "", []


__all__ = ["DEFAULT_JOB_S", "Estimator", "JobEstimate"]
