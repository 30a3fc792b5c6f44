"""The code task type (MBPP): the program is read from the answer (code_block), run against the item's
own tests in the sandbox, and scored pass@1; a failed item says why (syntax, runtime, timeout,
assertion, no_code, truncated). Real MBPP rows: their reference solutions pass."""

from __future__ import annotations

import json

import polars as pl
import pytest

import tunebench.tasks.code as code_module
from tunebench.core.atomic import write_json, write_jsonl
from tunebench.core.errors import DataError
from tunebench.core.spec import Task
from tunebench.predict.score import score_predictions
from tunebench.scoring.code_check import check_program, check_programs, execution_limits
from tunebench.scoring.sandbox import SandboxLimits
from tunebench.tasks import task_type
from tunebench.tasks.parsing import PARSERS, code_block
from tunebench.tasks.prompting import PromptTemplate

# Three rows of MBPP (task_ids 3, 4 and 11), verbatim: google-research/google-research, mbpp/mbpp.jsonl
# (Austin et al. 2021, "Program Synthesis with Large Language Models"), licensed CC-BY-4.0.
# Their reference code uses \r\n line ends and tabs, as upstream.
MBPP_JSONL = [
    r'{"text": "Write a python function to identify non-prime numbers.", "code": "import math\r\ndef is_not_prime(n):\r\n    result = False\r\n    for i in range(2,int(math.sqrt(n)) + 1):\r\n        if n % i == 0:\r\n            result = True\r\n    return result", "task_id": 3, "test_setup_code": "", "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True", "assert is_not_prime(35) == True"], "challenge_test_list": []}',  # noqa: E501
    r'{"text": "Write a function to find the largest integers from a given list of numbers using heap queue algorithm.", "code": "import heapq as hq\r\ndef heap_queue_largest(nums,n):\r\n  largest_nums = hq.nlargest(n, nums)\r\n  return largest_nums", "task_id": 4, "test_setup_code": "", "test_list": ["assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65] ", "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75] ", "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]"], "challenge_test_list": []}',  # noqa: E501
    r'{"text": "Write a python function to remove first and last occurrence of a given character from the string.", "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    for i in range(len(s) - 1,-1,-1):  \r\n        if (s[i] == ch): \r\n            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s ", "task_id": 11, "test_setup_code": "", "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\"", "assert remove_Occ(\"abcda\",\"a\") == \"bcd\"", "assert remove_Occ(\"PHP\",\"P\") == \"H\""], "challenge_test_list": []}',  # noqa: E501
]
MAX_NEW = 256
FAST = {"timeout_s": 1.0, "memory_mb": 512}


@pytest.fixture(scope="module")
def mbpp() -> list[dict]:
    """The rows as data/prepare writes them for a code task: id, input, target, tests, test_setup."""
    rows = [json.loads(line) for line in MBPP_JSONL]
    return [{"id": f"mbpp-{r['task_id']}", "input": r["text"], "target": r["code"], "tests": r["test_list"],
             "test_setup": r["test_setup_code"]} for r in rows]


def code_task(**execution) -> Task:
    return Task(name="mbpp", type="code", metrics=("pass_at_1",), parser="code_block",
                generation={"max_new_tokens": MAX_NEW}, execution={**FAST, **execution})


def cell(items: list[dict], answers: list[str], tokens_out: list[float] | None = None) -> pl.DataFrame:
    """What scoring hands a type: each item with its output parsed by code_block."""
    return pl.DataFrame({
        "id": [i["id"] for i in items], "target": [i["target"] for i in items],
        "parsed": [code_block(a) for a in answers], "output": answers,
        "tokens_out": tokens_out or [40.0] * len(items),
        "tests": [i["tests"] for i in items], "test_setup": [i["test_setup"] for i in items],
    }, schema_overrides={"tests": pl.List(pl.String)})


def errors(task: Task, frame: pl.DataFrame, scores: list[float]) -> list[str | None]:
    kind = task_type("code")
    return [kind.error_class(task, {**row, "score": s}) for row, s in zip(frame.iter_rows(named=True), scores)]


def test_code_block_takes_the_first_python_fence_else_an_untagged_one_else_everything():
    assert PARSERS["code_block"] is code_block
    fenced = "Here you go:\n```bash\npip install x\n```\n```python\ndef f():\n    return 1\n```\nDone.\n```python\nx=2\n```"
    assert code_block(fenced) == "def f():\n    return 1"
    assert code_block("```py\nimport math\n```") == "import math"
    assert code_block("Sure.\n```\ndef g(): pass\n```\nThat is it.") == "def g(): pass"
    assert code_block("  ~~~python\n  def h():\n      return 2\n  ~~~") == "def h():\n    return 2"
    assert code_block("```python\ndef cut(x):\n    return x +") == "def cut(x):\n    return x +"  # unclosed: to the end
    assert code_block("\n  def plain(): return 3  \n\n") == "def plain(): return 3"
    assert code_block("Text only.\n```json\n{}\n```") == "Text only.\n```json\n{}\n```"  # no python: everything
    assert [code_block(x) for x in ("", "  \n", "```python\n```")] == [None, None, None]


def test_the_type_declares_its_metric_parser_fields_and_prompt_variables():
    kind = task_type("code")
    assert (kind.metrics, kind.default_parser, kind.parsers) == (("pass_at_1",), "code_block", {"code_block"})
    assert not kind.labelled and not kind.stratify
    assert kind.item_fields == {"tests": pl.List(pl.String), "test_setup": pl.String}
    assert kind.prompt_variables == {"system": set(), "user": {"input", "tests"}, "assistant": {"target"}}


def test_mbpp_reference_solutions_pass(mbpp):
    results = check_programs([(r["target"], r["tests"], r["test_setup"]) for r in mbpp], execution_limits())
    assert [(r.passed, r.error) for r in results] == [(True, None)] * 3, [r.detail for r in results]
    task = code_task()
    answers = [f"```python\n{r['target']}\n```" for r in mbpp]
    scores, values, statistics = task_type("code").score_items(task, cell(mbpp, answers))
    assert scores == [1.0, 1.0, 1.0] and values is not None and values["pass_at_1"].mean() == 1.0
    assert statistics is None


def test_each_failure_has_its_class(mbpp):
    is_not_prime, heap, remove_occ = mbpp
    items = [is_not_prime, heap, remove_occ, is_not_prime, heap, remove_occ, is_not_prime]
    answers = [
        "```python\ndef is_not_prime(n):\n    return n % 2 == 0\n```",  # wrong: is_not_prime(2) is True
        "def heap_queue_largest(nums, n)\n    return sorted(nums)[-n:]",  # no colon
        "```python\ndef remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[:-0 or None] + undefined_name\n```",
        "```python\ndef is_not_prime(n):\n    while True:\n        pass\n```",
        "",
        "I cannot write that function.",  # prose: parsed as code, does not compile
        "```python\ndef is_not_prime(n):\n    return n % 2 == 0\n```",  # wrong and cut at max_new_tokens
    ]
    task = code_task()
    frame = cell(items, answers, tokens_out=[40.0] * 6 + [float(MAX_NEW)])
    scores, values, _ = task_type("code").score_items(task, frame)
    assert scores == [0.0] * 7 and values is not None and values["pass_at_1"].sum() == 0
    assert errors(task, frame, scores) == ["assertion", "syntax", "runtime", "timeout", "no_code", "syntax",
                                           "truncated"]


def test_a_right_answer_at_the_token_cap_is_not_truncated(mbpp):
    task = code_task()
    frame = cell(mbpp[:1], [mbpp[0]["target"]], tokens_out=[float(MAX_NEW)])
    scores, _, _ = task_type("code").score_items(task, frame)
    assert scores == [1.0] and errors(task, frame, scores) == [None]


def test_error_class_reads_the_scored_outcomes_without_running_again(mbpp, monkeypatch):
    """A spy on the real sandbox call (it still runs every program) counts the runs."""
    calls: list[int] = []
    real = code_module.check_programs

    def spy(items, *args, **kwargs):
        calls.append(len(items))
        return real(items, *args, **kwargs)

    monkeypatch.setattr(code_module, "check_programs", spy)
    task = code_task()
    answers = [mbpp[0]["target"], "def is_not_prime(n): return None", mbpp[2]["target"], mbpp[0]["target"]]
    frame = cell([mbpp[0], mbpp[0], mbpp[2], mbpp[0]], answers)
    scores, _, _ = task_type("code").score_items(task, frame)
    assert scores == [1.0, 0.0, 1.0, 1.0]
    assert calls == [3]  # the repeated (program, tests) pair ran once
    assert errors(task, frame, scores) == [None, "assertion", None, None]
    assert calls == [3]
    other = cell([mbpp[1]], ["def heap_queue_largest(nums, n): return []"])
    assert errors(task, other, [0.0]) == ["assertion"]  # not scored before: run now
    assert calls == [3, 1]


def test_a_program_that_ignores_the_alarm_is_stopped_by_the_wall_clock():
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"
    result = check_program(code, ["assert True"], "", SandboxLimits(timeout_s=0.5, wall_s=2.0, cpu_s=5))
    assert (result.passed, result.error) == (False, "timeout")
    caught = "def f():\n    while True:\n        try:\n            while True:\n                pass\n" \
             "        except BaseException:\n            return 1"
    result = check_program(caught, ["assert f() == 1"], "", execution_limits(0.5))
    assert (result.passed, result.error) == (False, "timeout"), result.detail  # caught the alarm: still a timeout


def test_setup_runs_first_and_what_the_program_prints_is_no_verdict():
    printed = 'import json, os\nprint(json.dumps({"pid": os.getpid(), "outcome": None, "detail": "passed"}))\n' \
              "def root(x):\n    return math.isqrt(x)"
    results = check_programs([(printed, ["assert root(16) == 4"], "import math"),
                              (printed, ["assert root(16) == 5"], "import math"),
                              ("def root(x):\n    return math.isqrt(x)", ["assert root(16) == 4"], "")])
    assert [(r.passed, r.error) for r in results] == [(True, None), (False, "assertion"), (False, "runtime")]
    assert "NameError" in results[2].detail and "test 1" in results[2].detail


def test_items_whose_own_tests_do_not_compile_are_a_data_error(mbpp):
    broken = {**mbpp[0], "tests": ["assert is_not_prime(2) == False", "assert is_not_prime(10 == True"]}
    with pytest.raises(DataError) as info:
        task_type("code").score_items(code_task(), cell([broken], [mbpp[0]["target"]]))
    assert info.value.field == "tests" and "mbpp-3" in info.value.problem and "test 2" in info.value.problem
    assert info.value.file == "the prepared test split of mbpp"


def test_the_user_turn_shows_each_rows_tests(mbpp):
    template = PromptTemplate(system="You are an expert Python programmer.",
                              user="{{ input }} Your code should pass these tests:\n\n{{ tests }}",
                              assistant="```python\n{{ target }}\n```")
    messages = template.messages(mbpp[2], [mbpp[0]], None)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"].endswith("\n\n" + "\n".join(mbpp[0]["tests"]).strip())
    assert messages[2]["content"] == "```python\n" + mbpp[0]["target"].strip() + "\n```"
    assert messages[3]["content"].endswith("\n\n" + "\n".join(mbpp[2]["tests"]))
    listed = PromptTemplate(system=None, user="{% for t in tests %}[{{ t }}]{% endfor %}", assistant="{{ target }}")
    assert listed.messages(mbpp[1], [], None)[0]["content"] == "".join(f"[{t}]" for t in mbpp[1]["tests"]).strip()


def test_a_code_cell_is_scored_end_to_end(mbpp, tmp_path):
    """score_predictions reads the items' tests and setup, runs the programs and records pass@1 and
    each item's error class."""
    write_jsonl(tmp_path / "test.jsonl", mbpp)
    outputs = [f"```python\n{mbpp[0]['target']}\n```", "def heap_queue_largest(nums, n):\n    return nums[:n]",
               "```python\ndef remove_Occ(s, ch):\n"]
    write_jsonl(tmp_path / "preds.jsonl", [
        {"id": r["id"], "output": o, "parsed": code_block(o), "latency_s": 0.1, "tokens_in": 30, "tokens_out": 20}
        for r, o in zip(mbpp, outputs)])
    write_json(tmp_path / "meta.json", {"system": "m", "model": "m", "adapter": None, "prompting": "0shot",
                                        "shots": 0, "method": "generate", "started_at": "2026-01-01T00:00:00+00:00",
                                        "finished_at": "2026-01-01T00:01:00+00:00"})
    record = score_predictions(task=code_task(), predictions_path=str(tmp_path / "preds.jsonl"),
                               meta_path=str(tmp_path / "meta.json"), test_path=str(tmp_path / "test.jsonl"),
                               max_items=None, bootstrap={"resamples": 200, "confidence": 0.95, "seed": 0},
                               out_path=str(tmp_path / "score.json"))
    assert record["metrics"]["pass_at_1"]["value"] == round(1 / 3, 6)
    assert [(it["score"], it["error"]) for it in record["items"]] == [(1.0, None), (0.0, "assertion"),
                                                                      (0.0, "syntax")]
    assert record["errors"] == {"assertion": 1, "syntax": 1}
