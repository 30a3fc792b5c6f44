"""Many labels: the label trie's log-likelihoods and `method: constrained`, on a tiny random Llama."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import pytest

from tunebench.backends.label_trie import LabelTrie, constrained_choice, label_tokens, score_trie
from tunebench.backends.transformers_backend import TransformersBackend
from tunebench.config.loader import load_project_from_file
from tunebench.core.atomic import read_json, read_jsonl
from tunebench.core.errors import ConfigError
from tunebench.predict.generate import generate_predictions

# shared token prefixes (card_, refund), a label that is a prefix of another at the word level
# (refund / refund_request), and labels of one word (pos / positive)
LABELS = ["card_arrival", "card_linking", "card_payment_fee_charged", "refund", "refund_request", "pos",
          "positive", "exchange_rate", "billing"]
ITEMS = ["short", "a somewhat longer item text about a parcel that never came", "x " * 20, "mid item", "y",
         "refund me now", "my card has not arrived yet, when will it", "z"]


@pytest.fixture(scope="module", params=[True, False], ids=["chat-template", "plain"])
def backend(request, tiny_llama_dir):
    return TransformersBackend(tiny_llama_dir, threads=1, chat_template=request.param)


def conversations(items=ITEMS):
    system = "route tickets to one of: " + ", ".join(LABELS)  # long enough for a shared prefix cache
    return [[{"role": "system", "content": system}, {"role": "user", "content": text}] for text in items]


def test_trie_shares_prefixes_and_keeps_each_label_path():
    trie = LabelTrie.build([[1, 2, 3], [1, 2, 4], [1, 5], [6], [1, 2]])
    assert trie.size == 6  # 1, 2, 3, 4, 5, 6: the shared 1 and 1-2 once
    assert [[trie.tokens[k] for k in path] for path in trie.paths] == [[1, 2, 3], [1, 2, 4], [1, 5], [6], [1, 2]]
    assert trie.depths == [0, 1, 2, 2, 1, 0]
    assert trie.label_at(trie.ends[4]) == 4 and trie.forced(-1) == []
    assert LabelTrie.build([[7, 8, 9, 1], [7, 8, 9, 2]]).forced(-1) == [0, 1, 2]  # stops at the branch
    with pytest.raises(ConfigError):
        LabelTrie.build([[1], []])


@pytest.mark.parametrize("batch_size", [1, 3])
def test_trie_loglik_equals_each_label_scored_alone(backend, batch_size):
    convs = conversations()
    prompts = [backend.render(c) for c in convs]
    continuations = [backend.answer_text(convs[0], label) for label in LABELS]
    tokens = label_tokens(backend, continuations)
    trie = LabelTrie.build(tokens)
    assert trie.size < sum(len(t) for t in tokens)  # labels share token prefixes here
    refund, request = tokens[LABELS.index("refund")], tokens[LABELS.index("refund_request")]
    assert request[:len(refund) - 1] == refund[:-1]  # the shorter label's tokens start the longer one
    full = backend.score_continuations(prompts, continuations, batch_size=batch_size, progress=False)
    assert backend.last_prefix["tokens"] > 0  # the shared-prefix cache is on the path tested
    shared = score_trie(backend, prompts, continuations, batch_size=batch_size, progress=False)
    assert len({s.tokens_in for s in shared}) > 2 and max(s.batch_size for s in shared) == batch_size
    for f, t in zip(full, shared):
        assert t.logprobs == pytest.approx(f.logprobs, abs=1e-4)
        assert t.tokens_in == f.tokens_in
    # the backend's label scoring is the trie: its batches hold all 8 items, so float noise only
    via_backend = backend.score_labels(convs, LABELS, progress=False)
    assert [s.logprobs for s in via_backend] == [pytest.approx(s.logprobs, abs=1e-4) for s in shared]


def test_trie_loglik_resumes_from_its_journal(backend, tmp_path):
    convs = conversations()
    prompts = [backend.render(c) for c in convs]
    continuations = [backend.answer_text(convs[0], label) for label in LABELS]
    journal = tmp_path / "journal"
    first = score_trie(backend, prompts, continuations, batch_size=3, progress=False, journal=journal)
    assert journal.exists()
    calls = []
    real = backend.kept_logprobs
    backend.kept_logprobs = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        again = score_trie(backend, prompts, continuations, batch_size=3, progress=False, journal=journal)
    finally:
        del backend.kept_logprobs
    assert calls == [] and again == first


def greedy_reference_violations(backend, prompt: str, continuations: list[str], index: int) -> list[str]:
    """Branch points on label `index`'s path where one plain forward pass (no batch, no cache, no
    padding) over the prompt and the path so far prefers another allowed child by more than 1e-4."""
    torch, tok = backend.torch, backend.tokenizer
    trie = LabelTrie.build(label_tokens(backend, continuations))
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    node, bad = -1, []
    for k in trie.paths[index]:
        options = list(trie.children[node])
        if len(options) > 1:
            with torch.inference_mode():
                logits = backend.model(torch.tensor([ids])).logits[0, -1].float()
            if logits[options].max() > logits[trie.tokens[k]] + 1e-4:
                bad.append(f"at depth {trie.depths[k]}: {trie.tokens[k]} over {options}")
        ids = ids + [trie.tokens[k]]
        node = k
    return bad


@pytest.mark.parametrize("batch_size", [1, 5])
def test_constrained_emits_only_labels_following_the_greedy_branch(backend, batch_size):
    """Each answer is a label index, and at every branch of its path the chosen token has the
    largest logit among the allowed ones (greedy over the trie). Greedy and the loglik argmax may
    differ: greedy commits at the first branch."""
    texts = [f"item {i} " + "word " * (i % 7) for i in range(24)]
    convs = conversations(texts)
    prompts = [backend.render(c) for c in convs]
    continuations = [backend.answer_text(convs[0], label) for label in LABELS]
    chosen = constrained_choice(backend, prompts, continuations, batch_size=batch_size, progress=False)
    assert all(0 <= c.index < len(LABELS) for c in chosen)
    tokens = label_tokens(backend, continuations)
    assert [c.tokens_out for c in chosen] == [len(tokens[c.index]) for c in chosen]
    for prompt, c in zip(prompts, chosen):
        assert greedy_reference_violations(backend, prompt, continuations, c.index) == []
    # forced chains are not model calls: never more passes than the deepest branch count + 1
    assert max(c.passes for c in chosen) <= max(len(t) for t in tokens)


def test_constrained_on_one_token_labels_is_the_loglik_argmax(backend):
    """Where the whole label is one token, greedy's single choice compares the same numbers as
    loglik, so the two agree on every item."""
    convs = conversations()
    prompts = [backend.render(c) for c in convs]
    words = [" yes", " no", " maybe", " unsure"]
    assert all(len(t) == 1 for t in label_tokens(backend, words))
    chosen = constrained_choice(backend, prompts, words, batch_size=4, progress=False)
    full = backend.score_continuations(prompts, words, batch_size=4, progress=False)
    assert [c.index for c in chosen] == [max(range(4), key=s.logprobs.__getitem__) for s in full]
    assert all(c.passes == 1 for c in chosen)


def test_constrained_with_each_items_own_answers(backend):
    convs = conversations(ITEMS[:4])
    prompts = [backend.render(c) for c in convs]
    own = [[backend.answer_text(c, a) for a in answers]
           for c, answers in zip(convs, (["A", "B"], ["card_arrival", "card_linking", "x"], ["pos"], ["A", "B"]))]
    chosen = constrained_choice(backend, prompts, own, batch_size=4, progress=False)
    assert [c.index < len(o) for c, o in zip(chosen, own)] == [True] * 4 and chosen[2].index == 0


def run_cell(project, task, tiny_llama_dir, tmp_path, name):
    return generate_predictions(
        task=task, model=project.models["smollm2-135m-instruct"], model_dir=tiny_llama_dir,
        prompt_spec=project.prompts["ticket_routing"], train_path=tmp_path / "train.jsonl",
        test_path=tmp_path / "test.jsonl", shots=2, fewshot_seed=1, max_items=8, threads=1,
        out_rows=str(tmp_path / f"{name}.jsonl"), out_meta=str(tmp_path / f"{name}.meta.json"),
        system="tiny", prompting="2shot", progress=False)


def test_constrained_cell_parses_every_item_as_a_label(routing_split, tiny_llama_dir, tmp_path, monkeypatch, caplog):
    project, task = routing_split
    meta = run_cell(project, dataclasses.replace(task, method="constrained"), tiny_llama_dir, tmp_path, "c")
    assert meta["method"] == "constrained" and read_json(tmp_path / "c.meta.json")["method"] == "constrained"
    rows = read_jsonl(tmp_path / "c.jsonl")
    assert len(rows) == 8 and all(r["parsed"] in task.labels for r in rows)
    assert all(r["output"] == r["parsed"] and r["tokens_out"] > 0 for r in rows)  # the prompt's answer is the label
    monkeypatch.setattr(TransformersBackend, "supports_constrained", False)
    with caplog.at_level(logging.WARNING):
        meta = run_cell(project, dataclasses.replace(task, method="constrained"), tiny_llama_dir, tmp_path, "g")
    assert meta["method"] == "generate" and "cannot use it, so it generates" in caplog.text


@pytest.mark.parametrize("task_file, line, words", [
    ("ticket_routing", "method: constrained\n", None),
    ("ticket_product", "method: constrained\n", ["ticket_product.yaml", "method", "type extraction"]),
    ("ticket_routing", "method: constrain\n", ["ticket_routing.yaml", "method", "constrained"]),
])
def test_method_constrained_validates(repo_root, tmp_path, task_file, line, words):
    root = tmp_path / "repo"
    shutil.copytree(repo_root / "configs", root / "configs")
    shutil.copytree(repo_root / "prompts", root / "prompts")
    path = root / "configs" / "tasks" / f"{task_file}.yaml"
    path.write_text("\n".join(x for x in path.read_text().splitlines() if not x.startswith("method:")) + "\n" + line)
    if words is None:
        assert load_project_from_file(root).tasks[task_file].method == "constrained"
        return
    with pytest.raises(ConfigError) as info:
        load_project_from_file(root)
    assert all(w in str(info.value) for w in words), str(info.value)
