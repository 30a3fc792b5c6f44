"""The budget preview: `tunebench plan` lists Snakemake's own jobs with estimates from earlier runs'
measurements, and a `budget` refuses a run whose estimate exceeds it before its first job."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

from conftest import run
from tunebench.plan.budget import format_plan, make_plan, over_budget, read_budget
from tunebench.plan.dag import PlannedJob
from tunebench.plan.estimate import Estimator
from tunebench.plan.records import PredictionRecord, Records, benchmark_seconds, load_records

TUNEBENCH = str(Path(sys.executable).with_name("tunebench"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def measured_by_rule(repo: Path) -> dict[str, list[float]]:
    """What the run measured per job: its benchmark `s`, else Snakemake's start-to-end record."""
    records = load_records(repo)
    return {rule: seconds for rule, seconds in records.by_rule.items()}


def test_the_plan_of_the_test_suite_matches_what_its_run_measured(demo_run):
    """As if nothing were built (--forceall): every job of the run, each estimated from the run's own
    measurements, and every job class within 30 % of the wall time the run measured for it."""
    proc = run([TUNEBENCH, "--root", str(demo_run), "plan", "--config", "suite=test", "--cores", "2", "--forceall",
                "--no-probe", "--json"], cwd=demo_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    jobs = plan["jobs"]
    rules = {j["rule"] for j in jobs}
    assert {"predictions_generate", "adapter_train", "lm_eval_run", "split_prepare", "summary_build"} <= rules
    assert all(j["source"] == "record" for j in jobs), [j for j in jobs if j["source"] != "record"]
    cells = [j for j in jobs if j["rule"] == "predictions_generate"]
    assert all(" 6 x " in j["basis"] for j in cells)  # max_eval_items of suite test, from the prepared split
    measured = measured_by_rule(demo_run)
    for rule in rules - {"all"}:
        estimate = sum(j["seconds"] for j in jobs if j["rule"] == rule)
        actual = sum(measured[rule])
        assert estimate == pytest.approx(actual, rel=0.3, abs=1.0), (rule, estimate, actual)
    assert plan["wall_s"] >= plan["critical_path_s"] > 0 and plan["gpu_hours"] == 0 and plan["usd"] == 0
    # nothing to do once built: the plan is Snakemake's own view of what is stale
    proc = run([TUNEBENCH, "--root", str(demo_run), "plan", "--config", "suite=test", "--no-probe", "--json"],
               cwd=demo_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["jobs"] == []


def _job(rule: str, jobid: int = 0, deps: tuple[int, ...] = (), gpu: int = 0, threads: int = 1, **wildcards) -> PlannedJob:
    return PlannedJob(jobid=jobid, rule=rule, wildcards=wildcards, outputs=(f"out/{rule}/{jobid}",), benchmark=None,
                      gpu=gpu, threads=threads, deps=deps)


def _api_record(**fields) -> PredictionRecord:
    base = dict(results_dir="results", system="gpt-5.4-mini", model="gpt-5.4-mini", adapter=None,
                task="ticket_routing", prompting="0shot", method="generate", backend="openai", device=None, n=40,
                generate_s=20.0, model_load_s=0.1, wall_s=26.0, tokens_in_mean=212.5, tokens_out_mean=3.25)
    return PredictionRecord(**{**base, **fields})


def test_api_dollars_are_what_the_run_records_and_max_new_tokens_bounds_them(repo_root, tmp_path):
    from tunebench.config.loader import load_project_from_file
    from tunebench.report.cost import cell_cost

    project = load_project_from_file(repo_root, overrides={"models": ["smollm2-135m-instruct", "gpt-5.4-mini"]})
    record = _api_record()
    estimator = Estimator(project, Records(predictions=[record]), tmp_path)
    job = _job("predictions_generate", system="gpt-5.4-mini", task="ticket_routing", prompting="0shot")
    est = estimator.estimate(job)
    items = project.suite["max_eval_items"]  # no prepared split here: the suite's cap
    recorded = cell_cost(model="gpt-5.4-mini", is_api=True, device=None, tokens_in_mean=record.tokens_in_mean,
                         tokens_out_mean=record.tokens_out_mean, items_per_s=None, pricing=project.pricing)
    assert est.device == "api" and est.source == "record"
    assert est.usd == pytest.approx(recorded["cost_per_query_usd"] * items, rel=1e-6)
    price = project.pricing["api"]["gpt-5.4-mini"]
    max_new = project.tasks["ticket_routing"].generation["max_new_tokens"]
    assert est.usd_upper == pytest.approx(
        items * (212.5 * price["input_per_mtok"] + max_new * price["output_per_mtok"]) / 1e6)
    assert est.usd < est.usd_upper
    assert est.seconds == pytest.approx(6.0 + items * 0.5)  # overhead (wall - generate) + items x s/item

    # no record of the cell: the prompts built from the prepared splits, 4 characters a token
    from tunebench.core.atomic import write_jsonl

    prepared = tmp_path / project.layout.prepared_dir("ticket_routing")
    rows = [{"id": f"t{i}", "input": "x" * 400, "target": project.tasks["ticket_routing"].labels[0]} for i in range(8)]
    write_jsonl(prepared / "test.jsonl", rows)
    write_jsonl(prepared / "train.jsonl", rows)
    fresh = Estimator(project, Records(), tmp_path).estimate(job)
    assert fresh.source == "default" and fresh.usd is not None and fresh.usd_upper is not None
    tokens_in = (fresh.usd_upper / 8 * 1e6 - max_new * price["output_per_mtok"]) / price["input_per_mtok"]
    assert tokens_in > 400 / 4  # the item's text and the prompt around it
    assert fresh.usd == fresh.usd_upper  # no measured output tokens: the bound is the estimate


def test_totals_are_the_longest_chain_or_the_work_over_the_cores_and_gpu_hours_count_gpu_jobs():
    estimates = []
    from tunebench.plan.estimate import JobEstimate

    for jobid, seconds, deps, device in ((0, 100, (), "cpu"), (1, 300, (0,), "gpu"), (2, 100, (), "cpu"),
                                         (3, 100, (), "cpu")):
        estimates.append(JobEstimate(_job("x", jobid, deps, gpu=device == "gpu"), seconds, "record", "", device))
    plan = make_plan(estimates, cores=4)
    assert plan.critical_path_s == 400 and plan.serial_s == 150 and plan.wall_s == 400
    assert plan.gpu_hours == pytest.approx(300 / 3600)
    assert make_plan(estimates, cores=1).wall_s == 600  # one core: the sum
    table = format_plan(plan)
    assert "4 jobs; wall 6.7 min on 4 core(s)" in table and "GPU 0.083 h" in table

    over = over_budget(plan, {"gpu_hours": 0.05}, "configs/config.yaml")
    assert over is not None and over.field == "budget.gpu_hours" and "most: x 0.0833 GPU h" in str(over)
    assert over_budget(plan, {"gpu_hours": 0.1, "wall_hours": 1}, "c.yaml") is None


def test_a_budget_from_the_command_line_is_read_as_numbers_and_bad_values_are_named():
    from tunebench.core.errors import ConfigError

    assert read_budget({"budget": {"usd": "2.5", "gpu_hours": None, "wall_hours": 1}}) == {"usd": 2.5, "wall_hours": 1.0}
    assert read_budget({}) == {}
    with pytest.raises(ConfigError, match="budget.usd"):
        read_budget({"budget": {"usd": "lots"}})


def test_benchmark_files_are_read_as_their_mean_seconds(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t100\n13.5\t0:00:13\t100\n")
    assert benchmark_seconds(tsv) == 13.0
    tsv.write_text("garbage")
    assert benchmark_seconds(tsv) is None
    assert statistics.median([1.0]) == 1.0


def test_a_probe_calibrates_a_model_once_and_the_plan_uses_it(tiny_llama_dir, repo_root, tmp_path, monkeypatch):
    from tunebench.config.loader import load_project_from_file
    from tunebench.core.spec import Model
    from tunebench.plan import probe as probe_module

    spec = Model(name="tiny", source={"kind": "local", "path": str(tiny_llama_dir)})
    out = tmp_path / "probe-tiny.json"
    doc = probe_module.calibrate(spec, tiny_llama_dir, out)
    assert out.is_file() and doc["load_s"] > 0 and doc["item_s"] > 0 and doc["tokens"] == probe_module.PROBE_TOKENS

    project = load_project_from_file(repo_root)
    stored = tmp_path / probe_module.probe_file(project.results_dir, "smollm2-135m-instruct")
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({**doc, "load_s": 5.0, "item_s": 0.5, "tokens": 8}))
    monkeypatch.setattr(probe_module, "calibrate", lambda *a, **k: pytest.fail("a stored probe is reused"))
    estimator = Estimator(project, Records(), tmp_path, probe=probe_module.prober(project, tmp_path))
    est = estimator.estimate(_job("predictions_generate", system="smollm2-135m-instruct", task="ticket_routing",
                                  prompting="0shot"))
    max_new = project.tasks["ticket_routing"].generation["max_new_tokens"]
    assert est.source == "probe" and est.seconds == pytest.approx(5.0 + 150 * 0.5 * max_new / 8)


def test_a_run_over_its_budget_is_refused_before_any_job_and_one_within_it_runs(project_copy):
    target = "data/raw/ticket_routing"
    dry = run([SNAKEMAKE, target, "-n", "--config", "suite=test", "budget={wall_hours: 0.000001}"], cwd=project_copy)
    assert dry.returncode == 0, dry.stderr[-3000:]  # a dry run shows the plan and the verdict, refuses nothing
    assert "raw_fetch[ticket_routing]  cpu" in dry.stderr and "(dry run: nothing was refused)" in dry.stderr
    over = run([SNAKEMAKE, target, "--cores", "1", "--config", "suite=test", "budget={wall_hours: 0.000001}"],
               cwd=project_copy)
    assert over.returncode != 0
    lines = [line for line in over.stderr.splitlines() if line.startswith("tunebench: ")]
    assert len(lines) == 1 and "budget.wall_hours" in lines[0] and "raw_fetch[ticket_routing]" in lines[0], over.stderr[-2000:]
    assert "Traceback" not in over.stderr
    assert not (project_copy / target).exists()
    locks = project_copy / ".snakemake/locks"
    assert not locks.is_dir() or not any(locks.iterdir())

    fits = run([SNAKEMAKE, target, "--cores", "1", "--config", "suite=test", "budget={wall_hours: 1, usd: 0}"],
               cwd=project_copy)
    assert fits.returncode == 0, fits.stderr[-3000:]
    assert "budget: the run fits" in fits.stderr and (project_copy / target).is_dir()


def test_training_is_estimated_from_work_units_so_a_one_step_record_scales_to_a_long_run(repo_root, tmp_path):
    from tunebench.config.loader import load_project_from_file
    from tunebench.plan.records import TrainingRecord

    project = load_project_from_file(repo_root)  # suite demo: cpu-lora, batch 8, eval every 4 steps on 32 items
    one_step = TrainingRecord(model="smollm2-135m-instruct", adapter="ticket_routing-16", device="cpu", steps=1,
                              train_s=56.0, wall_s=76.0, per_step=8, n_val=32, eval_steps=4)
    assert one_step.unit_s == pytest.approx(1.0)  # 3 x 8 training + 32 evaluation units
    est = Estimator(project, Records(trainings=[one_step]), tmp_path).estimate(
        _job("adapter_train", model="smollm2-135m-instruct", task="ticket_routing", size="128"))
    # 16 steps of 8 examples, 4 evaluations of 32 items: 384 + 128 units, plus the record's 20 s overhead
    assert est.source == "record" and est.seconds == pytest.approx(20.0 + 512.0)


def test_a_benchmark_run_is_scaled_to_the_documents_this_run_evaluates(repo_root, tmp_path):
    from tunebench.config.loader import load_project_from_file
    from tunebench.plan.records import LmEvalRecord

    project = load_project_from_file(repo_root)  # suite demo: no suite-wide benchmark_limit
    test_run = LmEvalRecord(results_dir="results/test", system="smollm2-135m-instruct", benchmark="humaneval",
                            original=164, effective=5, eval_s=20.0, wall_s=30.0)
    est = Estimator(project, Records(lm_evals=[test_run]), tmp_path).estimate(
        PlannedJob(jobid=0, rule="lm_eval_run", wildcards={"system": "smollm2-135m-instruct", "benchmark": "humaneval"},
                   outputs=("results/lm_eval/smollm2-135m-instruct/humaneval",), benchmark=None, gpu=0, threads=1,
                   deps=()))
    assert project.benchmark_limit("humaneval") == 16  # configs/benchmarks/humaneval.yaml
    # the record's overhead (wall - evaluation) + 16 documents x 4 s each (20 s over 5)
    assert est.source == "record" and est.seconds == pytest.approx(10.0 + 16 * 4.0)


def test_a_budget_changes_no_result_so_it_reruns_nothing(repo_root):
    """The config hash (a param of the summary) leaves the budget out: setting one, or raising it,
    must not rerun the summary of a finished run (it did: 4 jobs ran for a budget alone)."""
    from tunebench.config.loader import load_project_from_file

    plain = load_project_from_file(repo_root, overrides={"suite": "test"})
    limited = load_project_from_file(repo_root, overrides={"suite": "test", "budget": {"usd": "5", "wall_hours": 2}})
    assert limited.config["budget"]["wall_hours"] == 2 and plain.fingerprint() == limited.fingerprint()
    other = load_project_from_file(repo_root, overrides={"suite": "test", "bootstrap": {"resamples": 999}})
    assert other.fingerprint() != plain.fingerprint()  # what changes results still changes the hash
