"""lm-eval's `tunebench-hf` model (tunebench.benchmarks.lm_model): HFLM with tunebench's generation.
Its generate_until must give HFLM's own strings, request for request, on real lm-eval."""

from __future__ import annotations

import json

import pytest

PREFIX = ("<|im_start|>system\nYou are a careful assistant. Answer every question briefly, in plain words, "
          "and never repeat the question back to the user.<|im_end|>\n<|im_start|>user\n")
QUESTIONS = ["Hi.", "What is two plus two, and why?", "Name a colour.",
             "Tell me about the weather in a city of your choice, with some detail please.",
             "Why is the sky blue?", "Count to five."]


@pytest.fixture(scope="module")
def lm(tiny_llama_dir):
    """The tiny Llama with larger random weights: it writes varied tokens (the fixture's own weights
    make it repeat the context's last token)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunebench.benchmarks.lm_model import TunebenchHFLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    torch.manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.normal_(0, 0.2)
    return TunebenchHFLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(str(tiny_llama_dir)),
                         batch_size=4, device="cpu")


def requests_for(contexts, gen_kwargs):
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", {}, (c, dict(gen_kwargs)), i) for i, c in enumerate(contexts)]


class Recorder:
    def __init__(self):
        self.seen = []

    def add_partial(self, attr, req, res):
        self.seen.append((attr, req, res))


def test_generate_until_gives_hflms_strings(lm):
    """Contexts of different lengths after a shared prefix (its KV cache is reused), two groups of
    generation options, and stop strings that occur mid-output: HFLM's strings, exactly."""
    from lm_eval.models.huggingface import HFLM

    contexts = [PREFIX + q + "\n#" for q in QUESTIONS]  # a context ending as a stop string begins
    free = {"until": [], "max_gen_toks": 24, "do_sample": False}
    uncut = HFLM.generate_until(lm, requests_for(contexts, free))
    # stop strings from the middle of two answers, so they cut those answers (and maybe others); and
    # one that begins in the context: a stop never spans context and answer (transformers' own
    # stop_strings would end answer 1 after its first token)
    stops = [uncut[0][6:9], uncut[3][10:12], "\n#" + uncut[1][:3]]
    cut = {"until": stops, "max_gen_toks": 20, "temperature": 0.0}
    requests = requests_for(contexts, free) + requests_for(contexts, cut)
    expected = HFLM.generate_until(lm, requests)
    assert len(set(expected[:6])) == 6  # varied answers
    assert sum(0 < len(e) < len(u) for e, u in zip(expected[6:], uncut)) >= 2  # cut mid-output
    assert expected[7].startswith(uncut[1][:3]) and len(expected[7]) > 3
    hook = Recorder()
    lm.set_cache_hook(hook)
    before = dict(lm.generated)
    assert lm.generate_until(requests) == expected
    assert lm.generated["tunebench"] - before["tunebench"] == len(requests)
    assert lm.generated["lm_eval"] == before["lm_eval"]
    assert lm._generator().shared_prefix_tokens() >= 32  # the shared prefix's cache was used
    # each answer reached the cache hook (the worker's request cache and heartbeat), with its request
    def key(args, text):
        return args[0], json.dumps(args[1], sort_keys=True), text

    assert sorted(key(r, s) for _, r, s in hook.seen) == sorted(key(q.args, e) for q, e in zip(requests, expected))
    assert {attr for attr, _, _ in hook.seen} == {"generate_until"}


def test_a_sampling_request_falls_back_to_hflm(lm):
    contexts = [PREFIX + q for q in QUESTIONS[:2]]
    greedy = requests_for(contexts, {"until": ["\n"], "max_gen_toks": 5, "do_sample": False})
    sampled = requests_for(contexts[:1], {"until": ["\n"], "max_gen_toks": 5, "do_sample": True,
                                          "temperature": 0.7})
    before = dict(lm.generated)
    out = lm.generate_until(greedy + sampled)
    assert len(out) == 3 and all(isinstance(s, str) for s in out)
    assert lm.generated["lm_eval"] - before["lm_eval"] == 1
    assert lm.generated["tunebench"] - before["tunebench"] == 2


def test_contexts_are_tokenized_as_hflm_tokenizes_them(lm):
    """BOS rule and left truncation as HFLM's tok_batch_encode (its padding aside)."""
    contexts = [PREFIX + q for q in QUESTIONS]
    for add_bos in (None, True, False):
        lm.add_bos_token = add_bos
        try:
            ids, mask = lm.tok_batch_encode(contexts, left_truncate_len=40)
            theirs = [[t for t, m in zip(row, keep) if m] for row, keep in zip(ids.tolist(), mask.tolist())]
            assert lm._encode(contexts, 40) == theirs
        finally:
            lm.add_bos_token = None


def test_a_stop_string_never_spans_context_and_answer(tiny_llama_dir):
    """The fixture's own weights repeat the context's last token: after a context ending in a newline
    it writes newlines. The stop "\\n\\n" is in the answer from its second token on (lm-eval's answer:
    empty); transformers' own stop_strings also match it across context and answer, and ended the
    answer after one newline."""
    from lm_eval.models.huggingface import HFLM

    from tunebench.benchmarks.lm_model import TunebenchHFLM

    lm = TunebenchHFLM(pretrained=str(tiny_llama_dir), batch_size=2, device="cpu")
    contexts = ["Hello there.\n", "Good morning to you.\n", "Hi.\n"]
    generated = lm._generator().generate(contexts, max_new_tokens=6, stop=["\n\n"], batch_size=2, progress=False)
    assert [g.text for g in generated] == ["\n\n"] * 3
    requests = requests_for(contexts, {"until": ["\n\n"], "max_gen_toks": 8, "do_sample": False})
    expected = HFLM.generate_until(lm, requests)
    assert expected == ["", "", ""]
    assert lm.generate_until(requests) == expected
    assert lm.generated["tunebench"] == 3


def test_benchmarks_generate_with_tunebench_unless_told_otherwise():
    from tunebench.benchmarks.run import generating_model, hf_model, vllm_model

    hf = hf_model("m")
    assert generating_model(hf, {"kind": "ifbench"})["name"] == "tunebench-hf"
    assert generating_model(hf, {"kind": "ifbench", "generate_with": "tunebench"})["args"] == hf["args"]
    assert generating_model(hf, {"kind": "ifbench", "generate_with": "lm_eval"}) == hf
    assert generating_model(vllm_model("m"), {"kind": "ifbench"})["name"] == "vllm"  # lm-eval's own
