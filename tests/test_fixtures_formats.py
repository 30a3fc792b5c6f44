"""The offline fixtures in tests/fixtures/baseweight/ have each dataset's upstream Hugging Face Hub format.

The expected layouts, columns and arrow types below are written out from the upstream definitions (the
Hub loading scripts and dataset cards of PolyAI/banking77, theatticusproject/cuad-qa, coastalcph/lex_glue
(ledgar), takala/financial_phrasebank, openlifescienceai/medmcqa and google-research-datasets/mbpp), not
read from the fixture generator, so a fixture that drifts from upstream fails here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "baseweight"

S, I32, I64 = pa.string(), pa.int32(), pa.int64()
SCHEMAS: dict[str, dict[str, pa.DataType]] = {  # upstream column order and arrow types
    "banking77": {"text": S, "label": I64},
    "cuad": {"id": S, "title": S, "context": S, "question": S,
             "answers": pa.struct([("text", pa.list_(S)), ("answer_start", pa.list_(I32))])},
    "ledgar": {"text": S, "label": I64},
    "fpb": {"sentence": S, "label": I64},
    "medmcqa": {"id": S, "question": S, "opa": S, "opb": S, "opc": S, "opd": S, "cop": I64, "choice_type": S,
                "exp": S, "subject_name": S, "topic_name": S},
    "mbpp_full": {"task_id": I32, "text": S, "code": S, "test_list": pa.list_(S), "test_setup_code": S,
                  "challenge_test_list": pa.list_(S)},
    "mbpp_sanitized": {"source_file": S, "task_id": I32, "prompt": S, "code": S, "test_imports": pa.list_(S),
                       "test_list": pa.list_(S)},
}
# Hub path (script repos: their refs/convert/parquet revision; parquet repos: main) -> (schema, rows)
FILES: dict[str, tuple[str, int]] = {
    "banking77/default/train/0000.parquet": ("banking77", 24),
    "banking77/default/test/0000.parquet": ("banking77", 12),
    "cuad/default/train/0000.parquet": ("cuad", 24),
    "cuad/default/test/0000.parquet": ("cuad", 12),
    "ledgar/ledgar/train-00000-of-00001.parquet": ("ledgar", 24),
    "ledgar/ledgar/validation-00000-of-00001.parquet": ("ledgar", 8),
    "ledgar/ledgar/test-00000-of-00001.parquet": ("ledgar", 12),
    "fpb/sentences_50agree/train/0000.parquet": ("fpb", 72),
    "fpb/sentences_66agree/train/0000.parquet": ("fpb", 64),
    "fpb/sentences_75agree/train/0000.parquet": ("fpb", 56),
    "fpb/sentences_allagree/train/0000.parquet": ("fpb", 48),
    "medmcqa/data/train-00000-of-00001.parquet": ("medmcqa", 24),
    "medmcqa/data/validation-00000-of-00001.parquet": ("medmcqa", 8),
    "medmcqa/data/test-00000-of-00001.parquet": ("medmcqa", 12),
    **{f"mbpp/{c}/{split}-00000-of-00001.parquet": (f"mbpp_{c}", n) for c in ("full", "sanitized")
       for split, n in (("train", 24), ("test", 12), ("validation", 8), ("prompt", 3))},
}
CLASS_LABELS = {  # schema -> column, number of names, spot checks (index -> name) of the upstream order
    "banking77": ("label", 77, {0: "activate_my_card", 11: "card_arrival", 51: "Refund_not_showing_up",
                                53: "reverted_card_payment?", 76: "wrong_exchange_rate_for_cash_withdrawal"}),
    "ledgar": ("label", 100, {0: "Adjustments", 47: "Governing Laws", 65: "Notices", 99: "Withholdings"}),
    "fpb": ("label", 3, {0: "negative", 1: "neutral", 2: "positive"}),
    "medmcqa": ("cop", 4, {0: "a", 1: "b", 2: "c", 3: "d"}),
}


def table(rel: str) -> pa.Table:
    return pq.read_table(FIXTURES / rel)


def hf_features(rel: str) -> dict:
    return json.loads(pq.read_schema(FIXTURES / rel).metadata[b"huggingface"])["info"]["features"]


def test_fixture_files_are_the_upstream_layout():
    found = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.parquet")}
    assert found == set(FILES)
    assert all((FIXTURES / rel).stat().st_size < 64_000 for rel in FILES)


@pytest.mark.parametrize("rel", sorted(FILES))
def test_columns_types_and_row_counts_match_upstream(rel):
    kind, rows = FILES[rel]
    schema = pq.read_schema(FIXTURES / rel)
    assert schema.names == list(SCHEMAS[kind])
    for name, arrow in SCHEMAS[kind].items():
        assert schema.field(name).type.equals(arrow), (rel, name, schema.field(name).type)
    assert table(rel).num_rows == rows
    # what `datasets` reads from the schema metadata has the same columns
    assert list(datasets.Features.from_arrow_schema(schema)) == list(SCHEMAS[kind])


@pytest.mark.parametrize("rel", sorted(r for r, (kind, _) in FILES.items() if kind in CLASS_LABELS))
def test_class_label_names_are_the_full_upstream_lists(rel):
    kind = FILES[rel][0]
    column, count, spots = CLASS_LABELS[kind]
    meta = hf_features(rel)[column]
    assert meta["_type"] == "ClassLabel" and len(meta["names"]) == len(set(meta["names"])) == count
    assert {i: meta["names"][i] for i in spots} == spots
    feature = datasets.Features.from_arrow_schema(pq.read_schema(FIXTURES / rel))[column]
    assert isinstance(feature, datasets.ClassLabel) and feature.names == meta["names"]
    values = table(rel).column(column).to_pylist()
    low = -1 if rel.startswith("medmcqa/data/test") else 0
    assert all(low <= v < count for v in values)
    if kind in ("banking77", "ledgar"):
        assert 3 <= len(set(values)) < count  # a handful of labels, the full names list


def test_banking77_lexicographic_order_is_case_insensitive_like_upstream():
    names = hf_features("banking77/default/train/0000.parquet")["label"]["names"]
    assert names == sorted(names, key=str.lower) and names != sorted(names)


def test_medmcqa_cop_is_0_to_3_with_answers_withheld_in_test():
    for split in ("train", "validation"):
        rows = table(f"medmcqa/data/{split}-00000-of-00001.parquet").to_pylist()
        assert {r["cop"] for r in rows} <= {0, 1, 2, 3} and len({r["cop"] for r in rows}) > 1
        assert {r["choice_type"] for r in rows} <= {"single", "multi"}
    test = table("medmcqa/data/test-00000-of-00001.parquet").to_pylist()
    assert {r["cop"] for r in test} == {-1} and {r["exp"] for r in test} == {""}
    assert len({r["id"] for r in test}) == len(test)


def test_cuad_answers_are_spans_of_the_context():
    for split in ("train", "test"):
        rows = table(f"cuad/default/{split}/0000.parquet").to_pylist()
        for r in rows:
            texts, starts = r["answers"]["text"], r["answers"]["answer_start"]
            assert len(texts) == len(starts)
            assert all(r["context"][s:s + len(t)] == t for t, s in zip(texts, starts))
            assert r["question"].startswith("Highlight the parts (if any) of this contract related to ")
            own = f'{r["title"]}__{r["question"].split(chr(34))[1]}'  # <title>__<category>[_<k> in train]
            assert r["id"] == own if split == "test" else r["id"].rsplit("_", 1)[0] == own
        if split == "train":  # train_separate_questions: at most one span per row
            assert all(len(r["answers"]["text"]) <= 1 for r in rows)
    test = table("cuad/default/test/0000.parquet").to_pylist()
    answered = [r for r in test if r["answers"]["text"]]
    assert len(answered) * 2 == len(test)  # half answered, half not
    assert any(len(r["answers"]["text"]) > 1 for r in answered)  # a question with several spans
    long_contexts = {r["title"] for r in test if len(r["context"].split()) > 3000}
    assert len(long_contexts) >= 2  # needs a sliding window


def test_fpb_configs_are_nested_train_only():
    sets = {c: {(r["sentence"], r["label"]) for r in table(f"fpb/sentences_{c}agree/train/0000.parquet").to_pylist()}
            for c in ("all", "75", "66", "50")}
    assert sets["all"] < sets["75"] < sets["66"] < sets["50"]
    assert not list(FIXTURES.glob("fpb/*/test")) and not list(FIXTURES.glob("fpb/*/validation"))


MBPP_CHECK = """
import json, sys
failed = []
for row in json.load(sys.stdin):
    namespace = {}
    try:
        exec("\\n".join(row["prelude"] + [row["code"]]), namespace)
        for test in row["tests"]:
            exec(test, namespace)
    except BaseException as exc:
        failed.append([row["task_id"], repr(exc)[:200]])
print(json.dumps(failed))
"""


def mbpp_failures(rows: list[dict]) -> list:
    """The task ids whose reference code fails its own tests, run in a separate Python."""
    done = subprocess.run([sys.executable, "-c", MBPP_CHECK], input=json.dumps(rows), capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def mbpp_checks(rel: str) -> list[dict]:
    rows = table(rel).to_pylist()
    return [{"task_id": r["task_id"], "code": r["code"], "tests": r["test_list"],
             "prelude": r.get("test_imports") or [r.get("test_setup_code") or ""]} for r in rows]


@pytest.mark.parametrize("rel", sorted(r for r in FILES if r.startswith("mbpp/")))
def test_mbpp_reference_code_passes_its_tests(rel):
    checks = mbpp_checks(rel)
    assert all(len(c["tests"]) >= 3 for c in checks)
    assert mbpp_failures(checks) == []


def test_mbpp_check_catches_a_wrong_solution():
    check = mbpp_checks("mbpp/full/test-00000-of-00001.parquet")[0]
    wrong = {**check, "code": check["code"].replace("return", "return None and", 1)}
    assert [f[0] for f in mbpp_failures([check, wrong])] == [check["task_id"]]


def test_mbpp_task_ids_sit_in_their_upstream_split_ranges():
    ranges = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
    for config in ("full", "sanitized"):
        for split, (lo, hi) in ranges.items():
            ids = table(f"mbpp/{config}/{split}-00000-of-00001.parquet").column("task_id").to_pylist()
            assert all(lo <= i <= hi for i in ids)


def test_the_fixtures_are_what_the_generator_writes_every_time(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.build(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == set(FILES)
    for rel in FILES:
        assert pq.read_table(tmp_path / rel).equals(table(rel), check_metadata=True), rel
