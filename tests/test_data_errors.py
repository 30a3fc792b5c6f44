"""Bad user data files: every decode, parse or I/O failure of every reader is one DataError naming
the file, the line or row and the fix; a UTF-8 byte order mark is read; content in another format
than the name says is named as such; a folder without data files lists what it holds; a split the
prepare job would leave empty and rows far beyond the run's models are refused when the workflow loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunebench.core.errors import ConfigError, DataError, SourceError
from tunebench.core.schema import load_schema
from tunebench.core.spec import Model, Task
from tunebench.data import local_checks
from tunebench.data.local_checks import CHARS_PER_TOKEN, check_local_plans
from tunebench.data.prepare import carve, check_local_source, prepare_splits
from tunebench.data.readers import read_file_rows, read_located
from tunebench.data.sources import fetch_raw, local_data_files, local_split_files

ROOT = Path(__file__).parents[1]
ROW_SCHEMA = load_schema(ROOT, "row.schema.json")
LABELS = ("billing", "refund", "shipping")


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"r{i}", "text": f"ticket {i} about my order", "intent": LABELS[i % 3]} for i in range(start, start + n)]


def jsonl(rows_: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows_)


def make_task(path: str, **over) -> Task:
    base = dict(name="t", type="classification", source={"kind": "local", "path": path},
                fields={"id": "id", "input": "text", "target": "intent"}, labels=LABELS,
                split={"val": 0.1, "test": 0.2, "seed": 7, "stratify": True}, train_sizes=(8, "full"),
                metrics=("accuracy",), file=Path("configs/tasks/t.yaml"),
                generation={"max_new_tokens": 8, "stop": ["\n"]})
    base.update(over)
    return Task(**base)


def check(tmp_path: Path, name: str, content: str | bytes, **over) -> Task:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    task = make_task(name, **over)
    check_local_source(task, tmp_path, ROW_SCHEMA)
    return task


def refused(tmp_path: Path, name: str, content: str | bytes, error=DataError, **over):
    with pytest.raises(error) as info:
        check(tmp_path, name, content, **over)
    return info.value


# -- every reader: one DataError with the file, the line and the fix ---------------------------------

def test_latin1_jsonl_names_the_byte_offset_line_and_the_iconv_command(tmp_path):
    data = jsonl(rows(5)).encode() + '{"id": "x", "text": "caf\xe9 cr\xe8me", "intent": "refund"}\n'.encode("latin-1")
    err = refused(tmp_path, "in/t.jsonl", data)
    assert err.file == "in/t.jsonl" and err.field == "line 6"
    offset = data.index(bytes([0xE9]))
    assert f"byte offset {offset}" in err.problem and "café" in err.problem
    assert "iconv -f latin1 -t utf-8 in/t.jsonl > in/t-utf8.jsonl" in err.fix


def test_windows_1252_quotes_suggest_cp1252(tmp_path):
    data = jsonl(rows(3)).encode() + '{"id": "x", "text": "\u201cquoted\u201d", "intent": "refund"}\n'.encode("cp1252")
    err = refused(tmp_path, "t.jsonl", data)
    assert "iconv -f cp1252 -t utf-8" in err.fix and "Windows-1252" in err.problem


@pytest.mark.parametrize("name", ["t.csv", "t.json"])
def test_latin1_csv_and_json_are_named_too(tmp_path, name):
    text = ("id,text,intent\nr1,caf\xe9,refund\n" if name.endswith(".csv")
            else '[{"id": "r1", "text": "caf\xe9", "intent": "refund"}]')
    err = refused(tmp_path, name, text.encode("latin-1"))
    assert err.file == name and "is not UTF-8" in err.problem and "iconv -f latin1" in err.fix


def test_invalid_json_mid_file_names_its_line(tmp_path):
    text = jsonl(rows(4)) + '{"id": "bad", "text": oops}\n' + jsonl(rows(4, 10))
    err = refused(tmp_path, "t.jsonl", text)
    assert err.field == "line 5" and "not JSON" in err.problem


@pytest.mark.parametrize("line, kind", [('["a", "b"]', "array"), ('"just text"', "string"), ("42", "number")])
def test_a_line_that_is_no_object_is_named(tmp_path, line, kind):
    err = refused(tmp_path, "t.jsonl", jsonl(rows(3)) + line + "\n")
    assert err.field == "line 4" and f"is a JSON {kind}, not an object" in err.problem


def test_binary_garbage_and_utf16_are_named(tmp_path):
    err = refused(tmp_path, "t.jsonl", b"\x00\x01\x02\xff" * 40)
    assert "binary data" in err.problem and err.fix
    err = refused(tmp_path, "u.jsonl", jsonl(rows(3)).encode("utf-16"))
    assert "UTF-16" in err.problem and "iconv -f utf-16" in err.fix


def test_a_folder_where_a_file_is_expected(tmp_path):
    (tmp_path / "t.jsonl").mkdir()
    with pytest.raises(DataError, match="is a folder where a data file is expected"):
        read_file_rows(tmp_path / "t.jsonl", "jsonl")
    with pytest.raises(DataError, match="is a folder"):
        read_file_rows(tmp_path / "t.jsonl", "parquet")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_named(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(jsonl(rows(3)))
    path.chmod(0)
    with pytest.raises(DataError, match="permission denied"):
        read_file_rows(path, "jsonl")


def test_ragged_csv_rows_name_the_row_and_line(tmp_path):
    text = "id,text,intent\nr0,hello,refund\nr1,hello, again,refund\n"
    err = refused(tmp_path, "t.csv", text)
    assert err.field == "line 3" and "row 2 (line 3) has 4 fields but the header has 3" in err.problem
    assert "quote" in err.fix


def test_broken_gzip_and_parquet_are_named(tmp_path):
    err = refused(tmp_path, "t.jsonl.gz", b"\x1f\x8b\x08\x00broken")
    assert "broken gzip" in err.problem and err.file == "t.jsonl.gz"
    table = pa.Table.from_pylist(rows(6))
    pq.write_table(table, tmp_path / "whole.parquet")
    cut = (tmp_path / "whole.parquet").read_bytes()[:-40]
    err = refused(tmp_path, "cut.parquet", cut)
    assert "cannot be read as parquet" in err.problem
    err = refused(tmp_path, "text.parquet", jsonl(rows(3)))
    assert "is not a parquet file" in err.problem and "JSON" in err.problem


def test_json_documents_that_hold_no_rows_are_named(tmp_path):
    err = refused(tmp_path, "t.json", '{"version": 2, "items": []}')
    assert "keys version, items" in err.problem
    err = refused(tmp_path, "u.json", json.dumps([*rows(3), "text"]))
    assert err.field == "item 4" and "not an object" in err.problem


# -- a byte order mark is read, other formats under a name are named --------------------------------

@pytest.mark.parametrize("name, text", [("t.jsonl", jsonl(rows(30))), ("t.json", json.dumps(rows(30))),
                                        ("t.csv", "id,text,intent\n" + "".join(f"{r['id']},{r['text']},{r['intent']}\n"
                                                                               for r in rows(30)))])
def test_a_utf8_byte_order_mark_is_read_and_keeps_every_row(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    got = read_file_rows(path, name.split(".")[1])
    assert len(got) == 30 and got[0]["id"] == "r0"
    check_local_source(make_task(name), tmp_path, ROW_SCHEMA)


def test_csv_in_a_jsonl_file_says_so_and_hints_format_csv(tmp_path):
    err = refused(tmp_path, "t.jsonl", "id,text,intent\nr0,hello,refund\n")
    assert "looks like CSV" in err.problem and err.field == "source.format" and "format: csv" in err.fix


def test_json_lines_in_a_csv_file_and_an_array_in_a_jsonl_file(tmp_path):
    err = refused(tmp_path, "t.csv", jsonl(rows(3)))
    assert "looks like JSON" in err.problem and "format: jsonl" in err.fix
    err = refused(tmp_path, "t.jsonl", json.dumps(rows(3), indent=2))
    assert "one JSON document" in err.problem and "format: json" in err.fix


def test_a_folder_without_data_files_lists_the_extensions_and_its_content(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.txt").write_text("x")
    (tmp_path / "in" / "notes.xlsx").write_text("x")
    with pytest.raises(SourceError) as info:
        local_data_files({"kind": "local", "path": "in"}, tmp_path, "configs/tasks/t.yaml")
    err = info.value
    assert err.file == "configs/tasks/t.yaml" and err.field == "source.path"
    assert ".jsonl" in err.problem and ".parquet" in err.problem and "notes.xlsx, rows.txt" in err.problem
    assert "no rows" not in err.problem


def test_a_folder_mixing_formats_is_refused_and_gzipped_files_count(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(jsonl(rows(3)))
    (tmp_path / "in" / "b.csv").write_text("id,text,intent\n")
    with pytest.raises(SourceError, match="mixes csv and jsonl"):
        local_split_files({"kind": "local", "path": "in"}, tmp_path)
    # split globs that pick one format are fine whatever else the folder holds
    picked = local_split_files({"kind": "local", "path": "in", "splits": {"train": "*.jsonl"}}, tmp_path)
    assert [f.name for _, f in picked] == ["a.jsonl"]
    (tmp_path / "in" / "b.csv").unlink()
    import gzip
    (tmp_path / "in" / "c.jsonl.gz").write_bytes(gzip.compress(jsonl(rows(3, 3)).encode()))
    assert [p.name for p in local_data_files({"kind": "local", "path": "in"}, tmp_path)] == ["a.jsonl", "c.jsonl.gz"]


def test_rows_in_a_folder_name_their_own_file_and_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(jsonl(rows(30)))
    (tmp_path / "in" / "b.jsonl").write_text(jsonl(rows(3, 30)) + '{"id": "z", "text": "no label"}\n')
    with pytest.raises(DataError) as info:
        check_local_source(make_task("in"), tmp_path, ROW_SCHEMA)
    assert info.value.file == "in/b.jsonl" and "row 34 (line 4) has no column 'intent'" in info.value.problem


def test_located_places_follow_lines_and_csv_records(tmp_path):
    (tmp_path / "t.jsonl").write_text(jsonl(rows(1)) + "\n\n" + jsonl(rows(1, 1)))
    assert read_located(tmp_path / "t.jsonl", "jsonl")[1] == ["line 1", "line 4"]
    (tmp_path / "t.csv").write_text('id,text,intent\nr0,"two\nlines",refund\nr1,x,billing\n')
    got, places = read_located(tmp_path / "t.csv", "csv")
    assert places == ["row 1 (line 2)", "row 2 (line 4)"] and got[0]["text"] == "two\nlines"


# -- a split the prepare job would leave empty is refused at load ------------------------------------

def test_an_empty_test_split_is_refused_at_load_with_the_fraction_that_gives_one(tmp_path):
    err = refused(tmp_path, "t.jsonl", jsonl(rows(4)), ConfigError, split={"val": 0.3, "test": 0.1, "seed": 7,
                                                                             "stratify": True})
    assert err.file == "configs/tasks/t.yaml" and err.field == "split"
    assert "split.test = 0.1 of 4 rows gives the test split 0 items" in err.problem
    need = float(err.fix.split("at least ")[1].split(" ")[0])
    # the fraction offered is exactly what the prepare job needs: the same allocation says one item
    task = check(tmp_path, "t.jsonl", jsonl(rows(4)), split={"val": 0.3, "test": need, "seed": 7, "stratify": True})
    assert len(carve(task, {None: [{"id": r["id"], "target": r["intent"]} for r in rows(4)]})["test"]) == 1
    with pytest.raises(ConfigError):
        check(tmp_path, "t.jsonl", jsonl(rows(4)), split={"val": 0.3, "test": need - 0.01, "seed": 7, "stratify": True})


def test_an_empty_val_split_and_no_rows_to_train_on(tmp_path):
    err = refused(tmp_path, "t.jsonl", jsonl(rows(6)), ConfigError, split={"val": 0.05, "test": 0.5, "seed": 7,
                                                                             "stratify": True})
    assert "split.val = 0.05 of 6 rows gives the val split 0 items" in err.problem and "at least 0.09" in err.fix
    err = refused(tmp_path, "t.jsonl", jsonl(rows(2)), ConfigError)
    assert "0 items" in err.problem and "add rows" in err.fix


def test_an_empty_official_split_names_its_glob(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "train.jsonl").write_text(jsonl(rows(30)))
    (tmp_path / "in" / "test.jsonl").write_text("")
    source = {"kind": "local", "path": "in", "splits": {"train": "train.jsonl", "test": "test.jsonl"}}
    with pytest.raises(ConfigError) as info:
        check_local_source(make_task("in", source=source), tmp_path, ROW_SCHEMA)
    assert info.value.field == "source.splits.test" and "has no rows" in info.value.problem


def test_the_job_refuses_an_empty_split_with_the_same_message(tmp_path):
    (tmp_path / "t.jsonl").write_text(jsonl(rows(4)))
    task = make_task("t.jsonl", split={"val": 0.3, "test": 0.1, "seed": 7, "stratify": True})
    fetch_raw(task.source, tmp_path / "raw", root=tmp_path)
    out = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "val", "test")}
    with pytest.raises(ConfigError, match="gives the test split 0 items"):
        prepare_splits(task, tmp_path / "raw", out, str(tmp_path / "m.json"), ROW_SCHEMA)


# -- sizes no model of the run can take --------------------------------------------------------------

def model(tokens: int = 2048, backend: str = "transformers") -> Model:
    return Model(name=f"m{tokens}", backend=backend, max_input_tokens=tokens)


def config(train_sizes=None) -> dict:
    return {"suites": {"s": {"train_sizes": train_sizes}}, "finetune": {"tasks": ["t"]}}


def plan(task: Task, models: list[Model], train_sizes=None) -> None:
    check_local_plans({"t": task}, {m.name: m for m in models}, config(train_sizes), "s", "configs/config.yaml")


def test_an_input_far_beyond_every_model_names_file_line_and_field(tmp_path):
    long = {"id": "big", "text": "word " * (2048 * CHARS_PER_TOKEN // 5 + 10), "intent": "refund"}
    task = check(tmp_path, "in/t.jsonl", jsonl(rows(20) + [long] + rows(10, 20)))
    with pytest.raises(DataError) as info:
        plan(task, [model(2048), model(1024)])
    err = info.value
    assert err.file == "in/t.jsonl" and err.field == "fields.input" and "line 21 (id 'big')" in err.problem
    assert "m2048" in err.problem and "shorten" in err.fix
    plan(task, [model(2048), model(8192)])  # a model of the run can read it


def test_a_long_document_in_context_is_bounded_unless_read_in_windows(tmp_path):
    doc = "clause " * (2048 * CHARS_PER_TOKEN // 7 + 10)
    data = [{"id": f"q{i}", "question": "Who pays?", "context": doc if i == 3 else "short", "answer": "the buyer"}
            for i in range(30)]
    over = dict(type="extraction", labels=None, fields={"id": "id", "input": "question", "target": "answer",
                                                         "context": "context"})
    task = check(tmp_path, "c.jsonl", jsonl(data), **over)
    with pytest.raises(DataError) as info:
        plan(task, [model(2048)])
    assert info.value.field == "fields.context" and "context_window" in info.value.fix
    windowed = check(tmp_path, "c.jsonl", jsonl(data), context_window={"tokens": 512, "stride": 64}, **over)
    plan(windowed, [model(2048)])


def test_a_label_no_answer_can_hold_is_refused(tmp_path):
    data = rows(30) + [{"id": "x", "text": "t", "intent": "refund " * 2000}]
    task = check(tmp_path, "t.jsonl", jsonl(data), labels=None, auto_labels=True)
    with pytest.raises(DataError, match="its label is 14,000 characters") as info:
        plan(task, [model(8192)])
    assert info.value.field == "fields.target" and "line 31" in info.value.problem


def test_auto_labels_over_a_free_text_column_are_refused(tmp_path):
    data = [{"id": f"r{i}", "text": "x", "intent": f"free text answer number {i}"} for i in range(1200)]
    err = refused(tmp_path, "t.jsonl", jsonl(data), labels=None, auto_labels=True)
    assert err.field == "fields.target" and "1,200 distinct targets in 1,200 rows" in err.problem
    many = [{"id": f"r{i}", "text": "x", "intent": f"class {i % 300}"} for i in range(1200)]
    check(tmp_path, "t.jsonl", jsonl(many), labels=None, auto_labels=True)  # 300 classes are labels


def test_a_train_size_beyond_the_train_split_is_refused_where_it_is_set(tmp_path):
    task = check(tmp_path, "t.jsonl", jsonl(rows(30)))  # 30 rows: 6 test, 3 val, 21 train
    plan(task, [model()], train_sizes=[16])
    with pytest.raises(ConfigError) as info:
        plan(task, [model()], train_sizes=[16, 40])
    assert info.value.file == "configs/config.yaml" and info.value.field == "suites.s.train_sizes"
    assert "train size 40" in info.value.problem and "up to 21" in info.value.fix
    big = check(tmp_path, "t.jsonl", jsonl(rows(30)), train_sizes=(64, "full"))
    with pytest.raises(ConfigError) as info:
        plan(big, [model()])
    assert info.value.file == "configs/tasks/t.yaml" and info.value.field == "train_sizes"
    plan(big, [model(backend="openai")])  # an API model trains nothing


def test_the_summary_belongs_to_its_task_object_only(tmp_path):
    task = check(tmp_path, "t.jsonl", jsonl(rows(30)))
    assert local_checks._recall(task) is not None
    assert local_checks._recall(make_task("t.jsonl")) is None  # an equal task never checked: no stale summary


def test_a_local_benchmark_file_goes_through_the_same_reader(tmp_path):
    from tunebench.benchmarks.tasks import read_local_rows

    path = tmp_path / "quiz.jsonl"
    path.write_bytes(b'{"q": "ok", "a": "1"}\n' + '{"q": "caf\xe9", "a": "2"}\n'.encode("latin-1"))
    spec = {"path": "quiz.jsonl", "output_type": "generate_until", "fields": {"input": "q", "target": "a"}}
    with pytest.raises(DataError) as info:
        read_local_rows(path, spec, "configs/benchmarks/quiz.yaml", "path")
    assert info.value.file == "quiz.jsonl" and info.value.field == "line 2" and "iconv" in info.value.fix
    path.write_bytes(b"\xef\xbb\xbf" + b'{"q": "ok", "a": "1"}\n')
    assert read_local_rows(path, spec, "configs/benchmarks/quiz.yaml", "path") == [{"q": "ok", "a": "1"}]


# -- values of the wrong kind in a row ---------------------------------------------------------------

MC = dict(type="multiple_choice", labels=None, fields={"id": "id", "input": "q", "target": "a", "options": "opts"})
MC_ROWS = [{"id": f"r{i}", "q": "question?", "opts": ["x", "y", "z"], "a": i % 3} for i in range(30)]


@pytest.mark.parametrize("last, over, field, words", [
    ({"id": "b", "q": "q", "opts": [str(k) for k in range(40)], "a": 30}, MC, "fields.options", "40 options"),
    ({"id": "b", "q": "q", "opts": "x y z", "a": 1}, MC, "fields.options", "the text 'x y z' in column 'opts', not a list"),
    ({"id": "b", "q": "q", "opts": 5, "a": 1}, MC, "fields.options", "not a list"),
    ({"id": "b", "text": {"a": 1}, "intent": "refund"}, {}, "fields.input", "a structure in column 'text'"),
    ({"id": "b", "text": ["a"], "intent": "refund"}, {}, "fields.input", "a list in column 'text'"),
    ({"id": None, "text": "x", "intent": "refund"}, {}, "fields.id", "no id (null)"),
    ({"id": "b", "text": None, "intent": "refund"}, {}, "fields.input", "no value in column 'text'"),
    ({"id": "b", "text": "x", "intent": {"a": 1}}, dict(type="extraction", labels=None), "fields.target", "a structure"),
])
def test_a_value_of_the_wrong_kind_is_named_not_turned_into_text(tmp_path, last, over, field, words):
    base = MC_ROWS if over is MC else rows(30)
    err = refused(tmp_path, "t.jsonl", jsonl(base + [last]), **over)
    assert err.field == field and words in err.problem and "row 31" in err.problem


def test_nan_deep_nesting_and_huge_numbers_are_named(tmp_path):
    err = refused(tmp_path, "t.jsonl", jsonl(rows(30)) + '{"id": "b", "text": NaN, "intent": "refund"}\n')
    assert "no value in column 'text'" in err.problem
    err = refused(tmp_path, "t.jsonl", jsonl(rows(30)) + '{"id": "b", "text": ' + "[" * 100000 + "]" * 100000 + "}\n")
    assert err.field == "line 31" and "cannot be read" in err.problem
    err = refused(tmp_path, "t.jsonl", jsonl(rows(30)) + '{"id": "b", "text": ' + "9" * 5000 + "}\n")
    assert err.field == "line 31"


def test_csv_blank_lines_are_no_rows_and_one_test_string_is_one_test(tmp_path):
    text = "id,text,intent\n" + "".join(f"r{i},t{i},{LABELS[i % 3]}\n\n" for i in range(30))
    (tmp_path / "t.csv").write_text(text)
    got, places = read_located(tmp_path / "t.csv", "csv")
    assert len(got) == 30 and places[1] == "row 2 (line 4)"
    code = dict(type="code", labels=None, fields={"id": "id", "input": "q", "target": "c", "tests": "tests"})
    data = [{"id": f"r{i}", "q": "write f", "c": "def f(): return 1", "tests": "assert f() == 1"} for i in range(30)]
    check(tmp_path, "c.jsonl", jsonl(data), **code)


def test_official_splits_without_train_name_the_missing_glob(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "test.jsonl").write_text(jsonl(rows(30)))
    source = {"kind": "local", "path": "in", "splits": {"test": "test.jsonl"}}
    with pytest.raises(ConfigError) as info:
        check_local_source(make_task("in", source=source), tmp_path, ROW_SCHEMA)
    assert info.value.field == "source.splits.train" and "is missing" in info.value.problem


def test_a_file_named_unlike_its_format_needs_format_and_then_reads(tmp_path):
    (tmp_path / "t.txt").write_text(jsonl(rows(30)))
    with pytest.raises(SourceError) as info:
        check_local_source(make_task("t.txt"), tmp_path, ROW_SCHEMA)
    assert (info.value.file, info.value.field) == ("configs/tasks/t.yaml", "source.format")
    check_local_source(make_task("t.txt", source={"kind": "local", "path": "t.txt", "format": "jsonl"}), tmp_path,
                       ROW_SCHEMA)


def test_multiple_choice_options_count_toward_the_prompt(tmp_path):
    huge = ["option " * (1024 * CHARS_PER_TOKEN // 6), "b", "c"]
    data = MC_ROWS + [{"id": "big", "q": "q?", "opts": huge, "a": 1}]
    task = check(tmp_path, "mc.jsonl", jsonl(data), **MC)
    with pytest.raises(DataError, match="its input and options is") as info:
        plan(task, [model(1024)])
    assert "line 31 (id 'big')" in info.value.problem
