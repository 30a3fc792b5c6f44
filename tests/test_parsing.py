"""Answer parsers: the default classification parser accepts only an answer that IS a label (an
invented answer that merely contains one is a parse failure), the lenient one is opt-in and named
in the score; and the same through the real workflow, with a stand-in API model that invents labels."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tunebench.tasks.parsing import LABEL_PARSERS, PARSERS, first_label, first_line, label_mention

LABELS = ["billing", "refund", "damaged_item", "item", "transfer_timing", "transfer_timing_fee",
          "reverted_card_payment?"]


@pytest.mark.parametrize("output, expected", [
    ("refund", "refund"),
    ("REFUND", "refund"),
    ("Label: refund", "refund"),
    ("Answer: refund", "refund"),
    ("Intent:refund", "refund"),
    ("Final answer: refund", "refund"),
    ("`refund`.", "refund"),
    ('"refund"', "refund"),
    ("'Refund'!", "refund"),
    ("**refund**", "refund"),
    ('Intent: "refund".', "refund"),
    ("  refund  \nbilling", "refund"),  # the first non-empty line wins
    ("\n\nrefund", "refund"),
    ("Answer:\nrefund", "refund"),  # a bare lead-in line, then the answer
    (" Damaged item.", "damaged_item"),
    ("damaged-item", "damaged_item"),
    ("Damaged_Item", "damaged_item"),
    # invented answers built from a label are not that label
    ("refund_not_recognised", None),
    ("transfer_timing_not_recognised", None),
    ("refund request", None),
    ("The intent is refund", None),
    ("billing or refund", None),
    ("billing\nrefund_not_recognised", "billing"),
    ("refund_not_recognised\nrefund", None),  # only the first line is the answer
    ("broken_glass", None),
    ("Label:", None),
    ("", None),
    ("   \n  ", None),
])
def test_the_default_parser_accepts_only_an_answer_that_is_a_label(output, expected):
    assert first_label(output, LABELS) == expected


def test_labels_that_are_prefixes_of_each_other_are_told_apart():
    assert first_label("transfer_timing", LABELS) == "transfer_timing"
    assert first_label("transfer timing fee", LABELS) == "transfer_timing_fee"
    assert first_label("Transfer-Timing-Fee.", LABELS) == "transfer_timing_fee"
    assert first_label("item", LABELS) == "item"
    assert first_label("damaged item", LABELS) == "damaged_item"
    assert first_label("transfer_timing_fees", LABELS) is None


def test_a_label_that_ends_in_punctuation_matches_with_and_without_it():
    assert first_label("reverted_card_payment?", LABELS) == "reverted_card_payment?"
    assert first_label("reverted_card_payment", LABELS) == "reverted_card_payment?"
    assert first_label("Label: `Reverted card payment?`.", LABELS) == "reverted_card_payment?"
    assert first_label("reverted_card_payment_not_recognised?", LABELS) is None
    # an exact match, punctuation included, beats a match with the punctuation stripped
    both = ["refund", "refund?", "refund!"]
    assert first_label("refund?", both) == "refund?"
    assert first_label("refund!", both) == "refund!"
    assert first_label("refund", both) == "refund"
    assert first_label("refund.", both) == "refund"
    assert first_label("refund.", ["refund?", "refund!"]) is None  # which one: unknown, not a guess
    assert first_label("refund.", ["refund?"]) == "refund?"


def test_the_lenient_parser_is_opt_in_and_finds_a_label_mentioned_anywhere():
    assert label_mention("refund", LABELS) == "refund"
    assert label_mention("refund_not_recognised", LABELS) == "refund"  # what the default refuses
    assert label_mention("transfer_timing_not_recognised", LABELS) == "transfer_timing"
    assert label_mention("The intent is damaged_item because", LABELS) == "damaged_item"  # longest on ties
    assert label_mention("billing or refund", LABELS) == "billing"  # earliest mention wins
    assert label_mention("broken_glass", LABELS) is None
    assert PARSERS["label_mention"] is label_mention and PARSERS["first_label"] is first_label
    assert LABEL_PARSERS == {"first_label", "label_mention"}
    with pytest.raises(ValueError, match="first_line for an extraction task"):
        label_mention("refund", None)


def test_the_task_schema_offers_exactly_the_parsers_there_are(repo_root):
    schema = yaml.safe_load((repo_root / "configs/schema/task.schema.yaml").read_text())
    assert set(schema["properties"]["parser"]["enum"]) == set(PARSERS)


def test_every_configured_task_parses_its_own_targets(repo_root):
    """Each demo task's parser reads each of its own targets, as the prompt writes it, as itself."""
    from tunebench.config.loader import load_project_from_file
    from tunebench.data.generators import GENERATORS
    from tunebench.tasks.prompting import PromptTemplate

    project = load_project_from_file(repo_root)
    assert project.tasks
    for name, task in project.tasks.items():
        template = PromptTemplate.from_spec(project.prompts[name])
        rows = GENERATORS[task.source["generator"]](**task.source.get("params", {}))
        targets = sorted({str(r[task.fields["target"]]) for r in rows})
        parse = PARSERS[task.parser]
        wrong = [t for t in targets if parse(template.answer(t, task.labels), task.labels) != t]
        assert wrong == [], f"{name} ({task.parser}) misreads its own targets: {wrong[:5]}"
        if task.labels:
            assert task.parser in LABEL_PARSERS and set(targets) <= set(task.labels)
    assert first_line('\n"wireless earbuds".\nmore') == "wireless earbuds"


# ---------- through the real workflow ----------

ANSWERS = (  # what the stand-in says for the test item at position i (by i % 3), given its target
    lambda target: f"{target}_not_recognised",  # an invented intent built from the real one
    lambda target: f"Intent: `{target}`.",
    lambda target: target.upper().replace("_", " "),
)


class StandIn(ThreadingHTTPServer):
    """A STAND-IN model behind the OpenAI chat-completions API: it answers each ticket of
    ticket_routing's test split (read from the run's own prepared split) per ANSWERS. Everything
    else, the workflow, the openai client, the parser, scoring and the gate, runs for real."""

    daemon_threads = True

    def __init__(self, test_split: Path):
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.test_split, self.items, self.requests = test_split, None, 0

    def answer(self, ticket: str) -> str:
        if self.items is None:
            rows = [json.loads(line) for line in self.test_split.read_text().splitlines() if line.strip()]
            self.items = {r["input"].strip(): (i, r["target"]) for i, r in enumerate(rows)}
        i, target = self.items[ticket.strip()]
        return ANSWERS[i % len(ANSWERS)](target)


class StandInHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ticket = [m for m in body["messages"] if m["role"] == "user"][-1]["content"].removeprefix("Ticket:")
        self.server.requests += 1
        text = self.server.answer(ticket)
        data = json.dumps({
            "id": f"standin-{self.server.requests}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


N_ITEMS = 60  # 20 invented answers: enough for the paired test to be sure (p < 0.001)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def standin_run(tmp_path_factory):
    """ticket_routing (0-shot, 60 items, suite test) answered by the stand-in: first with the task on
    the lenient parser, stored as the stand-in's baseline with `tunebench baseline update`; then with
    the default parser, scored and compared with that baseline by the workflow. Only the targets
    needed are built (no training, benchmarks, plots or dashboard)."""
    from conftest import copy_repo, run
    from tunebench.core.atomic import write_json

    repo = copy_repo(tmp_path_factory.mktemp("standin") / "repo")
    server = StandIn(repo / "data/prepared/ticket_routing/test.jsonl")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (repo / "configs/models/standin.yaml").write_text(yaml.safe_dump({
        "name": "standin", "backend": "openai", "stream": False, "concurrency": 4,
        "source": {"kind": "api", "base_url": f"http://127.0.0.1:{server.server_address[1]}/v1",
                   "model": "standin", "api_key_env": None}}))  # a local server: no key
    pricing = yaml.safe_load((repo / "configs/pricing.yaml").read_text())
    pricing["api"]["standin"] = {"input_per_mtok": 0.0, "output_per_mtok": 0.0}
    (repo / "configs/pricing.yaml").write_text(yaml.safe_dump(pricing))
    (repo / "extra.yaml").write_text(yaml.safe_dump({
        "models": ["standin"], "tasks": ["ticket_routing"], "finetune": {"tasks": []}, "prompting": {"shots": [0]},
        "suites": {"test": {"benchmarks": [], "max_eval_items": N_ITEMS}}}))
    task_file = repo / "configs/tasks/ticket_routing.yaml"
    strict = task_file.read_text()
    assert "\nparser: first_label\n" in strict
    config = ["--configfile", "configs/config.yaml", "extra.yaml", "--config", "suite=test"]
    env = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    score = "results/test/scores/standin/ticket_routing/0shot.json"
    out = {"repo": repo, "server": server}

    task_file.write_text(strict.replace("\nparser: first_label\n", "\nparser: label_mention\n"))
    proc = run([str(BIN / "snakemake"), "--cores", "1", score, *config], cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out["lenient"] = json.loads((repo / score).read_text())
    out["lenient_rows"] = (repo / score.replace("scores", "predictions").replace(".json", ".jsonl")).read_text()
    write_json(repo / "results/test/summary.json", {"suite": "test", "provenance": {  # what baseline update reads
        "git_commit": None, "config_hash": "0" * 64, "started_at": out["lenient"]["timing"]["started_at"]}})
    proc = run([str(BIN / "tunebench"), "baseline", "update", "--results", "results/test", "--system", "standin",
                "--run-id", "lenient"], cwd=repo)
    assert proc.returncode == 0, proc.stderr

    task_file.write_text(strict)
    proc = run([str(BIN / "snakemake"), "--cores", "1", score, "results/test/comparisons/standin.json", *config],
               cwd=repo, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out["strict"] = json.loads((repo / score).read_text())
    out["strict_rows"] = [json.loads(line) for line in
                          (repo / score.replace("scores", "predictions").replace(".json", ".jsonl")).open()]
    yield out
    server.shutdown()


@pytest.mark.e2e
def test_through_the_workflow_an_invented_label_is_a_parse_failure_not_a_hit(standin_run):
    rows, score = standin_run["strict_rows"], standin_run["strict"]
    assert len(rows) == N_ITEMS and standin_run["server"].requests == N_ITEMS  # the rerun came from the cache
    for i, row in enumerate(rows):
        if i % 3 == 0:
            assert row["output"].endswith("_not_recognised") and row["parsed"] is None, row
        else:
            assert row["parsed"] is not None and row["parsed"] in row["output"].lower().replace(" ", "_"), row
    assert score["parser"] == "first_label"
    assert score["parse_failures"] == N_ITEMS // 3
    assert score["metrics"]["accuracy"]["value"] == pytest.approx(2 / 3)


@pytest.mark.e2e
def test_through_the_workflow_the_lenient_parser_is_opt_in_and_named_in_the_score(standin_run):
    score = standin_run["lenient"]
    assert score["parser"] == "label_mention"
    assert score["parse_failures"] == 0
    assert score["metrics"]["accuracy"]["value"] == 1.0  # what the old default reported
    assert "_not_recognised" in standin_run["lenient_rows"]


@pytest.mark.e2e
def test_the_comparison_shows_a_tiny_p_value_as_below_0_001(standin_run):
    repo = standin_run["repo"]
    report = json.loads((repo / "results/test/comparisons/standin.json").read_text())
    (row,) = [r for r in report["rows"] if r["metric"] == "accuracy"]
    assert row["verdict"] == "FAIL" and row["p_value"] < 0.001  # the JSON keeps the number
    md = (repo / "results/test/comparisons/standin.md").read_text()
    (line,) = [li for li in md.splitlines() if li.startswith("| ticket_routing | 0shot | accuracy |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[7] == "<0.001", line  # the p column; was "0"
    assert "p<0.001" in line


@pytest.mark.e2e
def test_tunebench_gate_reads_the_configured_suite(standin_run):
    from conftest import run

    repo = standin_run["repo"]
    proc = run([str(BIN / "tunebench"), "gate", "--configfile", "configs/config.yaml", "extra.yaml",
                "--config", "suite=test"], cwd=repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a FAIL; it read results/test, not results/
    assert "FAIL ticket_routing/0shot accuracy: 1.000 -> 0.667 (-33.3 pp, p<0.001)" in proc.stdout
    proc = run([str(BIN / "tunebench"), "gate"], cwd=repo)  # suite demo: results/ has no comparisons
    assert proc.returncode == 2 and "no comparisons in" in proc.stderr
