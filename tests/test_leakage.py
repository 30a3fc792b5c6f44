"""The leakage check: planted training items are found with the right kind and nothing else is, the
clean-only rescoring leaves them out, exact test items in an adapter's training data FAIL its gate,
and the `test` suite's run writes every report and shows them in its summary."""

from __future__ import annotations

import json
import random
import re
import unicodedata

import pytest

from tunebench.cli import main as cli
from tunebench.compare.baseline import compare_to_baseline
from tunebench.compare.leakage import (
    EXACT,
    NGRAM,
    NGRAM_KIND,
    NOT_AVAILABLE,
    TrainingIndex,
    benchmark_documents,
    item_text,
    leakage_gate,
    leakage_report,
    touched_ids,
)
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, write_json, write_jsonl
from tunebench.predict.score import score_predictions
from tunebench.report.markdown import gate_markdown, leakage_markdown
from tunebench.report.summary import leakage_rows

BOOT = {"resamples": 200, "confidence": 0.95, "seed": 0}
# a vocabulary large enough that 13 random words never repeat between items by chance
VOCAB = [f"w{i}" for i in range(5000)]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def planted(tmp_path):
    """A test split of 40 items and a training file of 30 others plus 5 planted test items: 3 exact
    (case, punctuation, spacing and full-width letters changed) and 2 paraphrased (a few words of a
    long item changed, an unchanged 13-word run kept). Two near misses are planted too: a run of 12
    words of a long item, and a short item's whole text inside a longer training item."""
    rng = random.Random(0)
    test = [{"id": f"t{i:02d}", "input": _sentence(rng, 30 if i % 2 else 20), "target": rng.choice("AB")}
            for i in range(40)]
    test[39]["input"] = _sentence(rng, 6)  # shorter than 13 words: compared by its whole text
    test[3]["input"] += " and it's done"  # punctuation inside a word is removed, not a word break
    train = [{"id": f"r{i:02d}", "input": _sentence(rng, 25), "target": rng.choice("AB")} for i in range(30)]

    def fullwidth(text: str) -> str:  # NFKC maps these back to ASCII
        return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in text)

    train += [
        {"id": "p0", "input": test[3]["input"].replace("'", "").upper() + "!!", "target": "A"},
        {"id": "p1", "input": "  " + test[8]["input"].replace(" ", " ,  ") + " ?", "target": "B"},
        {"id": "p2", "input": fullwidth(test[15]["input"]), "target": "A"},
    ]
    words = test[21]["input"].split()  # 30 words: change three of them, keep words 10..25 as they are
    for k in (2, 5, 27):
        words[k] = "changed"
    train.append({"id": "p3", "input": " ".join(words), "target": "B"})
    words = test[33]["input"].split()  # 30 words: 13 of them inside other text
    train.append({"id": "p4", "input": "something new " + " ".join(words[4:17]) + " and more", "target": "A"})
    # near misses: 12 words of test item 5, and item 39's whole (short) text inside a longer one
    train.append({"id": "n0", "input": "x " + " ".join(test[5]["input"].split()[3:15]) + " y", "target": "A"})
    train.append({"id": "n1", "input": "prefix words " + test[39]["input"] + " and a tail", "target": "A"})
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    expected = {"t03": EXACT, "t08": EXACT, "t15": EXACT, "t21": NGRAM_KIND, "t33": NGRAM_KIND}
    return tmp_path / "train.jsonl", test, expected


def test_planted_items_are_found_with_their_kind_and_nothing_else(tmp_path):
    train_path, test, expected = planted(tmp_path)
    report = leakage_report(train_set="toy-full", train_path=train_path, eval_set="toy", eval_kind="task",
                            documents=([r["id"] for r in test], [item_text(r) for r in test]))
    assert {it["id"]: it["kind"] for it in report["items"]} == expected
    assert report["counts"] == {EXACT: 3, NGRAM_KIND: 2}
    assert report["n"] == 40 and report["touched_share"] == pytest.approx(5 / 40)
    assert len(report["train_sha256"]) == 64 and report["checked"] and report["ngram"] == NGRAM


def test_answers_count_for_ngrams_and_not_for_exact_matches():
    """An adapter learns the answers too: a test item whose text is a training answer shares its
    13-grams, but is no exact duplicate of a training item."""
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    index = TrainingIndex(["an unrelated question"], [long])
    assert index.check(["a", "b"], [long, "an unrelated question"]) == {"a": NGRAM_KIND, "b": EXACT}


def test_item_text_reads_the_inputs_never_the_label():
    row = {"id": "1", "input": "Q?", "context": "The document.", "options": ["yes", "no"], "target": "A"}
    assert item_text(row) == "Q?\nThe document.\nyes\nno"


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]|_", "", unicodedata.normalize("NFKC", text).lower()).split()


def reference(train_rows: list[dict], test_rows: list[dict]) -> dict[str, str]:
    """The rule written plainly with tuples of words (no hashing)."""
    full = {" ".join(_words(item_text(r))) for r in train_rows}
    grams = set()
    for text in [item_text(r) for r in train_rows] + [r["target"] for r in train_rows]:
        w = _words(text)
        grams |= {tuple(w[k:k + NGRAM]) for k in range(len(w) - NGRAM + 1)}
    out = {}
    for r in test_rows:
        w = _words(item_text(r))
        if w and " ".join(w) in full:
            out[r["id"]] = EXACT
        elif any(tuple(w[k:k + NGRAM]) in grams for k in range(len(w) - NGRAM + 1)):
            out[r["id"]] = NGRAM_KIND
    return out


def test_clean_only_rescoring_leaves_the_touched_items_out(tmp_path, repo_root):
    """leakage.exclude: the score is the score of the untouched items, and the record names the rest."""
    train_path, test, expected = planted(tmp_path)
    report = leakage_report(train_set="ticket_routing-16", train_path=train_path, eval_set="ticket_routing",
                            eval_kind="task", documents=([r["id"] for r in test], [item_text(r) for r in test]))
    task = load_project_from_file(repo_root).tasks["ticket_routing"]
    labels = list(task.labels)
    rng = random.Random(1)
    for r in test:
        r["target"] = rng.choice(labels)
    # every touched item answered right, the rest right one time in four: the clean score is lower
    answers = {r["id"]: r["target"] if r["id"] in expected or rng.random() < 0.25 else labels[0]
               for r in test}
    write_jsonl(tmp_path / "test.jsonl", test)
    write_jsonl(tmp_path / "preds.jsonl", [{"id": i, "output": a, "parsed": a, "latency_s": 0.1, "tokens_in": 5,
                                            "tokens_out": 1} for i, a in answers.items()])
    write_json(tmp_path / "meta.json", {"system": "m+ticket_routing-16", "model": "m", "adapter": "ticket_routing-16",
                                        "prompting": "0shot", "shots": 0, "method": "generate",
                                        "started_at": "2026-01-01T00:00:00+00:00",
                                        "finished_at": "2026-01-01T00:01:00+00:00"})

    def run(exclude):
        return score_predictions(task=task, predictions_path=str(tmp_path / "preds.jsonl"),
                                 meta_path=str(tmp_path / "meta.json"), test_path=str(tmp_path / "test.jsonl"),
                                 max_items=None, bootstrap=BOOT, out_path=str(tmp_path / "score.json"),
                                 exclude=exclude)

    everything = run(None)
    clean = run(touched_ids([report]))
    assert "excluded" not in everything and everything["n"] == 40
    assert clean["n"] == 35 and {it["id"] for it in clean["items"]} == {r["id"] for r in test} - set(expected)
    assert clean["excluded"] == {"count": 5, "items": [{"id": i, "by": ["ticket_routing-16"]}
                                                       for i in sorted(expected)]}
    right = sum(answers[r["id"]] == r["target"] for r in test if r["id"] not in expected)
    assert clean["metrics"]["accuracy"]["value"] == pytest.approx(right / 35)
    assert clean["metrics"]["accuracy"]["value"] < everything["metrics"]["accuracy"]["value"]
    assert read_json(tmp_path / "score.json")["excluded"]["count"] == 5  # as written, schema-valid below

    from tunebench.core.records import SCORE_SCHEMA, read_score
    from tunebench.core.schema import load_schema

    assert read_score(tmp_path / "score.json", load_schema(repo_root, SCORE_SCHEMA)).excluded["count"] == 5


def test_exact_test_items_in_the_training_data_fail_the_gate_without_a_baseline(tmp_path, capsys):
    train_path, test, expected = planted(tmp_path)
    docs = ([r["id"] for r in test], [item_text(r) for r in test])
    dirty = leakage_report(train_set="toy-16", train_path=train_path, eval_set="toy", eval_kind="task", documents=docs)
    gate = compare_to_baseline(None, [], system="m+toy-16", gates={}, labels={}, bootstrap=BOOT, baseline_file="")
    failed = leakage_gate(gate, [dirty])
    assert failed["gate"] == "FAIL" and failed["baseline"] is None
    (leak,) = failed["leakage"]
    assert leak["ids"] == [i for i, k in expected.items() if k == EXACT] == ["t03", "t08", "t15"]
    assert "t03, t08, t15" in leak["message"] and "t21" not in leak["message"]  # 13-gram overlap alone does not FAIL
    assert any("t03, t08, t15" in line for line in gate_markdown({"gates": [failed]}))

    write_json(tmp_path / "results/comparisons/m+toy-16.json", failed)  # `tunebench gate` exits 1 on it
    assert cli(["gate", "--results", str(tmp_path / "results")]) == 1
    assert "FAIL m+toy-16 leakage: 3 test item(s) of toy" in capsys.readouterr().out

    write_jsonl(tmp_path / "clean.jsonl", [{"id": "x", "input": "nothing like the test", "target": "A"}])
    clean = leakage_report(train_set="toy-16", train_path=tmp_path / "clean.jsonl", eval_set="toy",
                           eval_kind="task", documents=docs)
    assert leakage_gate(gate, [clean]) == gate


def test_benchmarks_not_available_offline_are_reported_not_failed(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"id": "x", "input": "a b c", "target": "A"}])
    assert benchmark_documents("gsm8k", {"kind": "lm_eval", "task": "gsm8k"}) is None
    report = leakage_report(train_set="toy-16", train_path=tmp_path / "train.jsonl", eval_set="gsm8k",
                            eval_kind="lm_eval", documents=None)
    assert report["checked"] is False and report["note"] == NOT_AVAILABLE and report["items"] == []
    assert leakage_gate({"gate": "PASS"}, [report]) == {"gate": "PASS"}
    lines = leakage_markdown({"leakage": leakage_rows([report], {})})
    assert any(NOT_AVAILABLE in line for line in lines)


def test_a_local_benchmarks_documents_are_checked(tmp_path):
    rows = [{"id": "q1", "question": "What is two plus two", "choices": ["3", "4"], "answer": 1}]
    write_jsonl(tmp_path / "bench.jsonl", rows)
    spec = {"kind": "local", "path": str(tmp_path / "bench.jsonl"), "output_type": "multiple_choice",
            "fields": {"input": "question", "target": "answer", "choices": "choices"}}
    assert benchmark_documents("mine", spec) == (["q1"], ["What is two plus two\n3\n4"])


def test_the_test_suites_run_writes_every_report_and_its_summary_shows_them(demo_run):
    """The `test` suite: its adapter's training set against both tasks and both offline benchmarks,
    and each task's own train split against its test split; every count as the plain rule gives it."""
    results = demo_run / "results/test"
    reports = {p.relative_to(results / "leakage").as_posix(): read_json(p)
               for p in sorted((results / "leakage").glob("*/*.json"))}
    assert set(reports) == {"ticket_routing-16/ticket_routing.json", "ticket_routing-16/ticket_product.json",
                            "ticket_routing-16/ifbench.json", "ticket_routing-16/humaneval.json",
                            "ticket_routing-full/ticket_routing.json", "ticket_product-full/ticket_product.json"}
    for name, report in reports.items():
        assert report["checked"], name
        if report["eval_kind"] == "task":
            test = [json.loads(line) for line in open(demo_run / report["eval_file"], encoding="utf-8")]
            train = [json.loads(line) for line in open(demo_run / report["train_file"], encoding="utf-8")]
            assert {it["id"]: it["kind"] for it in report["items"]} == reference(train, test), name
    # each generated task's train split was decontaminated against its own test split (split.decontaminate:
    # ngram), and ticket_routing's against ticket_product's too (split.decontaminate_against), so nothing
    # either trains on, in full or as the adapter's 16 rows, touches a ticket task's test split
    for name in ("ticket_routing-16/ticket_routing.json", "ticket_routing-full/ticket_routing.json",
                 "ticket_product-full/ticket_product.json", "ticket_routing-16/ticket_product.json"):
        assert reports[name]["counts"] == {EXACT: 0, NGRAM_KIND: 0} and reports[name]["n"] > 0, name
    routing_train = demo_run / reports["ticket_routing-full/ticket_routing.json"]["train_file"]
    routing = read_json(routing_train.with_name("manifest.json"))
    product_test = [json.loads(line) for line in open(demo_run / reports["ticket_product-full/ticket_product.json"]
                                                      ["eval_file"], encoding="utf-8")]
    routing_full = [json.loads(line) for line in open(routing_train, encoding="utf-8")]
    assert reference(routing_full, product_test) == {}
    across = routing["decontaminate_against"]["ticket_product"]
    assert across["train"]["rows"] > 0 and routing["decontaminate_skipped"] == {}
    assert not set(across["train"]["ids"]) & {r["id"] for r in routing_full}
    log = (demo_run / "logs/split_prepare/ticket_routing.log").read_text(encoding="utf-8")
    assert f"decontaminate ngram against ticket_product: removed {across['train']['rows']} train" in log
    for task in ("ticket_routing", "ticket_product"):
        test_file = demo_run / reports[f"{task}-full/{task}.json"]["eval_file"]
        manifest = read_json(test_file.with_name("manifest.json"))
        assert manifest["decontaminate"] == "ngram" and manifest["splits"]["train"]["removed"]["rows"] > 0
        log = (demo_run / "logs/split_prepare" / f"{task}.log").read_text(encoding="utf-8")
        assert f"decontaminate ngram: removed {manifest['splits']['train']['removed']['rows']} train" in log
    # no IFBench prompt or HumanEval problem is in a support ticket
    assert reports["ticket_routing-16/ifbench.json"]["counts"] == {EXACT: 0, NGRAM_KIND: 0}
    assert reports["ticket_routing-16/humaneval.json"]["counts"] == {EXACT: 0, NGRAM_KIND: 0}
    assert reports["ticket_routing-16/ifbench.json"]["n"] == 294
    summary = read_json(results / "summary.json")
    shown = {(r["train_set"], r["eval_set"]): r for r in summary["leakage"]}
    assert len(shown) == 6
    assert "smollm2-135m-instruct+ticket_routing-16" in shown[("ticket_routing-16", "ticket_routing")]["systems"]
    md = (results / "summary.md").read_text(encoding="utf-8")
    assert "## Leakage" in md and "ticket_routing-16" in md.split("## Leakage")[1]
    gate = read_json(results / "comparisons/smollm2-135m-instruct+ticket_routing-16.json")
    assert not gate.get("leakage")  # no exact test item of any task in the adapter's training data
