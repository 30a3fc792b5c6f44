"""Long documents in windows: how a document is cut, how an item's windows become one row, and a
cell on the tiny random Llama where a 3-window item costs 3 inferences and gives one row."""

from __future__ import annotations

import pytest

from tunebench.backends.transformers_backend import TransformersBackend
from tunebench.core.atomic import read_jsonl, write_jsonl
from tunebench.core.spec import Model, Task
from tunebench.predict.generate import generate_predictions
from tunebench.predict.score import score_predictions
from tunebench.predict.windows import merge_windows, split_windows, window_items, window_shot

WORDS = [f"w{i}" for i in range(50)]


def test_a_document_is_cut_into_overlapping_windows_of_words_up_to_its_end():
    text = " ".join(WORDS[:20]) + "\n\n" + " ".join(WORDS[20:])
    windows = split_windows(text, 20, 5)  # steps of 15 words: 0-19, 15-34, 30-49
    assert [w.split() for w in windows] == [WORDS[0:20], WORDS[15:35], WORDS[30:50]]
    assert "w19\n\nw20" in windows[1]  # the document's own text between the words, line breaks kept
    assert split_windows(text, 25, 0) == [" ".join(WORDS[:20]) + "\n\n" + " ".join(WORDS[20:25]),
                                          " ".join(WORDS[25:])]
    assert split_windows("  short text\n", 20, 5) == ["short text"] and split_windows("", 20, 5) == [""]
    items, owner = window_items([{"id": "a", "context": text}, {"id": "b", "context": "tiny"}],
                                {"tokens": 20, "stride": 5})
    assert owner == [0, 0, 0, 1] and [i["id"] for i in items] == ["a", "a", "a", "b"]
    assert items[1]["context"] == windows[1]


def test_a_shot_keeps_the_window_that_holds_its_answer():
    row = {"id": "s", "input": "q", "target": "w40 w41", "context": " ".join(WORDS)}
    assert window_shot(row, {"tokens": 20, "stride": 5})["context"].split() == WORDS[30:50]
    assert window_shot({**row, "target": ""}, {"tokens": 20, "stride": 5})["context"].split() == WORDS[0:20]


def row(parsed, confidence, tokens_out=2, output=None):
    return {"id": "a", "prompt_hash": f"h{parsed}", "output": output or str(parsed), "parsed": parsed,
            "latency_s": 0.5, "tokens_in": 100, "tokens_out": tokens_out, "batch_size": 2,
            "logprob": -0.1, "confidence": confidence}


def test_an_item_takes_its_most_confident_answer_else_abstains():
    merged = merge_windows([row("none", 0.3), row("the buyer", 0.6), row("the seller", 0.8, 5), row(None, 0.2),
                            row("none", 0.1), row("none", 0.4)], [0, 0, 0, 0, 1, 1], "none")
    first, second = merged
    assert (first["parsed"], first["window"], first["windows"], first["confidence"]) == ("the seller", 2, 4, 0.8)
    assert (first["tokens_in"], first["tokens_out"], first["answer_tokens_out"]) == (400, 11, 5)
    assert first["latency_s"] == 2.0
    # every window abstained: the item abstains; its confidence of an answer is the largest window's
    assert (second["parsed"], second["window"], second["windows"], second["confidence"]) == ("none", 1, 2, 0.4)
    # without confidences (a backend without log-probs): the first window that answered
    plain = merge_windows([row("none", None), row("the buyer", None), row("the seller", None)], [0, 0, 0], "none")
    assert (plain[0]["parsed"], plain[0]["window"], plain[0]["confidence"]) == ("the buyer", 1, None)
    # a usage the endpoint did not report stays unknown
    assert merge_windows([row("x", 0.5, None), row("y", 0.4)], [0, 0], "none")[0]["tokens_out"] is None


@pytest.fixture
def windowed_cell(tmp_path, tiny_llama_dir, monkeypatch):
    task = Task(name="contracts", type="extraction", parser="first_line", abstain="none",
                metrics=("token_f1", "detection_f1", "aupr"), fields={"context": "context"},
                context_window={"tokens": 20, "stride": 5}, generation={"max_new_tokens": 4, "stop": ["\n"]})
    prompt = {"system": "Quote the answer from the document, or write none.",
              "user": "Document: {{ context }}\n\nQuestion: {{ input }}", "assistant": "{{ target }}"}
    write_jsonl(tmp_path / "test.jsonl", [
        {"id": "long", "input": "Which word?", "target": "w40", "answers": ["w40"], "context": " ".join(WORDS)},
        {"id": "short", "input": "Which word?", "target": "", "answers": [], "context": "nothing here"}])
    write_jsonl(tmp_path / "train.jsonl", [
        {"id": "t1", "input": "Which word?", "target": "w33", "context": " ".join(WORDS)}])
    seen: list[list[str]] = []
    real = TransformersBackend.complete

    def counting_complete(self, conversations, **kwargs):  # the real backend, counting what it is given
        seen.append([c[-1]["content"] for c in conversations])
        return real(self, conversations, **kwargs)

    monkeypatch.setattr(TransformersBackend, "complete", counting_complete)
    model = Model(name="tiny", source={"kind": "local", "path": str(tiny_llama_dir)}, batch_size=4)
    paths = {k: str(tmp_path / f"{k}.json") for k in ("meta", "score")}
    meta = generate_predictions(task=task, model=model, model_dir=tiny_llama_dir, prompt_spec=prompt,
                                train_path=tmp_path / "train.jsonl", test_path=tmp_path / "test.jsonl", shots=1,
                                fewshot_seed=0, max_items=None, threads=1, out_rows=str(tmp_path / "p.jsonl"),
                                out_meta=paths["meta"], system="tiny", prompting="1shot", progress=False)
    return task, meta, seen, tmp_path, paths


def test_a_three_window_item_is_three_inferences_and_one_row(windowed_cell):
    task, meta, seen, tmp_path, paths = windowed_cell
    assert len(seen) == 1 and len(seen[0]) == 4  # 3 windows of the long document + 1 of the short one
    assert [s.split("\n\n")[0].split()[1:] for s in seen[0][:3]] == [WORDS[0:20], WORDS[15:35], WORDS[30:50]]
    rows = read_jsonl(tmp_path / "p.jsonl")
    assert [(r["id"], r["windows"]) for r in rows] == [("long", 3), ("short", 1)]
    for r in rows:
        assert 0 <= r["window"] < r["windows"] and 0 <= r["confidence"] <= 1 and r["logprob"] <= 0
    assert meta["windows"] == {"unit": "words", "tokens": 20, "stride": 5, "inferences": 4,
                               "per_item_mean": 2.0, "per_item_max": 3}
    assert meta["n"] == 2
    score = score_predictions(task=task, predictions_path=str(tmp_path / "p.jsonl"), meta_path=paths["meta"],
                              test_path=str(tmp_path / "test.jsonl"), max_items=None,
                              bootstrap={"resamples": 50, "confidence": 0.95, "seed": 0}, out_path=paths["score"])
    assert score["n"] == 2 and score["metrics"]["aupr"]["value"] is not None  # transformers gives log-probs
