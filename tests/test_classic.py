"""The classic baseline (TF-IDF + logistic regression): a system classic+<task>-<size> fitted on the
training file each LoRA adapter gets, answering through the prediction chain like any backend."""

from __future__ import annotations

import json

import pytest

from tunebench.config.loader import load_project, load_project_from_file
from tunebench.config.targets import check_targets
from tunebench.core.atomic import read_json, read_jsonl, write_jsonl
from tunebench.core.errors import ConfigError, DataError
from tunebench.core.spec import CLASSIC, System
from tunebench.data.generators.tickets import generate
from tunebench.predict.generate import generate_predictions
from tunebench.train.classic import fit_classic, item_text


@pytest.fixture(scope="module")
def tickets(tmp_path_factory):
    """ticket_routing's generated tickets as prepared rows: 240 to train on, 120 to test."""
    project = load_project_from_file(".")
    task = project.tasks["ticket_routing"]
    rows = [{"id": f"t{i}", "input": r["text"], "target": r["intent"]} for i, r in enumerate(generate(360, seed=5))]
    folder = tmp_path_factory.mktemp("classic")
    write_jsonl(folder / "train.jsonl", rows[:240])
    write_jsonl(folder / "test.jsonl", rows[240:])
    return project, task, folder


def test_predictions_match_scikit_learn_fitted_directly_on_the_same_split(tickets):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    project, task, folder = tickets
    record = fit_classic(task=task, train_path=folder / "train.jsonl", out_dir=folder / "adapter")
    meta = generate_predictions(
        task=task, model=project.model(CLASSIC), model_dir=None, prompt_spec=project.prompts[task.name],
        train_path=folder / "train.jsonl", test_path=folder / "test.jsonl", shots=0, fewshot_seed=1,
        max_items=None, threads=1, out_rows=str(folder / "rows.jsonl"), out_meta=str(folder / "meta.json"),
        system=f"{CLASSIC}+ticket_routing-240", prompting="0shot", progress=False, adapter_dir=folder / "adapter")

    train, test = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "test.jsonl")
    direct = make_pipeline(
        FeatureUnion([("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                      ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))]),
        LogisticRegression(C=10.0, max_iter=2000, random_state=0))
    direct.fit([r["input"] for r in train], [r["target"] for r in train])
    expected = list(direct.predict([r["input"] for r in test]))

    rows = read_jsonl(folder / "rows.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in test]
    assert [r["parsed"] for r in rows] == expected  # every item, through the task's own parser
    assert sum(p == r["target"] for p, r in zip(expected, test)) / len(test) > 0.5  # it learnt the task
    assert meta["backend"] == CLASSIC and meta["device"] == "cpu" and meta["items_per_s"] > 0
    assert all(r["latency_s"] > 0 for r in rows)
    assert record["device"] == "cpu" and record["n_train"] == 240 and record["train_seconds"] > 0
    assert read_json(folder / "adapter" / "training.json") == json.loads(json.dumps(record))


def test_the_text_is_the_rows_input_and_context_never_the_label():
    assert item_text({"input": "where is my parcel", "target": "shipping_delay"}) == "where is my parcel"
    assert item_text({"input": "is this clause", "context": "the lease", "target": "x"}) == "is this clause\nthe lease"


def test_one_label_in_the_training_file_is_one_data_error(tickets, tmp_path):
    _, task, _ = tickets
    write_jsonl(tmp_path / "train.jsonl", [{"id": f"a{i}", "input": f"text {i}", "target": "refund"} for i in range(4)])
    with pytest.raises(DataError) as info:
        fit_classic(task=task, train_path=tmp_path / "train.jsonl", out_dir=tmp_path / "out")
    assert info.value.field == "target" and "train size" in info.value.fix
    assert not (tmp_path / "out").exists()


def test_a_classic_system_per_fine_tuned_classification_task_and_size_unless_turned_off():
    project = load_project_from_file(".", overrides={"suite": "test"})
    classic = {n: s for n, s in project.systems.items() if s.is_classic}
    assert classic == {"classic+ticket_routing-16": System(name="classic+ticket_routing-16", model=CLASSIC,
                                                           task="ticket_routing", train_size=16)}
    assert System.parse("classic+ticket_routing-16") == classic["classic+ticket_routing-16"]
    off = load_project_from_file(".", overrides={"suite": "test", "classic": {"enabled": False}})
    assert not [s for s in off.systems.values() if s.is_classic]
    # only classification tasks: an extraction or code task gets no classic system
    smoke = load_project_from_file(".", overrides={"suite": "baseweight-smoke"})
    tasks = {s.task for s in smoke.systems.values() if s.is_classic}
    assert tasks == {n for n in smoke.config["finetune"]["tasks"] if smoke.tasks[n].type == "classification"}
    assert "cuad" not in tasks and "mbpp" not in tasks and tasks


def test_a_model_named_classic_is_refused(repo_root):
    config = load_project_from_file(repo_root).config
    with pytest.raises(ConfigError) as info:
        load_project(repo_root, {**config, "models": ["smollm2-135m-instruct", "classic"]})
    assert info.value.field == "models[1]"


@pytest.mark.parametrize("target", ["results/test/scores/classic+ticket_routing-16/ticket_product/0shot.json",
                                    "results/test/predictions/classic+ticket_routing-16/ticket_routing/5shot.jsonl",
                                    "results/test/scores/classic+ticket_routing-16/ifbench/lm_eval.json"])
def test_targets_the_classic_baseline_cannot_answer_are_refused(target):
    project = load_project_from_file(".", overrides={"suite": "test"})
    with pytest.raises(ConfigError) as info:
        check_targets(project, [target])
    assert "classic+ticket_routing-16" in str(info.value) and "ticket_routing 0shot" in info.value.fix


def test_its_own_cell_and_gate_are_valid_targets():
    project = load_project_from_file(".", overrides={"suite": "test"})
    check_targets(project, ["results/test/scores/classic+ticket_routing-16/ticket_routing/0shot.json",
                            "results/test/comparisons/classic+ticket_routing-16.json"])


def test_the_demo_run_scores_prices_and_gates_the_classic_system(demo_run):
    results = demo_run / "results" / "test"
    summary = read_json(results / "summary.json")
    name = "classic+ticket_routing-16"
    cells = [c for c in summary["cells"] if c["system"] == name]
    assert {(c["task"], c["prompting"]) for c in cells} == {("ticket_routing", "0shot")}
    primary = next(c for c in cells if c["primary"])
    assert primary["model"] == CLASSIC and primary["n"] == 6 and primary["parse_failures"] == 0
    assert primary["cost_per_query_usd"] is not None and primary["cost_per_query_usd"] > 0
    cost = next(r for r in summary["costs"]["rows"] if r["system"] == name)
    assert cost["backend"] == CLASSIC and cost["device"] == "cpu" and cost["tco_usd"] > 0
    assert cost["tco_breakdown"]["training_usd"] > 0  # its fit time, priced like an adapter's training
    assert summary["adapters"][name]["device"] == "cpu" and summary["adapters"][name]["n_train"] == 16
    assert name not in {r["system"] for r in summary["comparisons"]}  # no base model to compare against
    assert name in {g["system"] for g in summary["gates"]}
    rows = read_jsonl(results / "predictions" / name / "ticket_routing" / "0shot.jsonl")
    test = {r["id"]: r for r in read_jsonl(demo_run / "data/prepared/ticket_routing/test.jsonl")}
    assert all(r["output"] == r["parsed"] and r["parsed"] in summary["tasks"]["ticket_routing"]["labels"] for r in rows)
    assert [r["id"] for r in rows] == list(test)[:6]
    assert (results / "adapters" / CLASSIC / "ticket_routing-16" / "model.joblib").is_file()
    assert f"| {name} | 0shot |" in (results / "summary.md").read_text()
