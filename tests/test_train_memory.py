"""Training memory: the peak estimated from token counts before training, the refusal of a run that
would not fit (before the model loads), and the lean path (loss at answer tokens only, micro-batches
with gradient accumulation) learning what TRL's own path learns, on a tiny random Llama."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, write_jsonl
from tunebench.train import lora
from tunebench.train.lora import TrainingError, train_adapter
from tunebench.train.memory import estimate_peak_mb, micro_batch_rows

HP = {"name": "tiny", "trainer": "peft", "lora": {"r": 4, "alpha": 8, "dropout": 0.05,
                                                   "target_modules": ["q_proj", "v_proj"]},
      "learning_rate": 0.003, "epochs": 1, "max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 1,
      "warmup_ratio": 0.0, "weight_decay": 0.0, "max_length": 128, "eval_steps": 2, "max_val_items": 4, "seed": 3}
SMOL = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                   num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def routing(repo_root):
    project = load_project_from_file(repo_root)
    return project.tasks["ticket_routing"], project.prompts["ticket_routing"]


@pytest.fixture
def data(tmp_path):
    # inputs of different lengths, so micro-batches pad differently from the whole batch
    rows = [{"id": f"r{i:03d}", "input": f"My order {i} " + "really " * (i % 5)
             + ("never arrived" if i % 2 else "was charged twice"),
             "target": "shipping_delay" if i % 2 else "billing"} for i in range(20)]
    write_jsonl(tmp_path / "train.jsonl", rows[:16])
    write_jsonl(tmp_path / "val.jsonl", rows[16:])
    return tmp_path / "train.jsonl", tmp_path / "val.jsonl"


def train(tmp_path, routing, data, model_dir, name, hp=HP, **kwargs):
    task, prompt = routing
    return train_adapter(task=task, prompt_spec=prompt, hp=hp, hp_file="configs/training/tiny.yaml",
                         model_dir=model_dir, train_path=data[0], val_path=data[1], out_dir=tmp_path / name,
                         work_root=tmp_path / f"work-{name}", threads=1, progress=False, **kwargs)


def estimate(config=SMOL, rows=8, length=600, answers=40, lean=True):
    return estimate_peak_mb(config, n_params=134_515_008, n_trainable=4_884_480, micro_rows=rows,
                            padded_length=length, answer_tokens=answers, lean=lean)


def test_the_estimate_grows_with_the_tokens_per_pass_and_the_vocabulary():
    one, two = estimate(rows=4), estimate(rows=8)
    assert two["parts_mb"]["activations"] == pytest.approx(2 * one["parts_mb"]["activations"], abs=1)
    assert estimate(length=1200)["parts_mb"]["activations"] > 2 * estimate(length=600)["parts_mb"]["activations"]
    # the case: 8 rows of ~600 tokens in one pass needed ~22 GiB; one row at a time, a few GB
    assert estimate(rows=8, lean=False)["peak_mb"] > 15_000 and estimate(rows=1)["peak_mb"] < 4_000
    # TRL's own loss scores every position through the whole vocabulary; the lean one only the answers
    assert estimate(lean=False)["parts_mb"]["logits"] > 10 * estimate()["parts_mb"]["logits"]
    bigger_vocab = LlamaConfig(**{**SMOL.to_dict(), "vocab_size": 4 * 49152})
    assert estimate(bigger_vocab)["parts_mb"]["logits"] == pytest.approx(4 * estimate()["parts_mb"]["logits"], rel=0.05)
    assert sum(estimate()["parts_mb"].values()) == pytest.approx(estimate()["peak_mb"], abs=3)


def test_micro_batches_are_the_largest_divisor_of_the_batch_that_fits_batch_tokens():
    assert micro_batch_rows(8, 126, 1024) == 8  # the demo: one pass per step, as before
    assert micro_batch_rows(8, 650, 1024) == 1
    assert micro_batch_rows(8, 300, 1024) == 2  # 3 rows would fit, but 3 does not divide 8
    assert micro_batch_rows(6, 300, 1024) == 3
    assert micro_batch_rows(8, 5000, 1024) == 1  # one row is the least a pass can hold


def test_a_run_that_would_not_fit_is_refused_before_the_model_loads(tmp_path, routing, data, tiny_llama_dir,
                                                                     monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(lora, "_load_model", no_load)
    with pytest.raises(TrainingError) as err:
        train(tmp_path, routing, data, tiny_llama_dir, "adapter", mem_mb=100)
    e = err.value
    assert e.file == "configs/training/tiny.yaml" and e.field == "batch_tokens"
    assert "the job's memory (resources mem_mb), 100 MB" in e.problem and "4 rows x" in e.problem
    assert "lower `batch_tokens`" in e.fix and "mem_mb" in e.fix
    assert not (tmp_path / "adapter").exists()

    monkeypatch.setattr(lora, "machine_mb", lambda: 50.0)  # a machine smaller than the job's mem_mb
    with pytest.raises(TrainingError) as err:
        train(tmp_path, routing, data, tiny_llama_dir, "adapter", hp={**HP, "batch_tokens": 16}, mem_mb=100_000)
    assert "this machine's memory, 50 MB" in err.value.problem
    assert err.value.field == "max_length" and "shorten the examples" in err.value.fix  # already one row a pass


def test_the_lean_path_learns_what_trls_own_path_learns(tmp_path, routing, data, tiny_llama_dir):
    # TRL's own loss over the whole batch in one pass, against the loss at answer tokens only, one row
    # per pass with gradient accumulation over the batch: the same update, so the same losses (no
    # dropout, whose draws follow the tensors' shapes; with the same shapes they match too:
    # perf/train_memory.py compares the demo's runs)
    hp = {**HP, "lora": {**HP["lora"], "dropout": 0.0}, "max_steps": 3, "eval_steps": 3}
    old = train(tmp_path, routing, data, tiny_llama_dir, "old", hp=hp, lean=False)
    new = train(tmp_path, routing, data, tiny_llama_dir, "new", hp={**hp, "batch_tokens": 16})
    assert not old["lean_loss"] and old["micro_batch_rows"] == 4
    assert new["lean_loss"] and new["micro_batch_rows"] == 1

    def curve(record, key="loss_curve", value="loss"):
        return [p[value] for p in record[key]]

    assert curve(new) == pytest.approx(curve(old), abs=1e-5) and len(curve(new)) == 3
    assert curve(new, "eval_curve", "eval_loss") == pytest.approx(curve(old, "eval_curve", "eval_loss"), abs=1e-5)
    assert curve(new)[-1] < curve(new)[0]  # it learnt something, so equal curves are not two idle runs
    record = read_json(tmp_path / "new" / "training.json")
    assert record["memory_estimate"]["micro_rows"] == 1 and record["memory_estimate"]["peak_mb"] > 0


def test_the_workflows_adapter_records_its_estimate_next_to_its_measured_peak(demo_run):
    records = [read_json(p) for p in sorted((demo_run / "results/test/adapters").glob("*/*/training.json"))]
    (record,) = [r for r in records if "memory_estimate" in r]  # the LoRA's (the classic baseline has none)
    estimate, peak = record["memory_estimate"]["peak_mb"], record["peak_rss_mb"]
    assert record["lean_loss"] and record["micro_batch_rows"] == record["memory_estimate"]["micro_rows"]
    assert record["micro_batch_rows"] >= 1 and record["training"]["batch_size"] % record["micro_batch_rows"] == 0
    # calibrated to within ~11 % on SmolLM2-135M (perf/train_memory.py); here a loose bound, for a one-step run
    assert 0.6 * peak < estimate < 1.6 * peak, (estimate, peak)
