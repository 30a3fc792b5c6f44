"""Many labels with transformers: the label continuations as a token trie.

Labels share their first tokens (`card_arrival`, `card_linking`, `card_payment_fee_charged`), so
scoring every label side by side (`TransformersBackend.score_continuations`) computes the same
prefix once per label. Here each distinct trie node is one query position:

- `score_trie`: log-likelihood of every label in one forward pass per batch. A batch's rows hold
  each item's own tokens (after the shared prefix, whose KV cache is computed once) followed by the
  trie's nodes; a 4-D attention mask lets a node see the prompt, its ancestors and itself only, and
  its position is the prompt's length plus its depth, so a node is computed exactly as it would be
  on the path of any label through it. A label's log-prob is the sum over the nodes of its path.
  The cost follows the number of distinct nodes, not the sum of the labels' lengths.
- `constrained_choice`: greedy decoding restricted to the trie. At a node with several children the
  model picks the child with the largest logit among them; a chain of single children is appended
  without asking the model (it is fed in the next pass, which needs it as context), and decoding
  stops as soon as the path reaches the end of a label. Its answer is always exactly one label.
  Greedy over the trie is not the label of largest total log-likelihood: it commits at the first
  branch, as free generation would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tunebench.backends.base import Chosen, Scored, check_lengths
from tunebench.core.errors import ConfigError

if TYPE_CHECKING:
    from tunebench.backends.transformers_backend import TransformersBackend


@dataclass
class LabelTrie:
    """Token trie over label continuations; nodes in creation order, so a parent precedes its children."""
    tokens: list[int] = field(default_factory=list)  # node -> its token
    parents: list[int] = field(default_factory=list)  # node -> parent node, -1 under the root
    depths: list[int] = field(default_factory=list)  # node -> 0 for a label's first token
    children: dict[int, dict[int, int]] = field(default_factory=dict)  # node (-1: root) -> token -> child
    ends: list[int] = field(default_factory=list)  # label -> the node its last token is
    paths: list[list[int]] = field(default_factory=list)  # label -> its nodes, first to last

    @classmethod
    def build(cls, sequences: list[list[int]]) -> LabelTrie:
        trie = cls(children={-1: {}})
        for seq in sequences:
            if not seq:
                raise ConfigError("a label renders to no tokens", field="labels", fix="use non-empty labels")
            node, path = -1, []
            for token in seq:
                child = trie.children[node].get(token)
                if child is None:
                    child = len(trie.tokens)
                    trie.tokens.append(token)
                    trie.parents.append(node)
                    trie.depths.append(0 if node < 0 else trie.depths[node] + 1)
                    trie.children[node][token] = child
                    trie.children[child] = {}
                node = child
                path.append(node)
            trie.ends.append(node)
            trie.paths.append(path)
        return trie

    @property
    def size(self) -> int:
        return len(self.tokens)

    def label_at(self, node: int) -> int | None:
        """The first label that ends at `node`, None when none does."""
        return self.ends.index(node) if node in self.ends else None

    def forced(self, node: int) -> list[int]:
        """The chain of single children below `node` up to a branch or a label's end (exclusive of `node`)."""
        chain = []
        while self.label_at(node) is None and len(self.children[node]) == 1:
            node = next(iter(self.children[node].values()))
            chain.append(node)
        return chain

    def ancestry(self):
        """Bool (nodes, nodes): row k is True at k and at each of its ancestors."""
        import torch

        seen = torch.zeros(self.size, self.size, dtype=torch.bool)
        for k, parent in enumerate(self.parents):
            if parent >= 0:
                seen[k] = seen[parent]
            seen[k, k] = True
        return seen


def label_tokens(backend: TransformersBackend, continuations: list[str]) -> list[list[int]]:
    return [backend.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]


def score_trie(backend: TransformersBackend, prompts: list[str], continuations: list[str], *, batch_size: int,
               batch_tokens: int | None = None, progress: bool = True, desc: str = "score",
               share_prefix: bool = True, journal: str | Path | None = None,
               stall_timeout_s: float | None = None) -> list[Scored]:
    """Log-likelihood of each continuation (the same ones for every prompt) after each prompt, in the
    order given: what `score_continuations` returns, with each shared label prefix computed once."""
    torch = backend.torch
    trie = LabelTrie.build(label_tokens(backend, continuations))
    n_nodes = trie.size
    ids, lengths, n_prefix, prefix_cache = backend._prepare(prompts, share_prefix, max(trie.depths) + 1)
    block = trie.ancestry()
    depth = torch.tensor(trie.depths)
    node_tokens = torch.tensor(trie.tokens)

    def make(batch: list[int]) -> list[Scored]:
        input_ids, mask, width, cache = backend._batch_inputs(batch, ids, n_prefix, prefix_cache)
        rows = len(batch)
        query = torch.tensor([r[n_prefix:] + trie.tokens for r in input_ids], device=backend.device)
        keys = n_prefix + width + n_nodes
        prompt_mask = torch.tensor(mask, dtype=torch.bool)  # (rows, n_prefix + width)
        full = torch.zeros(rows, 1, width + n_nodes, keys, dtype=torch.bool)
        full[:, 0, :width, :n_prefix + width] = prompt_mask[:, None, :]
        full[:, 0, :width, n_prefix:n_prefix + width] &= torch.tril(torch.ones(width, width, dtype=torch.bool))
        full[:, 0, width:, :n_prefix + width] = prompt_mask[:, None, :]
        full[:, 0, width:, n_prefix + width:] = block
        pad = ~prompt_mask[:, n_prefix:]  # a padding query attends to itself only (no empty row)
        diag = torch.arange(width)
        full[:, 0, diag, n_prefix + diag] |= pad
        pos_prompt = (prompt_mask.long().cumsum(1) - 1).clamp(min=0)[:, n_prefix:]
        position_ids = torch.cat([pos_prompt, prompt_mask.sum(1)[:, None] + depth[None, :]], dim=1)
        # a node's token is predicted by its parent's position, or the prompt's last one under the
        # root: only those positions (the prompt's end and the inner nodes) get logits
        src = [width - 1 if p < 0 else width + p for p in trie.parents]
        keep = sorted(set(src))
        at_keep = {q: k for k, q in enumerate(keep)}
        where = torch.tensor([at_keep[q] for q in src])
        logp, elapsed = backend.kept_logprobs(query, full, position_ids, cache, keep)
        picked = logp[:, where, :].gather(2, node_tokens.expand(rows, -1)[..., None])[..., 0]  # (rows, nodes)
        results = []
        for row, i in enumerate(batch):
            sums = [round(float(picked[row, path].sum()), 5) for path in trie.paths]
            results.append(Scored(logprobs=sums, tokens_in=lengths[i], latency_s=round(elapsed, 4), batch_size=rows))
        return results

    return backend._batches(len(prompts), lengths, batch_size=batch_size, batch_tokens=batch_tokens,
                            extra_tokens=n_nodes, key=[prompts, continuations, n_prefix, "loglik-trie"], make=make,
                            progress=progress, desc=desc, journal=journal, stall_timeout_s=stall_timeout_s,
                            result_type=Scored)


def constrained_choice(backend: TransformersBackend, prompts: list[str],
                       continuations: list[str] | list[list[str]], *, batch_size: int,
                       batch_tokens: int | None = None, progress: bool = True, desc: str = "constrained",
                       share_prefix: bool = True, journal: str | Path | None = None,
                       stall_timeout_s: float | None = None) -> list[Chosen]:
    """Greedy decoding of each prompt restricted to its continuations' trie (the same continuations
    for every prompt, or one list per prompt); one `Chosen` per prompt, in input order.

    A batch's first pass runs the items' own tokens (after the shared prefix's cache) and the chain
    of single children under the root; each later pass feeds every row the child it picked and the
    chain below it, right-padded, on top of the KV cache, until every row has reached a label's end.
    """
    import time

    torch = backend.torch
    tok = backend.tokenizer
    shared = bool(continuations) and isinstance(continuations[0], str)
    own: list[list[str]] = ([list(continuations)] * len(prompts) if shared  # type: ignore[arg-type]
                            else [list(c) for c in continuations])
    built: dict[tuple[str, ...], LabelTrie] = {}  # items with the same answers share one trie
    tries = []
    for answers in own:
        if tuple(answers) not in built:
            built[tuple(answers)] = LabelTrie.build(label_tokens(backend, answers))
        tries.append(built[tuple(answers)])
    longest = max((max(t.depths) + 1 for t in built.values()), default=0)
    # the chain under the root is the same for every item when the labels are: it joins the first pass
    root_chain = tries[0].forced(-1) if shared and tries else []
    ids, lengths, n_prefix, prefix_cache = backend._prepare(prompts, share_prefix, longest)
    fed = [x + [tries[0].tokens[k] for k in root_chain] for x in ids] if root_chain else ids
    check_lengths([n + longest for n in lengths], backend.max_input_tokens)
    arg = backend.cache_arg

    def make(batch: list[int]) -> list[Chosen]:
        input_ids, mask, width, cache = backend._batch_inputs(batch, fed, n_prefix, prefix_cache)
        rows = len(batch)
        trie_of = [tries[i] for i in batch]
        node = [root_chain[-1] if root_chain else -1] * rows
        done: list[int | None] = [t.label_at(n) if n >= 0 else None for t, n in zip(trie_of, node)]
        attn = torch.tensor(mask, device=backend.device)
        seen = attn.sum(1)  # real tokens per row: the next one's position
        t0 = time.perf_counter()
        passes = 0
        with torch.inference_mode():
            query = torch.tensor([r[n_prefix:] for r in input_ids], device=backend.device)
            position_ids = (attn.cumsum(1) - 1).clamp(min=0)[:, n_prefix:]
            last = torch.zeros(rows, dtype=torch.long, device=backend.device)  # the first pass keeps one logit row
            while any(d is None for d in done):
                out = backend.model(input_ids=query, attention_mask=attn, position_ids=position_ids, use_cache=True,
                                    logits_to_keep=1 if passes == 0 else 0,
                                    **({arg: cache} if cache is not None else {}))
                passes += 1
                cache = getattr(out, arg)
                logits = out.logits[torch.arange(rows, device=backend.device), last].float().cpu()
                feeds: list[list[int]] = []
                for row in range(rows):
                    if done[row] is not None:
                        feeds.append([])
                        continue
                    trie = trie_of[row]
                    options = trie.children[node[row]]
                    allowed = list(options)
                    pick = options[allowed[int(logits[row, allowed].argmax())]]
                    path = [pick, *trie.forced(pick)]
                    node[row] = path[-1]
                    done[row] = trie.label_at(node[row])
                    feeds.append([] if done[row] is not None else [trie.tokens[k] for k in path])
                if all(d is not None for d in done):
                    break
                step = max(len(f) for f in feeds)
                query = torch.tensor([f + [tok.pad_token_id] * (step - len(f)) for f in feeds], device=backend.device)
                new = torch.tensor([[1] * len(f) + [0] * (step - len(f)) for f in feeds], device=backend.device)
                position_ids = seen[:, None] + torch.arange(step, device=backend.device)[None, :]
                attn = torch.cat([attn, new], dim=1)
                seen = seen + new.sum(1)
                last = (new.sum(1) - 1).clamp(min=0)
        elapsed = time.perf_counter() - t0
        chosen = [d if d is not None else -1 for d in done]
        return [Chosen(index=chosen[row], tokens_in=lengths[i], tokens_out=len(trie_of[row].paths[chosen[row]]),
                       latency_s=round(elapsed, 4), batch_size=rows, passes=passes)
                for row, i in enumerate(batch)]

    return backend._batches(len(prompts), lengths, batch_size=batch_size, batch_tokens=batch_tokens,
                            extra_tokens=longest, key=[prompts, continuations, n_prefix, "constrained"], make=make,
                            progress=progress, desc=desc, journal=journal, stall_timeout_s=stall_timeout_s,
                            result_type=Chosen)
