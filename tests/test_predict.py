"""Prediction and scoring on a tiny random Llama (built from a config, no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunebench.backends.transformers_backend import TransformersBackend
from tunebench.core.atomic import read_json, read_jsonl, write_json, write_jsonl
from tunebench.core.errors import ConfigError, SourceError
from tunebench.data.models import MODEL_MANIFEST, materialize_model
from tunebench.predict.generate import generate_predictions
from tunebench.predict.score import score_predictions


def test_backend_generates_with_left_padding_and_counts_tokens(tiny_llama_dir):
    backend = TransformersBackend(tiny_llama_dir, threads=1)
    assert backend.tokenizer.padding_side == "left"
    prompts = [backend.render([{"role": "user", "content": text}])
               for text in ("hi", "a much longer prompt " * 8, "mid length prompt here")]
    assert prompts[0].startswith("<|im_start|>") and prompts[0].endswith("<|im_start|>assistant\n")
    batched = backend.generate(prompts, max_new_tokens=5, stop=[], batch_size=3, progress=False)
    single = [backend.generate([p], max_new_tokens=5, stop=[], batch_size=1, progress=False)[0] for p in prompts]
    for b, s, p in zip(batched, single, prompts):
        assert b.tokens_in == len(backend.tokenizer(p, add_special_tokens=False)["input_ids"])
        assert 0 <= b.tokens_out <= 5
        assert b.batch_size in (1, 2, 3) and s.batch_size == 1
    # greedy decoding is deterministic
    again = backend.generate(prompts, max_new_tokens=5, stop=[], batch_size=3, progress=False)
    assert [g.text for g in again] == [g.text for g in batched]


def test_shared_prefix_cache_gives_the_same_outputs(tiny_llama_dir):
    backend = TransformersBackend(tiny_llama_dir, threads=1)
    shots = [{"role": "user", "content": f"example {i} " * 6} for i in range(4)]
    prompts = [backend.render([{"role": "system", "content": "route tickets"}, *shots,
                               {"role": "user", "content": text}])
               for text in ("short", "a somewhat longer item text", "x " * 20, "mid item", "y")]
    shared = backend.generate(prompts, max_new_tokens=6, stop=[], batch_size=2, progress=False)
    assert backend.last_prefix["tokens"] > 40
    plain = backend.generate(prompts, max_new_tokens=6, stop=[], batch_size=2, progress=False,
                             share_prefix=False)
    assert backend.last_prefix["tokens"] == 0
    assert [g.text for g in shared] == [g.text for g in plain]
    assert [g.tokens_out for g in shared] == [g.tokens_out for g in plain]


def test_too_long_prompt_is_a_clear_error(tiny_llama_dir):
    backend = TransformersBackend(tiny_llama_dir, threads=1, max_input_tokens=16)
    with pytest.raises(ConfigError) as info:
        backend.generate(["word " * 100], max_new_tokens=2, stop=[], batch_size=1, progress=False)
    assert info.value.field == "max_input_tokens"


@pytest.fixture
def cell(routing_split, tmp_path, tiny_llama_dir):
    """Predictions + score for ticket_routing/5shot with the tiny model on 10 items."""
    project, task = routing_split
    paths = {"rows": str(tmp_path / "p.jsonl"), "meta": str(tmp_path / "p.meta.json"),
             "score": str(tmp_path / "s.json")}
    meta = generate_predictions(
        task=task, model=project.models["smollm2-135m-instruct"], model_dir=tiny_llama_dir,
        prompt_spec=project.prompts["ticket_routing"], train_path=tmp_path / "train.jsonl",
        test_path=tmp_path / "test.jsonl", shots=5, fewshot_seed=1, max_items=8, threads=1,
        out_rows=paths["rows"], out_meta=paths["meta"], system="tiny", prompting="5shot", progress=False)
    score = score_predictions(task=task, predictions_path=paths["rows"], meta_path=paths["meta"],
                              test_path=str(tmp_path / "test.jsonl"), max_items=8,
                              bootstrap={"resamples": 200, "confidence": 0.95, "seed": 0},
                              out_path=paths["score"])
    return task, meta, score, paths


def test_predictions_have_one_row_per_item_with_all_fields(cell):
    task, meta, _, paths = cell
    preds = read_jsonl(paths["rows"])
    assert [p["id"] for p in preds] == [f"r{i}" for i in range(20, 28)]
    for p in preds:
        assert set(p) == {"id", "prompt_hash", "output", "parsed", "latency_s", "tokens_in",
                          "tokens_out", "batch_size"}
        assert p["parsed"] is None or p["parsed"] in task.labels
        assert p["tokens_in"] > 100  # five in-context examples precede the item
    assert meta["shots"] == 5 and len(meta["shot_ids"]) == 5
    assert set(meta["shot_ids"]) <= {f"r{i}" for i in range(20)}  # examples come from train only
    assert read_json(paths["meta"]) == meta


def test_score_is_consistent_with_predictions(cell):
    task, _, score, paths = cell
    preds = {p["id"]: p for p in read_jsonl(paths["rows"])}
    assert score["n"] == 8 and len(score["items"]) == 8
    correct = [item["parsed"] == item["target"] for item in score["items"]]
    assert score["metrics"]["accuracy"]["value"] == pytest.approx(sum(correct) / 8)
    assert score["parse_failures"] == sum(p["parsed"] is None for p in preds.values())
    assert set(score["metrics"]) == set(task.metrics)
    assert score["timing"]["latency_p50_s"] > 0


def test_score_refuses_predictions_that_miss_items(cell, tmp_path):
    task, _, _, paths = cell
    rows = read_jsonl(paths["rows"])
    write_jsonl(paths["rows"], rows[:-1])

    def score() -> str:
        with pytest.raises(Exception) as info:
            score_predictions(task=task, predictions_path=paths["rows"], meta_path=paths["meta"],
                              test_path=str(tmp_path / "test.jsonl"), max_items=8,
                              bootstrap={"resamples": 100, "confidence": 0.95, "seed": 0},
                              out_path=str(tmp_path / "s2.json"))
        assert not (tmp_path / "s2.json").exists()
        return str(info.value)

    assert "changed after it was written (7 rows now, 8 when written" in score()  # the meta's digest
    meta = read_json(paths["meta"])
    write_json(paths["meta"], {k: v for k, v in meta.items() if k != "rows_file"})  # a meta from before digests
    assert "no prediction" in score()
    write_json(paths["meta"], meta)
    write_jsonl(paths["rows"], rows)


def test_materialize_from_local_folder(tiny_llama_dir, tmp_path):
    manifest = materialize_model({"kind": "local", "path": str(tiny_llama_dir)}, tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    assert read_json(tmp_path / "m" / MODEL_MANIFEST) == manifest
    TransformersBackend(tmp_path / "m", threads=1)  # loads


def test_materialize_rejects_folder_without_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(SourceError) as info:
        materialize_model({"kind": "local", "path": str(tmp_path / "empty")}, tmp_path / "m",
                          model_file="configs/models/x.yaml")
    assert info.value.file == "configs/models/x.yaml" and "safetensors" in info.value.problem
    assert not (tmp_path / "m").exists()


def test_materialize_from_hub_cache_offline_standin(tiny_llama_dir, tmp_path, monkeypatch):
    """Stand-in for the Hub: the real snapshot_download resolves a cache laid out as a download
    leaves it (HF_HUB_OFFLINE)."""
    from test_sources import make_hub_cache

    files = {p.name: p.read_bytes() for p in Path(tiny_llama_dir).iterdir() if p.is_file()}
    make_hub_cache(tmp_path / "hub", "acme/tiny-llama", "model", files)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    materialize_model({"kind": "hub", "repo_id": "acme/tiny-llama", "revision": "main"}, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == files["model.safetensors"]
