"""Load and check the whole configuration before any job runs.

`load_project` reads the workflow config (already loaded by Snakemake), every task and model it
names, and their prompt templates; validates each against its JSON schema in configs/schema/; fills
schema defaults; and raises one ConfigError naming the file, the field and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path

from tunebench.config.suites import apply_suite, merge_task
from tunebench.config.task_checks import check_decontaminate_against, check_methods, load_prompt
from tunebench.core.errors import ConfigError
from tunebench.core.schema import check_schema, fill_defaults, load_schema, read_yaml
from tunebench.core.spec import CLASSIC, Model, Project, Task
from tunebench.data.local_checks import check_local_plans
from tunebench.tasks import task_type
from tunebench.train.lengths import check_training_length

TASK_DIR = Path("configs") / "tasks"
MODEL_DIR = Path("configs") / "models"
TRAINING_DIR = Path("configs") / "training"
BENCHMARK_DIR = Path("configs") / "benchmarks"
# What a benchmark file documents rather than runs: not part of the spec its lm-eval runs get, so
# editing it reruns nothing.
BENCHMARK_DOC_FIELDS = ("name", "description")


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _resolve_named(root: Path, folder: Path, names: list[str], kind: str, config_file: str,
                   key: str) -> dict[str, tuple[Path, dict]]:
    known = sorted(p.stem for p in (root / folder).glob("*.yaml"))
    out = {}
    for i, name in enumerate(names):
        path = root / folder / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown {kind} {name!r}: there is no {folder / (name + '.yaml')}",
                file=config_file, field=f"{key}[{i}]",
                fix=f"use one of: {', '.join(known) or '(none yet)'}; or add {folder}/{name}.yaml",
            )
        shown = _rel(root, path)
        out[name] = (path, read_yaml(path, shown, kind))
    return out


def _checked_docs(root: Path, folder: Path, names: list[str], kind: str, config_file: str, schema: dict,
                  overrides: Mapping[str, dict] | None = None, origin: str = ""):
    """(name, path, doc, shown path) per named file: schema-checked, defaults filled; `overrides`
    (a suite's task_overrides, from `origin` in the config) merged in first."""
    for name, (path, doc) in _resolve_named(root, folder, names, kind, config_file, f"{kind}s").items():
        shown = where = _rel(root, path)
        if overrides and name in overrides:
            doc = merge_task(doc, overrides[name])
            where = f"{shown} (with {origin}.{name} of {config_file})"
        check_schema(doc, schema, where)
        fill_defaults(doc, schema)
        if doc["name"] != name:
            raise ConfigError(f"name {doc['name']!r} differs from the file name {name!r}", file=where,
                              field="name", fix=f"set `name: {name}` or rename the file")
        yield name, path, doc, shown


def load_project(root: str | Path, config: dict, config_file: str = "configs/config.yaml") -> Project:
    root = Path(root).resolve()
    _refuse_benchmark_map(config, config_file)
    check_schema(config, load_schema(root, "config.schema.yaml"), config_file)
    hub_suites = (config.get("hub") or {}).get("suites")  # before defaults: name only what the user wrote
    fill_defaults(config, load_schema(root, "config.schema.yaml"))

    suite_name = config["suite"]
    if suite_name not in config["suites"]:
        raise ConfigError(f"unknown suite {suite_name!r}", file=config_file, field="suite",
                          fix=f"use one of: {', '.join(config['suites'])} (e.g. --config suite=test)")
    dirs: dict[str, str] = {}
    for name, suite in config["suites"].items():
        d = suite["results_dir"].rstrip("/")
        if d in dirs:
            raise ConfigError(f"suites {dirs[d]!r} and {name!r} share results_dir {d!r}",
                              file=config_file, field=f"suites.{name}.results_dir",
                              fix="give every suite its own results_dir so runs never overwrite each other")
        dirs[d] = name
    for i, name in enumerate(hub_suites or []):  # as written (a typo would keep a suite off the Hub)
        if name not in config["suites"]:
            raise ConfigError(f"unknown suite {name!r}", file=config_file, field=f"hub.suites[{i}]",
                              fix=f"use some of: {', '.join(config['suites'])}")
    task_overrides = apply_suite(root, config, config_file)  # the suite's own models, tasks, finetune

    task_schema = load_schema(root, "task.schema.yaml")
    model_schema = load_schema(root, "model.schema.yaml")
    prompt_schema = load_schema(root, "prompt.schema.yaml")

    from tunebench.data.generators import GENERATORS
    from tunebench.data.generators import check_params as check_generator_params

    tasks, prompts = {}, {}
    for name, _path, doc, shown in _checked_docs(root, TASK_DIR, config["tasks"], "task", config_file,
                                                 task_schema, task_overrides, f"suites.{suite_name}.task_overrides"):
        src = doc["source"]
        if src["kind"] == "generated" and src["generator"] not in GENERATORS:
            raise ConfigError(f"unknown generator {src['generator']!r}", file=shown,
                              field="source.generator", fix=f"use one of: {', '.join(sorted(GENERATORS))}")
        if src["kind"] == "generated":
            check_generator_params(src["generator"], src.get("params") or {}, shown)
        kind = task_type(doc["type"])
        metrics, parser = doc["metrics"], kind.check(doc, shown)
        check_methods(doc, kind, shown)
        split = doc["split"]
        if split["val"] + split["test"] >= 0.95:
            raise ConfigError(f"val + test = {split['val'] + split['test']:.2f} leaves too little to train on",
                              file=shown, field="split", fix="keep val + test below 0.95")
        prompt_path = (root / doc["prompt"]).resolve()
        if not prompt_path.is_file():  # named on the task, where the path is written
            what = "is a folder, not a file" if prompt_path.is_dir() else "does not exist"
            raise ConfigError(f"the prompt template {doc['prompt']} {what}", file=shown, field="prompt",
                              fix="point `prompt:` at a prompt YAML file, e.g. prompts/<task>.yaml "
                                  "(copy one from prompts/)")
        prompts[name] = load_prompt(root, prompt_path, prompt_schema, kind.prompt_variables, doc["fields"])
        tasks[name] = Task(
            name=name, type=doc["type"], description=doc.get("description"), source=src, fields=doc["fields"],
            labels=tuple(doc["labels"]) if isinstance(doc.get("labels"), list) else None,
            auto_labels=doc.get("labels") == "auto", label_names=tuple(doc.get("label_names") or ()) or None,
            test_sample_size=doc.get("test_sample_size"), test_balance=doc["test_balance"],
            abstain=doc.get("abstain"), context_window=doc.get("context_window"),
            answer_format=doc["answer_format"], execution=doc["execution"], methods=tuple(doc.get("methods") or ()),
            expected_rows=doc.get("expected_rows"), split=split,
            train_sizes=tuple(doc["train_sizes"]), prompt=doc["prompt"], parser=parser,
            metrics=tuple(metrics), generation=doc["generation"],
            method=(doc.get("methods") or [doc.get("method", "generate")])[0],
            file=Path(shown), prompt_file=prompt_path,
        )
        if src["kind"] == "local":
            from tunebench.data.prepare import check_local_source

            check_local_source(tasks[name], root, load_schema(root, "row.schema.json"))
    check_decontaminate_against(tasks, sorted(p.stem for p in (root / TASK_DIR).glob("*.yaml")),
                                config["finetune"]["tasks"])

    if CLASSIC in config["models"]:
        raise ConfigError(f"the model name {CLASSIC!r} is the built-in TF-IDF baseline's (systems "
                          f"{CLASSIC}+<task>-<size>)", file=config_file,
                          field=f"models[{config['models'].index(CLASSIC)}]",
                          fix="rename the model (its file and its `name:`); the baseline needs no model file")
    models = {}
    for name, _path, doc, shown in _checked_docs(root, MODEL_DIR, config["models"], "model", config_file,
                                                model_schema):
        if (doc["source"]["kind"] == "api") != (doc["backend"] == "openai"):
            raise ConfigError(f"source kind {doc['source']['kind']!r} and backend {doc['backend']!r} do not fit",
                              file=shown, field="backend",
                              fix="an api source needs `backend: openai`; weights (package, hub, local) need "
                                  "`backend: transformers`, `llamacpp` (a GGUF) or `vllm` (a CUDA GPU)")
        if doc["backend"] == "llamacpp":
            src = doc["source"]
            if src["kind"] != "package" and not src.get("gguf_file"):
                raise ConfigError("backend llamacpp runs a GGUF file and this source names none", file=shown,
                                  field="source.gguf_file",
                                  fix="add `gguf_file: <name>.gguf`, or use backend transformers for an HF folder")
            if doc["chat_template_kwargs"]:
                raise ConfigError("backend llamacpp renders the GGUF's own chat template and cannot pass it "
                                  "chat_template_kwargs", file=shown, field="chat_template_kwargs",
                                  fix="remove them, or use backend transformers or vllm for this model")
            from tunebench.backends.llamacpp_backend import INSTALL_HINT, available

            if not available():
                raise ConfigError("backend llamacpp needs llama-cpp-python, which is not installed", file=shown,
                                  field="backend", fix=INSTALL_HINT)
        src = doc["source"]
        if src["kind"] == "local":
            from tunebench.data.models import local_model_folder

            local_model_folder(src, root, shown)
        models[name] = Model(
            name=name, source=doc["source"], backend=doc["backend"], description=doc.get("description"),
            dtype=doc["dtype"], chat_template=doc["chat_template"],
            chat_template_kwargs=doc["chat_template_kwargs"], batch_size=doc["batch_size"],
            batch_tokens=doc["batch_tokens"], max_input_tokens=doc["max_input_tokens"],
            concurrency=doc["concurrency"], stream=doc["stream"], file=Path(shown),
        )

    benchmarks = load_benchmarks(root, config, config_file, tasks)

    training = None
    for i, name in enumerate(config["finetune"]["tasks"]):
        if name not in tasks:
            raise ConfigError(f"cannot fine-tune on {name!r}: it is not one of this run's tasks",
                              file=config_file, field=f"finetune.tasks[{i}]",
                              fix=f"use one of: {', '.join(tasks)}; or list it under `tasks:`")
    if config["finetune"]["tasks"]:
        training_schema = load_schema(root, "training.schema.yaml")
        name = config["finetune"]["training"]
        path = root / TRAINING_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (root / TRAINING_DIR).glob("*.yaml"))
            raise ConfigError(f"unknown training setup {name!r}: there is no {TRAINING_DIR / (name + '.yaml')}",
                              file=config_file, field="finetune.training",
                              fix=f"use one of: {', '.join(known)}; or add {TRAINING_DIR}/{name}.yaml")
        shown = _rel(root, path)
        training = read_yaml(path, shown, "training setup")
        check_schema(training, training_schema, shown)
        fill_defaults(training, training_schema)
        cap = config["suites"][suite_name].get("training_max_steps")
        if cap:
            training = {**training, "max_steps": min(cap, training["max_steps"]) if training["max_steps"] > 0 else cap}
        for task_name in config["finetune"]["tasks"]:
            check_training_length(tasks[task_name], prompts[task_name], training, shown)

    from tunebench.report.cost import check_api_prices, load_pricing

    pricing = load_pricing(root, config["pricing"], config_file)
    check_api_prices(pricing, [m for m, spec in models.items() if spec.is_api], config["pricing"])
    for i, pair in enumerate(config["agreement"]["pairs"]):
        for j, name in enumerate(pair):
            if name not in models:
                raise ConfigError(f"agreement pair names {name!r}, which is not one of this run's models",
                                  file=config_file, field=f"agreement.pairs[{i}][{j}]",
                                  fix=f"use one of: {', '.join(models)}; or list it under `models:`")
        if pair[0] == pair[1]:
            raise ConfigError("an agreement pair needs two different model entries", file=config_file,
                              field=f"agreement.pairs[{i}]", fix="name the same model on two backends")

    check_local_plans(tasks, models, config, suite_name, config_file)  # local data vs the run's models and sizes
    return Project(root=root, config=config, config_file=config_file, suite_name=suite_name,
                   suite=config["suites"][suite_name], tasks=tasks, models=models, prompts=prompts,
                   training=training, pricing=pricing, benchmark_specs=benchmarks)


def check_api_keys(project: Project, environ: Mapping[str, str]) -> None:
    """Every API model of the run finds its key before any job starts (not at its first request, after
    hours of other jobs). `api_key_env: null` declares a server that needs no key."""
    for name, model in project.models.items():
        var = model.source.get("api_key_env") if model.is_api else None
        if var and not environ.get(var):
            raise ConfigError(f"model {name!r} reads its API key from ${var}, which is not set (or empty)",
                              file=str(model.file), field="source.api_key_env",
                              fix=f"export {var}=<your key> before the run; a server that needs no key: set "
                                  "`api_key_env: null` under `source:` (snakemake -n plans without a key)")


def _refuse_benchmark_map(config: dict, config_file: str) -> None:
    """Configs written before benchmarks were files of their own say so plainly, not as a type error."""
    old = config.get("benchmarks")
    if isinstance(old, dict):
        raise ConfigError("a mapping of benchmark entries, but benchmarks are files of their own now "
                          "and the config lists their names", file=config_file, field="benchmarks",
                          fix=f"write `benchmarks: [{', '.join(old)}]` and move each entry to "
                              f"{BENCHMARK_DIR}/<name>.yaml with `name: <name>` (like {BENCHMARK_DIR}/ifbench.yaml)")


def load_benchmarks(root: Path, config: dict, config_file: str, tasks: dict[str, Task]) -> dict[str, dict]:
    """Every benchmark the config lists (configs/benchmarks/<name>.yaml), checked, as the spec its
    lm-eval runs get (defaults filled); the suite's local data files are read row by row."""
    schema = load_schema(root, "benchmark.schema.yaml")
    benchmarks: dict[str, dict] = {}
    for name, _path, doc, shown in _checked_docs(root, BENCHMARK_DIR, config["benchmarks"], "benchmark",
                                                 config_file, schema):
        if name in tasks:
            raise ConfigError(f"{name!r} is both a task and a benchmark", file=config_file,
                              field=f"benchmarks[{config['benchmarks'].index(name)}]",
                              fix=f"rename one of {TASK_DIR / name}.yaml and {shown} (the file and its `name:`): "
                                  "results of both would share one folder")
        local = doc["kind"] == "local"
        if local and doc["output_type"] == "multiple_choice" and "choices" not in doc["fields"]:
            raise ConfigError("a multiple_choice benchmark needs the column of its answer options",
                              file=shown, field="fields.choices",
                              fix="add `choices: <column>` (a list of options per row)")
        if local and doc.get("num_fewshot") and not doc.get("fewshot_path"):
            raise ConfigError("in-context examples need their own file", file=shown, field="num_fewshot",
                              fix="add `fewshot_path:` (never drawn from the scored items) or set num_fewshot: 0")
        benchmarks[name] = {k: v for k, v in doc.items() if k not in BENCHMARK_DOC_FIELDS}

    for suite_name, suite in config["suites"].items():
        for i, bench in enumerate(suite.get("benchmarks") or []):
            if bench not in benchmarks:
                where = BENCHMARK_DIR / f"{bench}.yaml"
                add = (f"list it under `benchmarks:` ({where} exists)" if (root / where).is_file()
                       else f"add {where} and list it under `benchmarks:`")
                raise ConfigError(f"unknown benchmark {bench!r}", file=config_file,
                                  field=f"suites.{suite_name}.benchmarks[{i}]",
                                  fix=f"use one of: {', '.join(benchmarks) or '(none configured)'}; or {add}")

    chosen = config["suites"][config["suite"]].get("benchmarks")
    for name in (benchmarks if chosen is None else chosen):
        spec = benchmarks[name]
        if spec["kind"] != "local":
            continue
        from tunebench.benchmarks.tasks import read_local_rows

        shown = _rel(root, root / BENCHMARK_DIR / f"{name}.yaml")
        for key in ("path", "fewshot_path"):  # every row, before any job (and the model) starts
            if spec.get(key):
                read_local_rows(root / spec[key], spec, shown, key)
    return benchmarks


def load_project_from_file(root: str | Path, config_path: str | Path | list | None = None,
                           overrides: dict | None = None) -> Project:
    """Load configs/config.yaml (or other files, merged in order as `snakemake --configfile` merges
    them) the way the Snakefile does; for tools and tests. `overrides` replace top-level fields; an
    error is blamed on the file that wrote the field."""
    from snakemake.utils import update_config

    from tunebench.config.layers import config_layers

    root = Path(root).resolve()
    named = config_path if isinstance(config_path, list) else [config_path or "configs/config.yaml"]
    layers = config_layers(root, named, default=None)
    config: dict = {}
    for _name, doc in layers.layers:
        update_config(config, deepcopy(doc))  # the layers stay as written: they tell who set a field
    config.update(deepcopy(overrides or {}))
    try:
        return load_project(root, config, layers.files)
    except ConfigError as exc:
        raise layers.blame(exc) from None
