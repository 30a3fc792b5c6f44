"""Label log-likelihood classification and token-budget batching, on a tiny random Llama."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tunebench.backends.batching import plan_batches
from tunebench.backends.transformers_backend import TransformersBackend
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.errors import ConfigError
from tunebench.predict.generate import generate_predictions

ITEMS = ("short", "a somewhat longer item text about a parcel", "x " * 20, "mid item", "y", "refund me now")


def reference_logprob(backend, prompt: str, continuation: str) -> float:
    """log P(continuation | prompt) from one plain forward pass over prompt + continuation."""
    torch = backend.torch
    tok = backend.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(continuation, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(backend.model(torch.tensor([p + c])).logits[0].float(), dim=-1)
    return float(sum(logp[len(p) - 1 + k, t] for k, t in enumerate(c)))


@pytest.fixture(scope="module")
def backend(tiny_llama_dir):
    return TransformersBackend(tiny_llama_dir, threads=1)


def conversations(system: str = "route tickets to billing, refund or shipping_delay"):
    shots = []
    for i in range(3):
        shots += [{"role": "user", "content": f"example {i} " * 6}, {"role": "assistant", "content": "refund"}]
    return [[{"role": "system", "content": system}, *shots, {"role": "user", "content": text}] for text in ITEMS]


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_each_label_is_scored_as_if_alone_after_its_prompt(backend, share_prefix, batch_size):
    convs = conversations()
    prompts = [backend.render(c) for c in convs]
    labels = ["billing", "refund", "shipping_delay", "ref"]  # 'ref' is a prefix of 'refund'
    continuations = [backend.answer_text(convs[0], label) for label in labels]
    assert continuations[1].startswith("refund") and continuations[1] != "refund"  # the turn's end is scored
    scored = backend.score_continuations(prompts, continuations, batch_size=batch_size,
                                         share_prefix=share_prefix, progress=False)
    assert (backend.last_prefix["tokens"] > 0) == share_prefix
    for prompt, s in zip(prompts, scored):
        assert s.tokens_in == len(backend.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert s.logprobs == pytest.approx([reference_logprob(backend, prompt, c) for c in continuations],
                                           abs=2e-3)
        assert s.batch_size <= batch_size


def test_answer_text_is_what_the_chat_template_writes_after_the_prompt(backend):
    convs = conversations()
    prompt = backend.render(convs[0])
    text = backend.answer_text(convs[0], "billing")
    full = backend.tokenizer.apply_chat_template(convs[0] + [{"role": "assistant", "content": "billing"}],
                                                 tokenize=False)
    assert full.startswith(prompt + text)
    assert full[len(prompt + text):].strip() == ""


def test_loglik_scoring_resumes_from_its_journal(backend, tmp_path):
    convs = conversations()
    prompts = [backend.render(c) for c in convs]
    conts = [backend.answer_text(convs[0], x) for x in ("billing", "refund")]
    journal = tmp_path / ".cell.journal"
    first = backend.score_continuations(prompts, conts, batch_size=2, progress=False, journal=journal)
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + 3  # key + one line per batch
    journal.write_text("\n".join(lines[:2]) + "\n")  # as if killed after the first batch
    again = backend.score_continuations(prompts, conts, batch_size=2, progress=False, journal=journal)
    assert [s.logprobs for s in again] == [s.logprobs for s in first]


def test_token_budget_batches_short_prompts_together_and_long_ones_apart():
    lengths = [10, 10, 10, 10, 100, 100, 400]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    assert plan_batches(order, lengths, batch_size=8, batch_tokens=None, extra_tokens=0) == [order]
    batches = plan_batches(order, lengths, batch_size=8, batch_tokens=240, extra_tokens=10)
    assert batches == [[0, 1, 2, 3], [4, 5], [6]]  # 4 x 20, 2 x 110, the 400-token item alone
    for batch in batches[:-1]:
        assert len(batch) * (max(lengths[i] for i in batch) + 10) <= 240
    assert plan_batches(order, lengths, batch_size=3, batch_tokens=10_000, extra_tokens=0) == [
        [0, 1, 2], [3, 4, 5], [6]]


def test_token_budget_generation_gives_the_same_answers(backend):
    prompts = [backend.render(c) for c in conversations()]
    fixed = backend.generate(prompts, max_new_tokens=5, stop=[], batch_size=4, progress=False)
    budget = backend.generate(prompts, max_new_tokens=5, stop=[], batch_size=4, batch_tokens=400,
                              progress=False)
    assert [g.text for g in budget] == [g.text for g in fixed]
    assert max(g.batch_size for g in budget) < max(g.batch_size for g in fixed)


def run_cell(project, task, tiny_llama_dir, tmp_path, name):
    return generate_predictions(
        task=task, model=project.models["smollm2-135m-instruct"], model_dir=tiny_llama_dir,
        prompt_spec=project.prompts["ticket_routing"], train_path=tmp_path / "train.jsonl",
        test_path=tmp_path / "test.jsonl", shots=2, fewshot_seed=1, max_items=6, threads=1,
        out_rows=str(tmp_path / f"{name}.jsonl"), out_meta=str(tmp_path / f"{name}.meta.json"),
        system="tiny", prompting="2shot", progress=False)


def test_loglik_cell_answers_with_the_most_likely_label(routing_split, tiny_llama_dir, tmp_path):
    project, task = routing_split
    loglik = dataclasses.replace(task, method="loglik")
    meta = run_cell(project, loglik, tiny_llama_dir, tmp_path, "ll")
    assert meta["method"] == "loglik" and read_json(tmp_path / "ll.meta.json")["method"] == "loglik"
    rows = read_jsonl(tmp_path / "ll.jsonl")
    assert len(rows) == 6
    for row in rows:
        scores = row["label_logprobs"]
        assert list(scores) == list(task.labels)
        assert row["parsed"] == max(scores, key=scores.get)  # never unparsable
        assert row["output"] == row["parsed"] and row["tokens_out"] == 0
        assert all(v < 0 for v in scores.values())
    generated = run_cell(project, task, tiny_llama_dir, tmp_path, "gen")
    assert generated["method"] == "generate"
    assert all("label_logprobs" not in r for r in read_jsonl(tmp_path / "gen.jsonl"))


def test_loglik_needs_a_classification_task(repo_root, tmp_path):
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(repo_root / "configs", root / "configs")
    shutil.copytree(repo_root / "prompts", root / "prompts")
    path = root / "configs" / "tasks" / "ticket_product.yaml"
    path.write_text(path.read_text() + "method: loglik\n")
    assert "type: extraction" in path.read_text()
    with pytest.raises(ConfigError) as info:
        load_project_from_file(root)
    assert "ticket_product.yaml" in str(info.value) and "type" in str(info.value)



def test_benchmark_peers_agree_with_lm_eval_on_the_same_items(routing_split, tiny_llama_dir, tmp_path):
    """perf/predict_vs_lmeval.py on 4 items: our generation and label log-likelihoods are
    lm-eval's hf backend's (same answers, log-probs within float noise); only speed may differ."""
    import importlib.util

    from lm_eval.models.huggingface import HFLM

    from tunebench.core.atomic import read_jsonl as read
    from tunebench.tasks.prompting import PromptTemplate

    path = Path(__file__).parents[1] / "perf" / "predict_vs_lmeval.py"
    spec = importlib.util.spec_from_file_location("predict_vs_lmeval", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    project, task = routing_split
    backend = TransformersBackend(tiny_llama_dir, threads=1)
    lm = HFLM(pretrained=str(tiny_llama_dir), device="cpu", dtype="float32", batch_size=2)
    out = bench.bench_condition(backend, lm, task=task, model=None, template=PromptTemplate.from_spec(
        project.prompts[task.name]), items=read(tmp_path / "test.jsonl")[:4], train=read(tmp_path / "train.jsonl"),
        shots=2, seed=1, batch_size=2, batch_tokens=None, peer_loglik_items=3)
    assert out["generate"]["same_answer_rate"] == 1.0
    assert out["classify"]["same_label_as_lm_eval"] == 1.0
    assert out["classify"]["max_label_spread_of_diff_vs_lm_eval"] < 1e-3  # only lm-eval's moved "\n" differs
    assert out["generate"]["tunebench"]["shared_prefix_tokens"] > 0
    for phase in (out["generate"]["tunebench"], out["generate"]["lm_eval_hf"], out["classify"]["tunebench_loglik"]):
        assert phase["seconds"] > 0 and phase["items_per_s"] > 0
