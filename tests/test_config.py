"""Bad configuration fails before any job, with one message naming the file, the field and the fix."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run
from tunebench.config.loader import load_project_from_file
from tunebench.core.errors import ConfigError

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def edit_yaml(path: Path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_default_config_loads(repo_root):
    project = load_project_from_file(repo_root)
    assert project.promptings == ["0shot", "5shot"]
    assert set(project.tasks) == {"ticket_routing", "ticket_product"}
    routing = project.tasks["ticket_routing"]
    assert routing.type == "classification" and len(routing.labels) >= 8
    assert routing.primary_metric == "accuracy"
    assert project.results_dir == "results"
    # defaults from the schema are filled in
    assert project.models["smollm2-135m-instruct"].backend == "transformers"


def test_test_suite_has_its_own_results_dir(repo_root):
    project = load_project_from_file(repo_root, overrides={"suite": "test"})
    assert project.results_dir == "results/test"
    assert project.suite["max_eval_items"] <= 10


def expect_error(root, overrides=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_project_from_file(root, overrides=overrides)
    return info.value


def test_unknown_task_names_file_field_and_fix(repo_root):
    err = expect_error(repo_root, {"tasks": ["ticket_routing", "banking78"]})
    assert err.file == "configs/config.yaml"
    assert err.field == "tasks[1]"
    assert "banking78" in err.problem
    assert "ticket_routing" in err.fix and "configs/tasks/banking78.yaml" in err.fix


def test_unknown_model_and_suite(repo_root):
    assert expect_error(repo_root, {"models": ["gpt-9"]}).field == "models[0]"
    err = expect_error(repo_root, {"suite": "huge"})
    assert err.field == "suite" and "demo" in err.fix and "test" in err.fix


def test_negative_shots(repo_root):
    err = expect_error(repo_root, {"prompting": {"shots": [0, -5]}})
    assert err.field == "prompting.shots[1]"
    assert ">= 0" in err.fix


def test_missing_required_task_field(project_copy):
    edit_yaml(project_copy / "configs/tasks/ticket_routing.yaml", lambda d: d.pop("metrics"))
    err = expect_error(project_copy)
    assert err.file == "configs/tasks/ticket_routing.yaml"
    assert err.field == "metrics"
    assert "add `metrics:`" in err.fix


def test_classification_without_labels(project_copy):
    edit_yaml(project_copy / "configs/tasks/ticket_routing.yaml", lambda d: d.pop("labels"))
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("configs/tasks/ticket_routing.yaml", "labels")


def test_wrong_type_and_unknown_field(project_copy):
    task = project_copy / "configs/tasks/ticket_product.yaml"
    edit_yaml(task, lambda d: d["generation"].update(max_new_tokens="many"))
    err = expect_error(project_copy)
    assert err.field == "generation.max_new_tokens" and "integer" in err.fix
    edit_yaml(task, lambda d: (d["generation"].update(max_new_tokens=8), d.update(metric="f1")))
    err = expect_error(project_copy)
    assert "'metric'" in err.problem and "metrics" in err.fix


def test_metric_that_does_not_fit_the_task_type(project_copy):
    edit_yaml(project_copy / "configs/tasks/ticket_product.yaml", lambda d: d.update(metrics=["accuracy"]))
    err = expect_error(project_copy)
    assert err.field == "metrics" and "token_f1" in err.fix


def test_malformed_yaml_names_the_line(project_copy):
    path = project_copy / "configs/models/smollm2-135m-instruct.yaml"
    path.write_text("name: smollm2-135m-instruct\nsource: [kind: package\n")
    err = expect_error(project_copy)
    assert err.file == "configs/models/smollm2-135m-instruct.yaml"
    assert "line" in err.problem


def test_prompt_with_unknown_variable(project_copy):
    path = project_copy / "prompts/ticket_routing.yaml"
    path.write_text(path.read_text().replace("{{ input }}", "{{ ticket_text }}"))
    err = expect_error(project_copy)
    assert err.file == "prompts/ticket_routing.yaml" and err.field == "user"
    assert "ticket_text" in err.problem and "{{ input }}" in err.fix


def test_unknown_generator(project_copy):
    edit_yaml(project_copy / "configs/tasks/ticket_routing.yaml",
              lambda d: d["source"].update(generator="nope"))
    err = expect_error(project_copy)
    assert err.field == "source.generator" and "support_tickets" in err.fix


@pytest.mark.parametrize("config_arg, expected", [
    ("tasks=[ticket_routing,nope]", "field `tasks[1]`: unknown task 'nope'"),
    ("prompting={'shots':[0,-1]}", "field `prompting.shots[1]`"),
])
def test_snakemake_refuses_bad_config_before_any_job(project_copy, config_arg, expected):
    (project_copy / "results").mkdir()
    (project_copy / "results" / "keep.txt").write_text("earlier result")
    proc = run([SNAKEMAKE, "--cores", "1", "--config", config_arg], cwd=project_copy)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project_copy / "data").exists()  # nothing ran
    assert (project_copy / "results" / "keep.txt").read_text() == "earlier result"


def test_snakemake_refuses_missing_required_task_field(project_copy):
    edit_yaml(project_copy / "configs/tasks/ticket_product.yaml", lambda d: d.pop("prompt"))
    shutil.rmtree(project_copy / "data", ignore_errors=True)
    proc = run([SNAKEMAKE, "--cores", "1", "-n"], cwd=project_copy)
    assert proc.returncode != 0
    assert "configs/tasks/ticket_product.yaml: field `prompt`: required field is missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_suites_pick_their_benchmarks(repo_root):
    demo = load_project_from_file(repo_root)
    assert set(demo.benchmarks) == {"ifbench", "humaneval"}  # offline: shipped in packages
    assert demo.benchmarks["humaneval"]["kind"] == "humaneval" and demo.benchmarks["humaneval"]["timeout_s"] == 3
    test = load_project_from_file(repo_root, overrides={"suite": "test"})
    assert test.benchmark_limit("ifbench") == test.benchmark_limit("humaneval") == 5
    seeds = {"quick": {"ifbench", "ifeval"},
             "core": {"ifbench", "ifeval", "humaneval", "gsm8k", "hellaswag"},
             "full": {"ifbench", "ifeval", "humaneval", "gsm8k", "hellaswag", "mmlu"}}
    for suite, expected in seeds.items():
        assert set(load_project_from_file(repo_root, overrides={"suite": suite}).benchmarks) == expected
    core = load_project_from_file(repo_root, overrides={"suite": "core"})
    assert core.benchmark_limit("gsm8k") == 0.2  # a fraction, as lm-eval's --limit takes it
    assert core.benchmarks["gsm8k"]["chat_template"] is True  # on by default


def test_online_benchmarks_name_tasks_in_lm_evals_registry(repo_root):
    """Wiring of the online suites, checked against lm-eval's own task index (no download)."""
    from lm_eval.tasks import TaskManager

    project = load_project_from_file(repo_root)
    online = {n: b["task"] for n, b in project.benchmark_specs.items() if b["kind"] == "lm_eval"}
    assert set(online.values()) >= {"ifeval", "gsm8k", "hellaswag", "mmlu"}
    known = set(TaskManager().all_tasks)
    assert set(online.values()) <= known


@pytest.mark.parametrize("suite, benchmarks", [
    ("core", {"ifbench", "ifeval", "humaneval", "gsm8k", "hellaswag"}),
    ("full", {"ifbench", "ifeval", "humaneval", "gsm8k", "hellaswag", "mmlu"}),
])
def test_online_suites_plan_their_lm_eval_runs(project_copy, suite, benchmarks):
    proc = run([SNAKEMAKE, "-n", "--cores", "1", "--config", f"suite={suite}"], cwd=project_copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    planned = set(re.findall(rf"results/{suite}/scores/smollm2-135m-instruct/([\w.-]+)/lm_eval\.json", proc.stdout))
    assert planned == benchmarks


def test_unknown_benchmark_in_a_suite(repo_root):
    suites = load_project_from_file(repo_root).config["suites"]
    suites["quick"]["benchmarks"] = ["ifeval", "ifevall"]
    err = expect_error(repo_root, {"suites": suites})
    assert err.field == "suites.quick.benchmarks[1]" and "ifeval" in err.fix
    assert "add configs/benchmarks/ifevall.yaml and list it under `benchmarks:`" in err.fix


def test_a_suite_may_run_only_listed_benchmarks(repo_root):
    """A benchmark file alone runs nowhere: the config's list says which exist in the run."""
    every = load_project_from_file(repo_root).config["benchmarks"]
    err = expect_error(repo_root, {"benchmarks": [b for b in every if b != "mmlu"]})
    assert (err.file, err.field) == ("configs/config.yaml", "suites.full.benchmarks[5]")
    assert "list it under `benchmarks:` (configs/benchmarks/mmlu.yaml exists)" in err.fix


def test_a_benchmark_is_one_file_named_like_it(repo_root):
    project = load_project_from_file(repo_root)
    for name, spec in project.benchmark_specs.items():
        doc = yaml.safe_load((repo_root / f"configs/benchmarks/{name}.yaml").read_text())
        assert doc["name"] == name
        assert "name" not in spec and "description" not in spec  # what it runs, not what documents it
    assert sorted(project.benchmark_specs) == sorted(p.stem for p in (repo_root / "configs/benchmarks").glob("*.yaml"))


def write_benchmark(repo: Path, name: str, doc: dict, listed: bool = True) -> None:
    (repo / f"configs/benchmarks/{name}.yaml").write_text(yaml.safe_dump({"name": name, **doc}, sort_keys=False))
    if listed:
        edit_yaml(repo / "configs/config.yaml", lambda d: d["benchmarks"].append(name))


@pytest.mark.parametrize("doc, field, fix", [
    ({"kind": "lm_eval"}, "task", "add `task:`"),
    ({"kind": "ifbench", "limit": 1.5}, "limit", "a fraction (0 < x < 1)"),
    ({"kind": "local", "path": "q.jsonl", "output_type": "multiple_choice",
      "fields": {"input": "q", "target": "a"}}, "fields.choices", "choices: <column>"),
    ({"kind": "local", "path": "q.jsonl", "output_type": "generate_until", "num_fewshot": 3,
      "fields": {"input": "q", "target": "a"}}, "num_fewshot", "fewshot_path"),
    ({"kind": "mmlu"}, "kind", "lm_eval"),
    ({"kind": "ifbench", "limits": 5}, "(top level)", "allowed fields: batch_size"),
    ({"name": "y", "kind": "ifbench"}, "name", "set `name: x` or rename the file"),
])
def test_bad_benchmark_files(project_copy, doc, field, fix):
    write_benchmark(project_copy, "x", doc)
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("configs/benchmarks/x.yaml", field) and fix in err.fix


def test_a_listed_benchmark_without_its_file(repo_root):
    every = load_project_from_file(repo_root).config["benchmarks"]
    err = expect_error(repo_root, {"benchmarks": [*every, "mbpp"]})
    assert (err.file, err.field) == ("configs/config.yaml", f"benchmarks[{len(every)}]")
    assert "there is no configs/benchmarks/mbpp.yaml" in err.problem and "humaneval" in err.fix


def test_a_benchmark_and_a_task_of_one_name(project_copy):
    write_benchmark(project_copy, "ticket_routing", {"kind": "ifbench"})
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("configs/config.yaml", "benchmarks[6]")
    assert "both a task and a benchmark" in err.problem
    assert "configs/tasks/ticket_routing.yaml" in err.fix and "configs/benchmarks/ticket_routing.yaml" in err.fix


def test_a_config_with_the_old_benchmark_map_says_what_changed(repo_root):
    err = expect_error(repo_root, {"benchmarks": {"ifbench": {"kind": "ifbench"}}})
    assert (err.file, err.field) == ("configs/config.yaml", "benchmarks")
    assert "`benchmarks: [ifbench]`" in err.fix and "configs/benchmarks/<name>.yaml" in err.fix


def add_local_benchmark(repo: Path, rows: list[dict]) -> None:
    (repo / "quiz.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_benchmark(repo, "quiz", {"kind": "local", "path": "quiz.jsonl", "output_type": "multiple_choice",
                                   "fields": {"input": "q", "choices": "options", "target": "a"}}, listed=False)
    every = yaml.safe_load((repo / "configs/config.yaml").read_text())["benchmarks"]
    (repo / "extra.yaml").write_text(yaml.safe_dump({
        "benchmarks": [*every, "quiz"],
        "suites": {"demo": {"benchmarks": ["ifbench", "quiz"]}},
    }))


def test_a_local_benchmark_is_planned_from_config_alone(project_copy):
    add_local_benchmark(project_copy, [{"q": "2+2?", "options": ["4", "5"], "a": 0}])
    proc = run([SNAKEMAKE, "-n", "--cores", "1", "--configfile", "configs/config.yaml", "extra.yaml"],
               cwd=project_copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/scores/smollm2-135m-instruct/quiz/lm_eval.json" in proc.stdout
    assert "quiz.jsonl" in proc.stdout  # the data file is an input: editing it reruns the benchmark


def test_a_bad_local_row_stops_snakemake_before_any_job(project_copy):
    add_local_benchmark(project_copy, [{"q": "2+2?", "options": ["4", "5"], "a": 0},
                                       {"q": "3+3?", "options": ["6", "7"], "a": "8"}])
    proc = run([SNAKEMAKE, "--cores", "1", "--configfile", "configs/config.yaml", "extra.yaml"], cwd=project_copy)
    assert proc.returncode != 0
    assert "configs/benchmarks/quiz.yaml: field `path`" in proc.stderr
    assert "line 2: target '8' is neither a choice" in proc.stderr
    assert "Fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (project_copy / "resources").exists() and not (project_copy / "data").exists()  # nothing ran


def test_unsloth_training_plans_a_gpu_job_in_its_own_env(project_copy):
    """Without a GPU it cannot run here (tests/test_training.py checks the refusal); it must plan."""
    edit_yaml(project_copy / "configs/config.yaml", lambda d: d["finetune"].update(training="unsloth-qlora"))
    proc = run([SNAKEMAKE, "-n", "--cores", "1", "--config", "suite=test"], cwd=project_copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    block = proc.stdout[proc.stdout.index("rule adapter_train:"):].split("\n\n")[0]
    assert "gpu=1" in block and "results/test/adapters/smollm2-135m-instruct/ticket_routing-16" in block
    env = yaml.safe_load((project_copy / "envs/train-unsloth.yaml").read_text())
    assert any("unsloth" in str(d) for d in env["dependencies"])


def test_fine_tuning_an_unknown_task_or_training_setup(repo_root):
    err = expect_error(repo_root, {"finetune": {"tasks": ["banking77"]}})
    assert err.field == "finetune.tasks[0]" and "ticket_routing" in err.fix
    err = expect_error(repo_root, {"finetune": {"tasks": ["ticket_routing"], "training": "gpu-magic"}})
    assert err.field == "finetune.training" and "cpu-lora" in err.fix


def test_suite_train_sizes_name_the_fine_tuned_systems(repo_root):
    assert list(load_project_from_file(repo_root).systems) == ["smollm2-135m-instruct",
                                                               "smollm2-135m-instruct+ticket_routing-128",
                                                               "classic+ticket_routing-128"]
    full = load_project_from_file(repo_root, overrides={"suite": "full"})
    assert [s.adapter for s in full.systems.values()] == [None, "ticket_routing-500", "ticket_routing-full",
                                                          "ticket_routing-500", "ticket_routing-full"]  # + classic


def test_an_api_model_needs_the_openai_backend_and_gets_no_weights_or_adapters(project_copy):
    (project_copy / "configs/models/gpt-x.yaml").write_text(yaml.safe_dump({
        "name": "gpt-x", "source": {"kind": "api", "base_url": "https://api.example.com/v1", "model": "gpt-x"}}))
    err = expect_error(project_copy, {"models": ["smollm2-135m-instruct", "gpt-x"]})
    assert (err.file, err.field) == ("configs/models/gpt-x.yaml", "backend") and "backend: openai" in err.fix
    edit_yaml(project_copy / "configs/models/gpt-x.yaml", lambda d: d.update(backend="openai"))
    err = expect_error(project_copy, {"models": ["smollm2-135m-instruct", "gpt-x"]})  # and its price
    assert (err.file, err.field) == ("configs/pricing.yaml", "api.gpt-x") and "input_per_mtok" in err.fix
    edit_yaml(project_copy / "configs/pricing.yaml",
              lambda d: d["api"].update({"gpt-x": {"input_per_mtok": 1, "output_per_mtok": 4}}))
    project = load_project_from_file(project_copy, overrides={"models": ["smollm2-135m-instruct", "gpt-x"]})
    assert project.models["gpt-x"].is_api and project.models["gpt-x"].source["api_key_env"] == "OPENAI_API_KEY"
    assert [s for s in project.systems if s.startswith("gpt-x")] == ["gpt-x"]  # no LoRA for a remote model


def test_bad_pricing_names_the_pricing_file_and_field(project_copy):
    edit_yaml(project_copy / "configs/pricing.yaml", lambda d: d["self_hosted"]["usd_per_hour"].update(cpu=-1))
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("configs/pricing.yaml", "self_hosted.usd_per_hour.cpu")
    err = expect_error(project_copy, {"pricing": "configs/prices.yaml"})
    assert err.field == "pricing" and "configs/prices.yaml" in str(err)


def test_an_agreement_pair_names_two_of_this_runs_models(repo_root):
    err = expect_error(repo_root, {"agreement": {"pairs": [["smollm2-135m-instruct", "smollm2-gguf"]]}})
    assert err.field == "agreement.pairs[0][1]" and "smollm2-135m-instruct" in err.fix
    err = expect_error(repo_root, {"agreement": {"pairs": [["smollm2-135m-instruct"] * 2]}})
    assert err.field == "agreement.pairs[0]"


def write_backend_model(repo: Path, name: str, backend: str) -> None:
    doc = yaml.safe_load((repo / "configs/models/smollm2-135m-instruct.yaml").read_text())
    (repo / f"configs/models/{name}.yaml").write_text(yaml.safe_dump({**doc, "name": name, "backend": backend}))


def test_a_vllm_model_plans_gpu_jobs_in_the_vllm_env(project_copy):
    """No GPU here: a vLLM model must plan (gpu=1, envs/vllm.yaml); tests/test_backends.py runs the
    backend's wiring against a mocked vLLM engine."""
    write_backend_model(project_copy, "smol-vllm", "vllm")
    proc = run([SNAKEMAKE, "-n", "-p", "--cores", "1", "--config", "suite=test", "models=[smol-vllm]"],
               cwd=project_copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = proc.stdout.split("\n\n")
    for rule in ("predictions_generate", "lm_eval_run"):
        planned = [b for b in blocks if f"rule {rule}:" in b and "classic+" not in b]
        assert planned and all("gpu=1" in b for b in planned)
    classic = [b for b in blocks if "rule predictions_generate:" in b and "classic+" in b]
    assert classic and all("gpu=0" in b for b in classic)  # the TF-IDF baseline needs no GPU
    assert "smol-vllm+ticket_routing-16" in proc.stdout  # vLLM serves LoRA adapters: fine-tuned systems exist
    env = yaml.safe_load((project_copy / "envs/vllm.yaml").read_text())
    assert any("vllm" in str(d) for d in env["dependencies"])


def test_a_llamacpp_model_needs_a_gguf_and_llama_cpp(project_copy, monkeypatch):
    import tunebench.backends.llamacpp_backend as llamacpp

    write_backend_model(project_copy, "smol-gguf", "llamacpp")
    monkeypatch.setattr(llamacpp, "available", lambda: False)  # as on a machine without the extra
    err = expect_error(project_copy, {"models": ["smol-gguf"]})
    assert (err.file, err.field) == ("configs/models/smol-gguf.yaml", "backend") and "[llamacpp]" in err.fix
    monkeypatch.setattr(llamacpp, "available", lambda: True)
    (project_copy / "configs/models/hf-gguf.yaml").write_text(yaml.safe_dump({
        "name": "hf-gguf", "backend": "llamacpp", "source": {"kind": "hub", "repo_id": "org/model"}}))
    err = expect_error(project_copy, {"models": ["hf-gguf"]})
    assert (err.file, err.field) == ("configs/models/hf-gguf.yaml", "source.gguf_file")
    project = load_project_from_file(project_copy, overrides={"models": ["smollm2-135m-instruct", "smol-gguf"]})
    assert list(project.systems) == ["smollm2-135m-instruct", "smol-gguf",
                                     "smollm2-135m-instruct+ticket_routing-128",
                                     "classic+ticket_routing-128"]  # no LoRA on a GGUF


# --- the reader of every user YAML, merged config sources, values in words (issue 19) ---------------


def test_a_key_written_twice_is_refused_with_both_lines_in_every_user_file(project_copy):
    from tunebench.core.schema import read_yaml

    path = project_copy / "configs/tasks/ticket_routing.yaml"
    path.write_text(path.read_text().replace("parser: first_label", "parser: first_label\nparser: label_mention"))
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("configs/tasks/ticket_routing.yaml", "parser")
    lines = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line.startswith("parser:")]
    assert f"lines {lines[0]} and {lines[1]}" in err.problem
    nested = project_copy / "nested.yaml"
    nested.write_text("a:\n  - {x: 1, y: 2, x: 3}\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(nested, "nested.yaml")
    assert info.value.field == "a[0].x" and "lines 2 and 2" in info.value.problem
    nested.write_text("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")  # a merge key overridden: not a duplicate
    assert read_yaml(nested, "nested.yaml")["other"] == {"x": 2}


@pytest.mark.parametrize("rel, kind", [("configs/tasks/ticket_routing.yaml", "task"),
                                       ("configs/models/smollm2-135m-instruct.yaml", "model"),
                                       ("prompts/ticket_routing.yaml", "prompt template"),
                                       ("configs/training/cpu-lora.yaml", "training setup"),
                                       ("configs/pricing.yaml", "file")])
def test_an_empty_file_is_named_with_what_to_write(project_copy, rel, kind):
    (project_copy / rel).write_text("# later\n")
    err = expect_error(project_copy)
    assert (err.file, err.field) == (rel, "(top level)") and "empty" in err.problem and kind in err.fix


@pytest.mark.parametrize("part, text, missing", [
    ("user", 'user: "Route this ticket."', "{{ input }}"),
    ("assistant", 'assistant: "Intent:"', "{{ target }}"),
])
def test_a_prompt_must_show_the_item_and_the_answer(project_copy, part, text, missing):
    path = project_copy / "prompts/ticket_routing.yaml"
    old = 'user: "Ticket: {{ input }}"' if part == "user" else 'assistant: "{{ target }}"'
    path.write_text(path.read_text().replace(old, text))
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("prompts/ticket_routing.yaml", part) and missing in err.problem


def test_each_task_type_requires_the_variables_its_items_need():
    from tunebench.config.task_checks import required_variables
    from tunebench.tasks import task_type

    assert required_variables(task_type("classification").prompt_variables)["user"] == {"input"}
    assert required_variables(task_type("multiple_choice").prompt_variables)["user"] == {"input", "options"}
    extraction = task_type("extraction").prompt_variables
    assert required_variables(extraction, {"input": "q"})["user"] == {"input"}
    assert required_variables(extraction, {"input": "q", "context": "doc"})["user"] == {"input", "context"}
    assert all(r["assistant"] == {"target"} for r in [required_variables(task_type(t).prompt_variables)
                                                       for t in ("classification", "code")])


def test_every_numeric_field_of_the_user_schemas_has_an_upper_bound(repo_root):
    from tunebench.core.schema import load_schema

    def unbounded(node, path, bounds):
        """Numeric fields with neither of `bounds` (e.g. maximum, exclusiveMaximum)."""
        if isinstance(node, dict):
            types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
            if {"integer", "number"} & {t for t in types if isinstance(t, str)} and not set(bounds) & set(node):
                yield path
            for key, value in node.items():
                yield from unbounded(value, f"{path}.{key}", bounds)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from unbounded(value, f"{path}[{i}]", bounds)

    names = ["config", "task", "model", "training", "pricing", "benchmark", "prompt"]
    schemas = {n: load_schema(repo_root, f"{n}.schema.yaml") for n in names}
    assert [p for n in names for p in unbounded(schemas[n], n, ("maximum", "exclusiveMaximum"))] == []
    # and a lower one: a negative seed, count or price is a mistake too
    assert [p for n in names for p in unbounded(schemas[n], n, ("minimum", "exclusiveMinimum"))] == []
    err = expect_error(repo_root, {"bootstrap": {"resamples": 10**12}})
    assert err.field == "bootstrap.resamples" and "too large" in err.problem and "<= 100000" in err.fix


@pytest.mark.parametrize("value, problem, fix", [
    ("5e-4", "read as text", "write 5.0e-4"),
    ("1e-3", "read as text", "write 1.0e-3"),
    ("'0.0005'", "in quotes", "without quotes: 0.0005"),
    ("abc", "wrong type", "use a number"),
])
def test_a_number_read_as_text_says_how_to_write_it(project_copy, value, problem, fix):
    import yaml as pyyaml

    path = project_copy / "configs/training/cpu-lora.yaml"
    path.write_text(path.read_text().replace("learning_rate: 0.0005", f"learning_rate: {value}"))
    err = expect_error(project_copy)
    assert (err.file, err.field) == ("configs/training/cpu-lora.yaml", "learning_rate")
    assert problem in err.problem and fix in err.fix
    if "write " in fix:  # what the fix says to write is a number to YAML
        assert isinstance(pyyaml.safe_load(fix.rsplit(" ", 1)[-1]), float)


def test_a_value_of_several_forms_lists_every_form(repo_root):
    err = expect_error(repo_root, {"suite": "test", "suites": {**_suites(repo_root),
                                                              "test": {**_suites(repo_root)["test"], "benchmark_limit": "all"}}})
    assert err.field == "suites.test.benchmark_limit" and "not valid under" not in err.problem
    assert "an integer >= 1" in err.fix and "a number > 0 and < 1" in err.fix and "null" in err.fix
    err = expect_error(repo_root, {"suites": {**_suites(repo_root), "test": {**_suites(repo_root)["test"], "train_sizes": [0]}}})
    assert err.field == "suites.test.train_sizes[0]" and "`full`" in err.fix
    err = expect_error(repo_root, {"suites": {**_suites(repo_root), "test": {**_suites(repo_root)["test"], "train_sizes": ["fll"]}}})
    assert err.field == "suites.test.train_sizes[0]" and "`full`" in err.fix


def _suites(root) -> dict:
    return yaml.safe_load((root / "configs/config.yaml").read_text())["suites"]


def test_an_error_names_the_config_source_that_set_the_field(repo_root, tmp_path):
    from tunebench.config.layers import COMMAND_LINE, config_layers

    extra = tmp_path / "extra.yaml"
    extra.write_text("bootstrap: {resamples: 5}\n")
    with pytest.raises(ConfigError) as info:
        load_project_from_file(repo_root, ["configs/config.yaml", str(extra)])
    assert info.value.file == str(extra) and info.value.field == "bootstrap.resamples"
    layers = config_layers(repo_root, [repo_root / "configs/config.yaml", str(extra)], {"suite": "x", "shots": "abc"})
    assert layers.files == f"configs/config.yaml, {extra}"  # each file once, in merge order
    assert layers.origin("suite") == COMMAND_LINE and layers.origin("bootstrap.resamples") == str(extra)
    assert layers.origin("prompting.shots[1]") == "configs/config.yaml" and layers.origin("nowhere") is None
    unknown = ConfigError("x", file=layers.files, field="(top level)", fix="f")
    unknown.fields = ["shots"]  # type: ignore[attr-defined]
    assert layers.blame(unknown).file == COMMAND_LINE
    # Snakemake's --config reads numbers inside a mapping as text: the fix is a --configfile
    text = ConfigError("'5' is text (in quotes), not a number", file=layers.files, field="bootstrap.resamples",
                       fix="write it without quotes: 5")
    cli = config_layers(repo_root, [], {"bootstrap": {"resamples": "5"}}).blame(
        ConfigError(text.problem, file="configs/config.yaml", field=text.field, fix=text.fix))
    assert cli.file == COMMAND_LINE and "--configfile" in cli.fix and "quotes" not in cli.problem


def test_an_api_key_is_checked_before_any_job_unless_the_server_needs_none(project_copy):
    from tunebench.config.loader import check_api_keys

    (project_copy / "configs/models/api-x.yaml").write_text(yaml.safe_dump({
        "name": "api-x", "backend": "openai",
        "source": {"kind": "api", "base_url": "http://127.0.0.1:9/v1", "model": "x", "api_key_env": "API_X_KEY"}}))
    edit_yaml(project_copy / "configs/pricing.yaml",
              lambda d: d["api"].update({"api-x": {"input_per_mtok": 0, "output_per_mtok": 0}}))
    project = load_project_from_file(project_copy, overrides={"models": ["api-x"]})
    with pytest.raises(ConfigError) as info:
        check_api_keys(project, {})
    assert (info.value.file, info.value.field) == ("configs/models/api-x.yaml", "source.api_key_env")
    assert "API_X_KEY" in info.value.problem and "api_key_env: null" in info.value.fix
    check_api_keys(project, {"API_X_KEY": "sk-x"})
    edit_yaml(project_copy / "configs/models/api-x.yaml", lambda d: d["source"].update(api_key_env=None))
    check_api_keys(load_project_from_file(project_copy, overrides={"models": ["api-x"]}), {})


def test_a_baseline_of_another_system_or_version_is_regenerated_not_edited(repo_root, tmp_path):
    from tunebench.compare.baseline import load_baseline
    from tunebench.core.errors import TunebenchError

    doc = json.loads((repo_root / "baselines/smollm2-135m-instruct.json").read_text())
    path = tmp_path / "smollm2-135m-instruct.json"
    for change, field, words in [({"system": "other"}, "system", "'other'"),
                                 ({"schema_version": 2}, "schema_version", "another tunebench version"),
                                 ({"run_id": ""}, "run_id", "empty")]:
        path.write_text(json.dumps({**doc, **change}))
        with pytest.raises(TunebenchError) as info:
            load_baseline(path, repo_root)
        assert info.value.field == field and words in info.value.problem
        assert "tunebench baseline update --system smollm2-135m-instruct --run-id ID --replace" in info.value.fix


def test_messages_use_an_before_a_vowel(repo_root):
    from tunebench.core.schema import article

    assert (article("integer"), article("extraction"), article("number")) == ("an integer", "an extraction", "a number")
    err = expect_error(repo_root, {"prompting": {"shots": ["many"]}})
    assert "use an integer" in err.fix


def test_a_missing_config_file_is_named_unless_another_is_given(tmp_path):
    from tunebench.config.layers import config_layers

    with pytest.raises(ConfigError) as info:
        config_layers(tmp_path)
    assert info.value.file == "configs/config.yaml" and "--configfile" in info.value.fix
    (tmp_path / "mine.yaml").write_text("suite: test\n")
    assert config_layers(tmp_path, ["mine.yaml"]).files == "mine.yaml"


def test_a_generators_params_are_checked_against_its_signature_at_load():
    from tunebench.core.errors import ConfigError
    from tunebench.data.generators import check_params

    check_params("support_tickets", {"n_rows": 12, "seed": 3, "typo_rate": 0}, "t.yaml")  # an int for a float
    for params, field, words in [({"nrows": 5}, "source.params.nrows", "takes no parameter"),
                                 ({"n_rows": "many"}, "source.params.n_rows", "wrong type"),
                                 ({"n_rows": True}, "source.params.n_rows", "wrong type"),
                                 ({"typo_rate": -0.5}, "source.params.typo_rate", "negative"),
                                 ({"n_rows": 10**10}, "source.params.n_rows", "too many")]:
        with pytest.raises(ConfigError) as err:
            check_params("support_tickets", params, "t.yaml")
        assert err.value.field == field and words in err.value.problem and err.value.fix
