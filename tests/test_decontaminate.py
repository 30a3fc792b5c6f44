"""Decontamination at prepare time: train and val rows that repeat a test item are removed (exact
copies after normalisation, and with `ngram` rows sharing a word 13-gram), the test split is never
changed, the manifest lists what went, and a train size the cleaned split cannot hold is one error."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunebench.compare.leakage import item_text, leakage_report
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.errors import DataError
from tunebench.core.schema import load_schema
from tunebench.core.spec import Task
from tunebench.data.overlap import NGRAM, contaminated
from tunebench.data.prepare import prepare_splits, write_train_subset
from tunebench.data.sources import fetch_raw

ROOT = Path(__file__).parents[1]
VOCAB = [f"w{i}" for i in range(5000)]  # 13 random words of 5000 never repeat between items by chance


def _sentence(rng: random.Random, n: int = 20) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def _rows(prefix: str, texts: list[str]) -> list[dict]:
    return [{"id": f"{prefix}{i:02d}", "text": t, "label": "ab"[i % 2]} for i, t in enumerate(texts)]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _task(source: dict, mode: str | None) -> Task:
    split = {"val": 0.1, "test": 0.2, "seed": 7, "stratify": True} | ({"decontaminate": mode} if mode else {})
    return Task(name="t", type="classification", source=source, labels=("a", "b"), split=split,
                fields={"id": "id", "input": "text", "target": "label"}, metrics=("accuracy",),
                file=Path("configs/tasks/t.yaml"), generation={"max_new_tokens": 8, "stop": ["\n"]})


def _prepare(task: Task, tmp_path: Path) -> tuple[dict[str, list[dict]], dict, dict[str, str]]:
    fetch_raw(task.source, tmp_path / "raw", root=tmp_path)
    out = {s: str(tmp_path / "prep" / f"{s}.jsonl") for s in ("train", "val", "test")}
    manifest = prepare_splits(task, tmp_path / "raw", out, str(tmp_path / "prep" / "manifest.json"),
                              load_schema(ROOT, "row.schema.json"))
    return {s: read_jsonl(p) for s, p in out.items()}, manifest, out


@pytest.fixture
def official(tmp_path):
    """Official train, validation and test files; train and val hold planted copies of test items
    (exact after normalisation: case, punctuation and spacing differ) and planted 13-gram overlaps."""
    rng = random.Random(0)
    test = [_sentence(rng) for _ in range(20)]
    train = [_sentence(rng) for _ in range(40)]
    val = [_sentence(rng) for _ in range(10)]
    train[3] = test[0].upper() + "!"
    train[11] = "  " + test[5].replace(" ", ",  ", 2)
    train[17] = test[9]
    train[25] = _sentence(rng, 4) + " " + " ".join(test[2].split()[3:3 + NGRAM]) + " " + _sentence(rng, 4)
    train[30] = _sentence(rng, 4) + " " + " ".join(test[4].split()[:NGRAM - 1])  # 12 words: no 13-gram
    val[2] = test[7] + "."
    val[6] = " ".join(test[12].split()[5:5 + NGRAM + 2])
    data = tmp_path / "data"
    _write(data / "train.jsonl", _rows("tr", train))
    _write(data / "val.jsonl", _rows("va", val))
    _write(data / "test.jsonl", _rows("te", test))
    return {"kind": "local", "path": str(data), "splits": {"train": "train.jsonl", "validation": "val.jsonl",
                                                           "test": "test.jsonl"}}


@pytest.mark.parametrize("mode, train_gone, val_gone", [
    (None, ["tr03", "tr11", "tr17"], ["va02"]),  # the default is exact
    ("exact", ["tr03", "tr11", "tr17"], ["va02"]),
    ("ngram", ["tr03", "tr11", "tr17", "tr25"], ["va02", "va06"]),
    ("none", [], []),
])
def test_each_mode_removes_exactly_the_planted_rows_and_never_touches_test(official, tmp_path, mode, train_gone,
                                                                           val_gone):
    splits, manifest, out = _prepare(_task(official, mode), tmp_path / "prep")
    assert sorted({f"tr{i:02d}" for i in range(40)} - {r["id"] for r in splits["train"]}) == train_gone
    assert sorted({f"va{i:02d}" for i in range(10)} - {r["id"] for r in splits["val"]}) == val_gone
    assert [r["id"] for r in splits["test"]] == [f"te{i:02d}" for i in range(20)]
    assert manifest["decontaminate"] == (mode or "exact")
    for name, gone in (("train", train_gone), ("val", val_gone)):
        removed = manifest["splits"][name]["removed"]
        assert removed["ids"] == gone and removed["rows"] == len(gone) == removed["exact"] + removed["ngram"]
        assert manifest["splits"][name]["rows"] == len(splits[name])
    assert manifest["splits"]["train"]["removed"]["ngram"] == (1 if mode == "ngram" else 0)
    assert "removed" not in manifest["splits"]["test"]
    # what the leakage check then finds from the test side: nothing the mode covers
    docs = ([r["id"] for r in splits["test"]], [item_text(r) for r in splits["test"]])
    counts = leakage_report(train_set="t-full", train_path=out["train"], eval_set="t", eval_kind="task",
                            documents=docs)["counts"]
    assert counts == {"exact": 0 if mode != "none" else 3, "ngram": 1 if mode in (None, "exact", "none") else 0}


def test_a_carved_pool_is_decontaminated_after_carving(tmp_path):
    """Copies in one pool: whichever land in train or val beside a test copy go, the test keeps its own."""
    rng = random.Random(1)
    texts = [_sentence(rng) for _ in range(60)]
    texts += [texts[i] for i in range(30)]  # 30 items twice
    _write(tmp_path / "pool.jsonl", _rows("p", texts))
    splits, manifest, _ = _prepare(_task({"kind": "local", "path": str(tmp_path / "pool.jsonl")}, "exact"),
                                   tmp_path / "prep")
    tested = {r["input"] for r in splits["test"]}
    assert len(splits["test"]) == 18 and manifest["splits"]["test"]["of"] == 18
    assert not tested & {r["input"] for r in splits["train"] + splits["val"]}
    gone = manifest["splits"]["train"]["removed"]["ids"] + manifest["splits"]["val"]["removed"]["ids"]
    by_id = {f"p{i:02d}": t for i, t in enumerate(texts)}
    assert gone and all(by_id[i] in tested for i in gone)
    assert sum(len(v) for v in splits.values()) + len(gone) == 90


def test_an_answer_sharing_a_13_gram_with_a_test_item_counts_in_ngram_mode():
    rng = random.Random(2)
    test = [{"id": "t", "input": _sentence(rng, 30), "target": "x"}]
    train = [{"id": "a", "input": "short question", "target": " ".join(test[0]["input"].split()[:NGRAM])},
             {"id": "b", "input": "another short question", "target": "no"}]
    assert contaminated(train, test, "ngram") == {"a": "ngram"}
    assert contaminated(train, test, "exact") == {}
    with pytest.raises(ValueError):
        contaminated(train, test, "fuzzy")


def test_a_train_size_beyond_the_cleaned_split_is_one_error_naming_the_removed_rows(official, tmp_path):
    task = _task(official, "ngram")
    _, manifest, out = _prepare(task, tmp_path / "prep")
    assert manifest["splits"]["train"]["rows"] == 36
    write_train_subset(task, out["train"], 36, str(tmp_path / "train-36.jsonl"))
    with pytest.raises(DataError) as info:
        write_train_subset(task, out["train"], 40, str(tmp_path / "train-40.jsonl"))
    err = info.value
    assert err.field == "train_sizes" and err.file == "configs/tasks/t.yaml" and "up to 36" in err.fix
    assert "36 training rows (4 removed by split.decontaminate: ngram)" in str(err)
    assert read_json(tmp_path / "prep" / "prep" / "manifest.json")["splits"]["train"]["rows"] == 36
