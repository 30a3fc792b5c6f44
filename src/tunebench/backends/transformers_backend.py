"""Prediction with transformers: batched greedy generation on CPU or GPU.

Prompts are sorted by length so a batch pads little, padded on the left (decoder-only models
generate after the last position), and generation stops at the task's stop strings or EOS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunebench.backends import continuous, greedy
from tunebench.backends.base import (
    BackendBase,
    BackendContext,
    Chosen,
    Conversation,
    Generation,
    Scored,
    check_lengths,
    render_messages,
)
from tunebench.backends.batching import MIN_SHARED_PREFIX, cache_argument, plan_batches, shared_prefix_length
from tunebench.backends.token_logprobs import answer_logprob
from tunebench.core.errors import ConfigError

log = logging.getLogger(__name__)


class TransformersBackend(BackendBase):
    name = "transformers"
    supports_loglik = True
    supports_constrained = True

    def __init__(self, model_dir: str | Path, *, dtype: str = "float32", threads: int | None = None,
                 chat_template: bool = True, max_input_tokens: int = 4096,
                 adapter_dir: str | Path | None = None, batch_size: int = 8, batch_tokens: int | None = None,
                 chat_template_kwargs: dict | None = None, logprobs: bool = False, loaded: tuple | None = None):
        """`loaded`: an already loaded (model, tokenizer) to generate with (e.g. lm-eval's), so the
        weights are not read twice; model_dir and adapter_dir then only name them."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer: Any = loaded[1] if loaded else AutoTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model: Any = loaded[0] if loaded else AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=getattr(torch, dtype))
        if adapter_dir is not None and not loaded:
            from peft import PeftModel

            # merged once: generation then costs what the base model costs (same predictions)
            self.model = PeftModel.from_pretrained(self.model, str(adapter_dir)).merge_and_unload()
        self.model.to(self.device).eval()
        self.cache_arg = cache_argument(self.model)
        self.use_chat_template = chat_template and self.tokenizer.chat_template is not None
        self.template_kwargs = dict(chat_template_kwargs or {})
        self.max_input_tokens = max_input_tokens
        self.weights = (model_dir, adapter_dir, dtype)  # what a journal's batches must come from
        self.batch_size, self.batch_tokens = batch_size, batch_tokens  # for complete() and score_labels()
        self.logprobs = logprobs  # record each answer's token log-probs (Generation.logprob)
        self.last_prefix: dict = {}

    @classmethod
    def from_context(cls, ctx: BackendContext) -> TransformersBackend:
        m = ctx.model
        return cls(ctx.model_dir or "", dtype=m.dtype, threads=ctx.threads, chat_template=m.chat_template,
                   max_input_tokens=m.max_input_tokens, adapter_dir=ctx.adapter_dir, batch_size=m.batch_size,
                   batch_tokens=m.batch_tokens, chat_template_kwargs=m.chat_template_kwargs,
                   logprobs=ctx.logprobs)

    def render(self, messages: list[dict]) -> str:
        """The exact text the model sees."""
        return render_messages(self.tokenizer, messages, self.use_chat_template, self.template_kwargs)

    def prompt_text(self, conversation: Conversation) -> str:
        return self.render(conversation)

    def shared_prefix_tokens(self) -> int | None:
        return self.last_prefix.get("tokens")

    def complete(self, conversations: list[Conversation], *, max_new_tokens: int, stop: list[str],
                 progress: bool = True, desc: str = "predict", journal: str | Path | None = None,
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        return self.generate([self.render(c) for c in conversations], max_new_tokens=max_new_tokens, stop=stop,
                             batch_size=self.batch_size, batch_tokens=self.batch_tokens, progress=progress,
                             desc=desc, journal=journal, stall_timeout_s=stall_timeout_s, settled=settled)

    def score_labels(self, conversations: list[Conversation], answers: list[str] | list[list[str]], *,
                     progress: bool = True, desc: str = "score", journal: str | Path | None = None,
                     stall_timeout_s: float | None = None) -> list[Scored]:
        if answers and not isinstance(answers[0], str):  # each conversation's own answers (its options)
            own = [[self.answer_text(c, a) for a in item] for c, item in zip(conversations, answers)]
            if any(o != own[0] for o in own):
                from tunebench.backends.item_loglik import score_item_continuations

                return score_item_continuations(self, [self.render(c) for c in conversations], own,
                                                batch_size=self.batch_size, batch_tokens=self.batch_tokens,
                                                progress=progress, desc=desc, journal=journal,
                                                stall_timeout_s=stall_timeout_s)
            continuations = own[0]  # all alike (e.g. letters A-D everywhere): the shared path
        else:
            # a label's tokens after the prompt are the same for every item: the first item's turn shows them
            continuations = [self.answer_text(conversations[0], a) for a in answers
                             if isinstance(a, str)] if conversations else []
        from tunebench.backends.label_trie import score_trie

        # shared label prefixes computed once (score_continuations: the same numbers, each label alone)
        return score_trie(self, [self.render(c) for c in conversations], continuations,
                          batch_size=self.batch_size, batch_tokens=self.batch_tokens,
                          progress=progress, desc=desc, journal=journal, stall_timeout_s=stall_timeout_s)

    def choose_labels(self, conversations: list[Conversation], answers: list[str] | list[list[str]], *,
                      progress: bool = True, desc: str = "constrained", journal: str | Path | None = None,
                      stall_timeout_s: float | None = None) -> list[Chosen]:
        """`method: constrained`: greedy decoding restricted to the answers (the same for every
        conversation, or one list per conversation); per conversation, its answer's index."""
        from tunebench.backends.label_trie import constrained_choice

        if answers and not isinstance(answers[0], str):
            continuations: list = [[self.answer_text(c, a) for a in item] for c, item in zip(conversations, answers)]
        else:
            continuations = [self.answer_text(conversations[0], a) for a in answers
                             if isinstance(a, str)] if conversations else []
        return constrained_choice(self, [self.render(c) for c in conversations], continuations,
                                  batch_size=self.batch_size, batch_tokens=self.batch_tokens, progress=progress,
                                  desc=desc, journal=journal, stall_timeout_s=stall_timeout_s)

    def _prepare(self, prompts: list[str], share_prefix: bool, extra_tokens: int):
        """Token ids, lengths, the shared prefix length and its KV cache (computed once)."""
        # token ids as they are (a caller that tokenizes its own way, e.g. with a BOS), or text
        ids = ([list(p) for p in prompts] if prompts and not isinstance(prompts[0], str)
               else self.tokenizer(prompts, add_special_tokens=False)["input_ids"])
        lengths = [len(x) for x in ids]
        check_lengths([n + extra_tokens for n in lengths], self.max_input_tokens)
        n_prefix = shared_prefix_length(ids) if share_prefix and len(ids) > 1 else 0
        if n_prefix < MIN_SHARED_PREFIX:
            n_prefix = 0
        prefix_cache = None
        t0 = time.perf_counter()
        if n_prefix:
            with self.torch.inference_mode():
                out = self.model(input_ids=self.torch.tensor([ids[0][:n_prefix]], device=self.device),
                                 use_cache=True, logits_to_keep=1)  # only its cache is used
                prefix_cache = getattr(out, self.cache_arg)  # the output field has the argument's name
        self.last_prefix = {"tokens": n_prefix, "seconds": round(time.perf_counter() - t0, 4)}
        return ids, lengths, n_prefix, prefix_cache

    def _batches(self, n_items: int, lengths: list[int], *, batch_size: int, batch_tokens: int | None,
                 extra_tokens: int, key: list, make, progress: bool, desc: str,
                 journal: str | Path | None, stall_timeout_s: float | None, result_type,
                 stream=None) -> list:
        """Run `make(batch) -> [result per item]` over length-sorted batches, with a journal of the
        finished ones (tunebench.core.resume), a watchdog and a progress bar; results in input order.
        `stream([(number, batch)])`, when given, runs the batches not yet journaled instead and
        yields (number, [result per item]) as each finishes, in any order."""
        from dataclasses import asdict

        from tqdm import tqdm

        from tunebench.core.resume import Journal, Watchdog, journal_key, weights_identity

        order = sorted(range(n_items), key=lambda i: (lengths[i], i))
        batches = plan_batches(order, lengths, batch_size=batch_size, batch_tokens=batch_tokens,
                               extra_tokens=extra_tokens)
        results: list = [None] * n_items
        done = Journal(journal, journal_key(*key, batch_size, batch_tokens, self.name, self.weights[2],
                                            weights_identity(*self.weights[:2])) if journal else "")
        bar = tqdm(total=n_items, desc=desc, unit="item", disable=not progress, mininterval=2)
        with Watchdog(stall_timeout_s, desc, kept=journal) as dog:
            for number, batch in enumerate(batches):
                if number in done.done:
                    for i, kept in done.done[number]:
                        results[i] = result_type(**kept)
                    bar.update(len(batch))
            todo = [(number, batch) for number, batch in enumerate(batches) if number not in done.done]
            for number, out in (stream(todo) if stream is not None else ((n, make(b)) for n, b in todo)):
                for i, result in zip(batches[number], out):
                    results[i] = result
                done.add(number, [[i, asdict(results[i])] for i in batches[number]])
                dog.beat()
                bar.update(len(batches[number]))
        bar.close()
        return results

    def _batch_inputs(self, batch: list[int], ids: list[list[int]], n_prefix: int, prefix_cache):
        """Left-padded suffixes after the shared prefix, their mask, and the prefix cache per row."""
        tok = self.tokenizer
        suffixes = [ids[i][n_prefix:] for i in batch]
        width = max(len(x) for x in suffixes)
        prefix = ids[batch[0]][:n_prefix]
        input_ids = [prefix + [tok.pad_token_id] * (width - len(x)) + x for x in suffixes]
        mask = [[1] * n_prefix + [0] * (width - len(x)) + [1] * len(x) for x in suffixes]
        cache = None
        if prefix_cache is not None:
            import copy

            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(batch))
        return input_ids, mask, width, cache

    def generate(self, prompts: list[str], *, max_new_tokens: int, stop: list[str],
                 batch_size: int, batch_tokens: int | None = None, progress: bool = True,
                 desc: str = "predict", share_prefix: bool = True, journal: str | Path | None = None,
                 stall_timeout_s: float | None = None,
                 settled: Callable[[int, str], bool] | None = None) -> list[Generation]:
        """Greedy completions of `prompts`, in input order.

        When all prompts start with the same tokens (system message + in-context examples), that
        prefix is run through the model once and its KV cache reused by every batch: padding goes
        between the shared prefix and each item's own tokens, and position ids follow the attention
        mask, so each item sees exactly the positions it would see alone.

        Batches are cut from the length-sorted prompts: at most `batch_size` items, and with
        `batch_tokens`, at most that many tokens (rows x (prompt + new tokens)) per batch, so short
        prompts go in large batches and long ones in small. The plain greedy loop batches them
        continuously: the next batch's rows join as finished rows leave (backends.continuous).

        `journal`: finished batches are kept there, and a rerun after a kill or a stall generates
        only the others (tunebench.core.resume); `stall_timeout_s`: the watchdog's limit per batch.

        `settled(i, text)`: whether prompt i's answer can no longer change whatever follows `text`
        (tunebench.tasks.parsing.EarlyStop); its row then stops there, and the parsed answer is the
        one a run to the stop string or max_new_tokens gives.
        """
        tok = self.tokenizer
        ids, lengths, n_prefix, prefix_cache = self._prepare(prompts, share_prefix, 0)
        eos_ids = {tok.eos_token_id, tok.pad_token_id}
        # the model's own generation config may add logits processors (a repetition penalty...):
        # transformers' generate then runs them; otherwise a plain greedy loop that drops finished rows
        decode = greedy.decode if self._plain_greedy() else greedy.hf_generate

        run: dict[str, Any] = dict(max_new_tokens=max_new_tokens, stop=stop, eos_ids=eos_ids, settled=settled)

        def make(batch: list[int]) -> list[Generation]:
            t0 = time.perf_counter()
            new, steps = decode(self, batch, ids, n_prefix, prefix_cache, **run)
            return generations(batch, new, steps, time.perf_counter() - t0)

        def stream(todo: list[tuple[int, list[int]]]):
            """The batches continuously batched (tunebench.backends.continuous)."""
            planned = dict(todo)
            for number, new, steps, elapsed in continuous.decode_stream(
                    self, todo, ids, n_prefix, prefix_cache, batch_size=batch_size, batch_tokens=batch_tokens, **run):
                yield number, generations(planned[number], new, steps, elapsed)

        def generations(batch: list[int], new: list[list[int]], steps, elapsed: float) -> list[Generation]:
            results = []
            for row, i in enumerate(batch):
                generated = new[row]
                n_out = next((j for j, t in enumerate(generated) if t in eos_ids), len(generated))
                logprob, counted = answer_logprob(steps[row], n_out) if steps else (None, None)
                results.append(Generation(text=tok.decode(generated[:n_out], skip_special_tokens=True),
                                          tokens_in=lengths[i], tokens_out=n_out,
                                          latency_s=round(elapsed, 4), batch_size=len(batch),
                                          logprob=logprob, logprob_tokens=counted))
            return results

        return self._batches(len(prompts), lengths, batch_size=batch_size,
                             batch_tokens=batch_tokens, extra_tokens=max_new_tokens,
                             key=[prompts, max_new_tokens, stop, n_prefix, *(["logprobs"] if self.logprobs else []),
                                  *([getattr(settled, "key", "early_stop")] if settled is not None else [])],
                             make=make, progress=progress,
                             desc=desc, journal=journal, stall_timeout_s=stall_timeout_s, result_type=Generation,
                             stream=stream if self.CONTINUOUS and decode is greedy.decode and greedy.plain_cache(self)
                             else None)

    PREFILL_ROWS = 8  # rows per prefill pass: similar lengths, so little padding is computed
    CONTINUOUS = True  # the plain greedy loop batches continuously (False: batch by batch)

    def _plain_greedy(self) -> bool:
        """Whether transformers' greedy generate would pick every token by argmax of the logits alone."""
        return greedy.plain_greedy(self.model)

    def answer_text(self, messages: list[dict], answer: str) -> str:
        """What the model writes for `answer` after `messages`: the assistant turn with its closing
        tokens (the chat template's end of turn), so a label that is a prefix of another is not
        favoured; without a chat template, the answer and a newline."""
        if not self.use_chat_template:
            return answer + "\n"
        prompt = self.render(messages)
        full = self.tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}],
                                                  tokenize=False, **self.template_kwargs)
        if not full.startswith(prompt):
            raise ConfigError("the chat template renders an answer that does not continue its prompt, so "
                              "labels cannot be scored as continuations", field="method",
                              fix="use method: generate for this task, or chat_template: false")
        return full[len(prompt):].rstrip("\n")

    def kept_logprobs(self, query, full, position_ids, cache, keep: list[int]):
        """Log-softmax over the vocabulary at the `keep` positions of one forward pass of `query` (after
        the cached shared prefix, when there is one), on the CPU; and the pass's wall time."""
        torch = self.torch
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = self.model(input_ids=query, attention_mask=full.to(self.device),
                                position_ids=position_ids.to(self.device),
                                **({self.cache_arg: cache} if cache is not None else {}),
                                use_cache=cache is not None,
                                logits_to_keep=torch.tensor(keep, device=self.device)).logits.float()
            logp = torch.log_softmax(logits, dim=-1).cpu()
        return logp, time.perf_counter() - t0

    def score_continuations(self, prompts: list[str], continuations: list[str], **kwargs) -> list[Scored]:
        """Each continuation's log-likelihood after each prompt, every continuation's tokens side by
        side (no shared prefixes): the reference the label trie is checked against."""
        from tunebench.backends.item_loglik import score_side_by_side

        return score_side_by_side(self, prompts, continuations, **kwargs)
