"""Decontamination at prepare time: train and val rows that repeat a test item are removed (exact
copies after normalisation, and with `ngram` rows sharing a word 13-gram), the test split is never
changed, the manifest lists what went, and a train size the cleaned split cannot hold is one error."""

from __future__ import annotations

import dataclasses
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


def _against_task(source: dict, against: list[str]) -> Task:
    task = _task(source, "ngram")
    return dataclasses.replace(task, split={**task.split, "decontaminate_against": against})


def test_train_and_val_are_also_cleaned_against_another_tasks_test_split(official, tmp_path):
    """Rows planted from another task's test items go too, recorded under that task; a row that
    touches both test splits counts once, under the task's own; the test split stays as it was."""
    rng = random.Random(3)
    train = [r["text"] for r in read_jsonl(Path(official["path"]) / "train.jsonl")]
    val = [r["text"] for r in read_jsonl(Path(official["path"]) / "val.jsonl")]
    other = [_sentence(rng) for _ in range(5)] + [train[7], train[17]]  # tr17 also repeats own test item te09
    other[0] = " ".join(train[20].split()[2:2 + NGRAM]) + " and more"   # a 13-gram of tr20
    other[1] = val[4].lower()                                           # va04, exact
    _write(tmp_path / "other" / "test.jsonl", [{"id": f"o{i}", "input": t, "target": "x"} for i, t in enumerate(other)])
    fetch_raw(official, tmp_path / "raw", root=tmp_path)
    out = {s: str(tmp_path / "prep" / f"{s}.jsonl") for s in ("train", "val", "test")}
    manifest = prepare_splits(_against_task(official, ["other", "elsewhere"]), tmp_path / "raw", out,
                              str(tmp_path / "prep" / "manifest.json"), load_schema(ROOT, "row.schema.json"),
                              against={"other": tmp_path / "other" / "test.jsonl"})
    splits = {s: read_jsonl(p) for s, p in out.items()}
    own = ["tr03", "tr11", "tr17", "tr25"]
    assert manifest["splits"]["train"]["removed"]["ids"] == own
    assert manifest["decontaminate_against"]["other"]["train"] == {"rows": 2, "exact": 1, "ngram": 1,
                                                                   "ids": ["tr07", "tr20"]}
    assert manifest["decontaminate_against"]["other"]["val"] == {"rows": 1, "exact": 1, "ngram": 0, "ids": ["va04"]}
    assert sorted({f"tr{i:02d}" for i in range(40)} - {r["id"] for r in splits["train"]}) == sorted(own + ["tr07", "tr20"])
    assert sorted({f"va{i:02d}" for i in range(10)} - {r["id"] for r in splits["val"]}) == ["va02", "va04", "va06"]
    assert [r["id"] for r in splits["test"]] == [f"te{i:02d}" for i in range(20)]
    assert list(manifest["decontaminate_skipped"]) == ["elsewhere"]
    # nothing left that the other task's test split shares, by the plain rule
    assert contaminated(splits["train"] + splits["val"], read_jsonl(tmp_path / "other" / "test.jsonl"), "ngram") == {}
    # a train size the cleaned split cannot hold names both removals
    with pytest.raises(DataError, match=r"34 training rows \(4 removed by split.decontaminate: ngram, 2 by "
                                        r"split.decontaminate_against\)"):
        write_train_subset(_task(official, "ngram"), out["train"], 40, str(tmp_path / "train-40.jsonl"))


def test_a_task_named_but_not_prepared_in_this_run_is_skipped_and_said_so(official, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        splits, manifest, _ = _prepare(_against_task(official, ["ticket_product"]), tmp_path / "prep")
    assert manifest["decontaminate_against"] == {}
    assert manifest["decontaminate_skipped"] == {"ticket_product": "not among this run's tasks: its test split is "
                                                                   "not prepared"}
    assert len(splits["train"]) == 36  # as without decontaminate_against
    assert "decontaminate against ticket_product skipped" in caplog.text


def test_every_task_cleaned_away_is_one_error_naming_decontaminate_against(official, tmp_path):
    train = read_jsonl(Path(official["path"]) / "train.jsonl")
    _write(tmp_path / "other.jsonl", [{"id": r["id"], "input": r["text"], "target": "x"} for r in train])
    fetch_raw(official, tmp_path / "raw", root=tmp_path)
    out = {s: str(tmp_path / "prep" / f"{s}.jsonl") for s in ("train", "val", "test")}
    with pytest.raises(DataError) as info:
        prepare_splits(_against_task(official, ["other"]), tmp_path / "raw", out, str(tmp_path / "manifest.json"),
                       load_schema(ROOT, "row.schema.json"), against={"other": tmp_path / "other.jsonl"})
    assert info.value.field == "split.decontaminate_against" and "against other" in str(info.value)


def _named(name: str, against: list[str]) -> Task:
    return Task(name=name, type="classification", source={}, split={"decontaminate_against": against},
                file=Path(f"configs/tasks/{name}.yaml"))


@pytest.mark.parametrize("against, file, field, words, fix", [
    ({"a": ["b"], "b": ["c"], "c": ["a"]}, "configs/tasks/b.yaml", "split.decontaminate_against[0]",
     "cycle: a -> b -> c -> a", "remove 'c' from b's split.decontaminate_against"),
    ({"a": ["b"], "b": ["a"]}, "configs/tasks/b.yaml", "split.decontaminate_against[0]",
     "cycle: a -> b -> a", "clean only the fine-tuned task: remove 'a' from b's"),
    ({"a": ["c", "bb"], "b": []}, "configs/tasks/a.yaml", "split.decontaminate_against[1]",
     "unknown task 'bb'", "use one of: a, b, c"),
    ({"a": [], "b": ["b"]}, "configs/tasks/b.yaml", "split.decontaminate_against[0]", "against itself", "remove 'b'"),
])
def test_names_cycles_and_itself_are_refused_at_load_time(against, file, field, words, fix):
    from tunebench.config.task_checks import check_decontaminate_against
    from tunebench.core.errors import ConfigError

    tasks = {name: _named(name, names) for name, names in against.items()}
    with pytest.raises(ConfigError) as info:
        check_decontaminate_against(tasks, ["a", "b", "c"], finetuned=["a"])
    err = info.value
    assert (err.file, err.field) == (file, field) and words in str(err) and fix in err.fix, str(err)


def test_a_known_task_outside_the_run_is_allowed_so_a_one_task_run_loads():
    from tunebench.config.loader import load_project_from_file
    from tunebench.config.task_checks import check_decontaminate_against

    check_decontaminate_against({"a": _named("a", ["c"])}, ["a", "b", "c"], finetuned=["a"])
    project = load_project_from_file(ROOT, overrides={"tasks": ["ticket_routing"]})
    assert project.tasks["ticket_routing"].split["decontaminate_against"] == ["ticket_product"]
