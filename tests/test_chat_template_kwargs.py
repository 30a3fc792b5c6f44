"""A model's chat_template_kwargs (Qwen3's enable_thinking: false) reach every place its chat
template is applied: the transformers and vLLM backends, an OpenAI-compatible server's request,
the LoRA training data, and lm-eval's hf model. The tiny random Llama gets a chat template that,
like Qwen3's, writes an empty <think> block when enable_thinking is false."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from tunebench.core.spec import Model

NO_THINK = {"enable_thinking": False}
EMPTY_THINK = "<think>\n\n</think>\n\n"
# Qwen3's rule in short: an empty think block opens the answer when enable_thinking is false, in
# the generation prompt and in the last assistant turn (so a prompt is a prefix of prompt + answer).
THINKING_TEMPLATE = (
    "{%- set no_think = enable_thinking is defined and enable_thinking is false -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% if no_think and loop.last %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{{ m.content + '<|im_end|>\\n' }}"
    "{%- else -%}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{% if no_think %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{%- endif -%}"
)
MESSAGES = [{"role": "system", "content": "Route the ticket."}, {"role": "user", "content": "Ticket: my card is lost"}]


@pytest.fixture(scope="module")
def thinking_llama_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("thinking-llama") / "model"
    shutil.copytree(tiny_llama_dir, out)
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.chat_template = THINKING_TEMPLATE
    tok.save_pretrained(str(out))
    return out


def test_the_transformers_backend_renders_with_the_models_chat_template_kwargs(thinking_llama_dir):
    from tunebench.backends.base import BackendContext
    from tunebench.backends.transformers_backend import TransformersBackend

    plain = TransformersBackend.from_context(BackendContext(model=Model(name="m"), model_dir=thinking_llama_dir,
                                                            threads=1))
    no_think = TransformersBackend.from_context(BackendContext(
        model=Model(name="m", chat_template_kwargs=NO_THINK), model_dir=thinking_llama_dir, threads=1))
    assert plain.prompt_text(MESSAGES).endswith("<|im_start|>assistant\n")
    assert no_think.prompt_text(MESSAGES) == plain.prompt_text(MESSAGES) + EMPTY_THINK
    # label scoring: the answer continues the prompt rendered with the same variables
    assert no_think.answer_text(MESSAGES, "lost_card") == "lost_card<|im_end|>"


def test_the_vllm_backend_renders_with_them_against_a_mocked_engine_no_gpu(monkeypatch, thinking_llama_dir):
    from test_backends import _fake_vllm_0_33
    from transformers import AutoTokenizer

    calls: dict = {}
    tokenizer = AutoTokenizer.from_pretrained(str(thinking_llama_dir))
    for name, module in _fake_vllm_0_33(tokenizer, calls).items():
        monkeypatch.setitem(sys.modules, name, module)
    from tunebench.backends.base import BackendContext
    from tunebench.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend.from_context(BackendContext(model=Model(name="q", backend="vllm", dtype="bfloat16",
                                                                  chat_template_kwargs=NO_THINK),
                                                      model_dir=thinking_llama_dir))
    backend.complete([MESSAGES], max_new_tokens=4, stop=[], progress=False)
    assert tokenizer.decode(calls["seen"][0]).endswith("<|im_start|>assistant\n" + EMPTY_THINK)


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        answer = {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                  "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                  "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        return None


def test_an_openai_compatible_server_gets_them_only_when_set_standin_server():
    """A stand-in HTTP endpoint records the request bodies: vLLM's server reads `chat_template_kwargs`
    from the body; a frontier API would refuse the unknown field, so an empty setting sends none."""
    from tunebench.backends.openai_backend import OpenAIBackend

    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        for kwargs in (NO_THINK, {}):
            backend = OpenAIBackend(base_url=url, model="served", stream=False, chat_template_kwargs=kwargs)
            assert backend.complete([MESSAGES], max_new_tokens=4, progress=False)[0].text == "ok"
            backend.close()
    finally:
        server.shutdown()
    with_kwargs, without = _Recorder.bodies[-2:]
    assert with_kwargs["chat_template_kwargs"] == NO_THINK and "chat_template_kwargs" not in without


def test_a_reasoning_model_gets_max_completion_tokens_and_no_temperature_or_stop_standin_server():
    """OpenAI's GPT-5 models answer 400 to max_tokens, a temperature and stop strings: a model whose
    source sets reasoning_effort sends max_completion_tokens (answer + reasoning budget) instead, and
    its answer is still cut at the task's stop string here."""
    from tunebench.backends.openai_backend import OpenAIBackend

    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        backend = OpenAIBackend(base_url=url, model="gpt-5.4-mini", stream=False, reasoning_effort="low",
                                reasoning_tokens=1000)
        assert backend.complete([MESSAGES], max_new_tokens=8, stop=["\n"], progress=False)[0].text == "ok"
        backend.close()
    finally:
        server.shutdown()
    body = _Recorder.bodies[-1]
    assert body["max_completion_tokens"] == 1008 and body["reasoning_effort"] == "low"
    assert not {"max_tokens", "temperature", "stop"} & set(body)


def test_lora_training_data_is_rendered_with_them(thinking_llama_dir, tmp_path):
    """The examples carry the kwargs in TRL's `chat_template_kwargs` column; SFTTrainer's own
    tokenization then renders the prompt as prediction does (the empty think block before the answer)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunebench.core.spec import Task
    from tunebench.train.lora import _token_counts, training_examples

    task = Task(name="t", labels=("lost_card", "refund"))
    spec = {"system": "Route the ticket.", "user": "Ticket: {{ input }}", "assistant": "{{ target }}"}
    rows = [{"id": "a", "input": "my card is lost", "target": "lost_card"}]
    tok = AutoTokenizer.from_pretrained(str(thinking_llama_dir))
    plain, no_think = training_examples(task, spec, rows), training_examples(task, spec, rows, NO_THINK)
    assert "chat_template_kwargs" not in plain[0] and no_think[0]["chat_template_kwargs"] == NO_THINK
    assert _token_counts(tok, no_think)[0] > _token_counts(tok, plain)[0]

    texts = {}
    for name, examples in (("plain", plain), ("no_think", no_think)):
        columns = [k for k in ("prompt", "completion", "chat_template_kwargs") if k in examples[0]]
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(str(thinking_llama_dir)), processing_class=tok,
            args=SFTConfig(output_dir=str(tmp_path / name), report_to="none", use_cpu=True, bf16=False,
                           completion_only_loss=True, max_length=128),
            train_dataset=Dataset.from_list([{k: e[k] for k in columns} for e in examples]))
        item = trainer.train_dataset[0]
        answer = [t for t in item["labels"] if t != -100]  # TRL masks the prompt out of the loss with -100
        texts[name] = (tok.decode(item["input_ids"]), tok.decode(answer))
    assert EMPTY_THINK not in texts["plain"][0]
    assert "<|im_start|>assistant\n" + EMPTY_THINK + "lost_card" in texts["no_think"][0]
    # the loss is on the answer (this tokenizer merges the think block's last "\n\n" into the answer's
    # first token, so TRL starts the answer there; Qwen's tokenizer splits at newlines)
    assert texts["plain"][1] == "lost_card<|im_end|>\n" and texts["no_think"][1].endswith("lost_card<|im_end|>\n")


def test_lm_eval_gets_them_as_its_models_take_them(thinking_llama_dir):
    from lm_eval.models.huggingface import HFLM

    from tunebench.benchmarks.run import hf_model, template_args, vllm_model

    assert template_args({}) == {} and template_args(None) == {}
    # lm-eval 0.4.13's vllm model pops enable_thinking out of chat_template_args and then overwrites it
    # with its own argument: it has to travel as that argument
    assert template_args({"enable_thinking": False, "reasoning_effort": "low"}) == {
        "enable_thinking": False, "chat_template_args": {"reasoning_effort": "low"}}
    assert vllm_model(str(thinking_llama_dir), chat_template_kwargs=NO_THINK)["args"]["enable_thinking"] is False
    assert "enable_thinking" not in hf_model(str(thinking_llama_dir))["args"]  # nothing set: lm-eval's defaults
    spec = hf_model(str(thinking_llama_dir), chat_template_kwargs=NO_THINK)
    lm = HFLM(**spec["args"], batch_size=1, device="cpu")
    assert lm.apply_chat_template(MESSAGES).endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    plain = HFLM(**hf_model(str(thinking_llama_dir))["args"], batch_size=1, device="cpu")
    assert plain.apply_chat_template(MESSAGES).endswith("<|im_start|>assistant\n")


def test_qwen3_turns_thinking_off_and_llamacpp_refuses_them(tmp_path):
    from tunebench.config.loader import load_project_from_file
    from tunebench.core.errors import ConfigError

    root = Path(__file__).resolve().parents[1]
    project = load_project_from_file(root, overrides={"models": ["qwen3-8b", "phi-4-mini"]})
    assert project.models["qwen3-8b"].chat_template_kwargs == NO_THINK
    assert project.models["phi-4-mini"].chat_template_kwargs == {}
    assert project.models["qwen3-8b"].to_param()["chat_template_kwargs"] == NO_THINK  # travels to the jobs
    doc = yaml.safe_load((root / "configs/models/smollm2-135m-instruct-gguf.yaml").read_text())
    repo = tmp_path / "repo"
    for folder in ("configs", "prompts"):
        shutil.copytree(root / folder, repo / folder)
    (repo / "configs/models/gguf-think.yaml").write_text(yaml.safe_dump(
        {**doc, "name": "gguf-think", "chat_template_kwargs": NO_THINK}))
    with pytest.raises(ConfigError) as err:
        load_project_from_file(repo, overrides={"models": ["gguf-think"]})
    assert (err.value.file, err.value.field) == ("configs/models/gguf-think.yaml", "chat_template_kwargs")
