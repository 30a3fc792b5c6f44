"""lm-eval's `hf` model with tunebench's generation: registered as `tunebench-hf`.

`TunebenchHFLM` is lm-eval's HFLM in every respect (loading, tokenization, chat templates,
log-likelihoods, the request cache hook) except `generate_until`, whose greedy requests go through
`TransformersBackend.generate` on the model HFLM already loaded: each row ends at its own first stop
string or EOS (HFLM ends a batch only when one and the same stop string is in every row, so a batch
whose rows stop at different strings runs to max_gen_toks: humaneval's generation took 5x as long),
a finished row leaves the batch, and the prompt prefix a batch shares is run through the model once.

The answers are HFLM's: the contexts are tokenized as HFLM's `tok_batch_encode` does (its BOS rule,
left truncation to max_length - max_gen_toks), batched as its Collator batches them (longest
first, `batch_size` per batch), decoded as it decodes, and cut at `until` (plus EOS) by lm-eval's
own `postprocess_generated_text`. Requests it cannot answer the same way go to HFLM's own
`generate_until`: sampling or any generation option besides `until`/`max_gen_toks`, `batch_size:
auto`, tokenizer truncation, thinking tokens, seq2seq models, or a model whose generation config
does not stop at the tokenizer's EOS.
"""

from __future__ import annotations

import logging
from typing import Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, has_bos_prefix, normalize_gen_kwargs, postprocess_generated_text

from tunebench.benchmarks.run import TUNEBENCH_HF as MODEL_NAME

log = logging.getLogger(__name__)


def _group_key(gen_kwargs: dict) -> tuple:
    """Requests with equal generation options (as lm-eval's Collator groups them)."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(gen_kwargs.items()))


@register_model(MODEL_NAME)
class TunebenchHFLM(HFLM):
    """HFLM whose greedy `generate_until` runs on tunebench's TransformersBackend (identical strings).

    `batch_tokens`: also cap each batch at this many tokens (rows x (context + max_gen_toks)), as
    tunebench's own predictions do; the default (None) keeps HFLM's batches exactly."""

    def __init__(self, *args, batch_tokens: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_tokens = batch_tokens
        self._backend: Any = None
        self.generated = {"tunebench": 0, "lm_eval": 0}  # requests answered by each path

    def _greedy(self, gen_kwargs: dict) -> tuple[list[str], int] | None:
        """(until with EOS, max_gen_toks) when the request is greedy with no other option, else None."""
        kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
        until = handle_stop_sequences(kwargs.pop("until", None),
                                      eos=self.tok_decode(self.eot_token_id, skip_special_tokens=False))
        max_gen_toks = kwargs.pop("max_gen_toks")
        if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0.0) or kwargs:
            return None
        return until, max_gen_toks

    def _supported(self) -> bool:
        """Whether the model and settings are ones the backend answers exactly as HFLM."""
        if (self.backend != "causal" or self.batch_size == "auto" or self.truncation
                or self.think_end_token is not None):
            return False
        # our rows end at the tokenizer's EOS: HF's generate must end them there too
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        stops = set(eos) if isinstance(eos, list) else {eos}
        return self.tokenizer.eos_token_id in stops

    def _generator(self):
        if self._backend is None:
            from tunebench.backends.batching import cache_argument
            from tunebench.backends.transformers_backend import TransformersBackend

            side = self.tokenizer.padding_side
            self._backend = TransformersBackend(
                self.model.name_or_path, loaded=(self.model, self.tokenizer), max_input_tokens=self.max_length,
                batch_size=int(self.batch_size), batch_tokens=self.batch_tokens, chat_template=False)
            self.tokenizer.padding_side = side  # HFLM's own calls set theirs
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            self._backend.cache_arg = cache_argument(base)  # a PEFT wrapper's forward takes **kwargs
        return self._backend

    def _encode(self, contexts: list[str], max_ctx_len: int) -> list[list[int]]:
        """Token ids of one batch as HFLM's tok_batch_encode makes them, without its padding."""
        kwargs = {}
        if has_bos_prefix(contexts[0], getattr(self.tokenizer, "bos_token", None)):
            kwargs = {"add_special_tokens": False}
        elif self.add_bos_token is not None:
            kwargs = {"add_special_tokens": self.add_bos_token}
        ids = self.tokenizer(contexts, **kwargs)["input_ids"]
        return [list(x[-max_ctx_len:]) for x in ids]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm import tqdm

        from tunebench.backends.batching import plan_batches

        results: list[Any] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(_group_key(req.args[1]), []).append(i)
        ours: list[tuple[list[int], list[str], int]] = []
        theirs: list[int] = []
        supported = self._supported()
        for members in groups.values():
            plan = self._greedy(requests[members[0]].args[1]) if supported else None
            if plan is None:
                theirs += members
            else:
                ours.append((members, *plan))
        if theirs:
            log.info("%s: %d request(s) to lm-eval's own generate_until (not greedy, or settings it "
                     "alone handles)", MODEL_NAME, len(theirs))
            for i, text in zip(theirs, super().generate_until([requests[i] for i in theirs], disable_tqdm)):
                results[i] = text
            self.generated["lm_eval"] += len(theirs)
        if not ours:
            return results
        backend = self._generator()
        tok = self.tokenizer
        bar = tqdm(total=sum(len(m) for m, _, _ in ours), disable=disable_tqdm or self.rank != 0,
                   desc="Running generate_until requests (tunebench)")
        pad = tok.pad_token
        tok.pad_token = tok.eos_token  # rows end at the first EOS (HFLM's pad may be a token the model writes)
        try:
            for members, until, max_gen_toks in ours:
                max_ctx_len = self.max_length - max_gen_toks
                if max_ctx_len <= 0:  # HFLM's own message
                    raise ValueError(f"Invalid configuration: requested max tokens to generate ({max_gen_toks}) "
                                     f"must be less than model's maximum sequence length ({self.max_length}).")
                contexts = {i: requests[i].args[0] for i in members}
                lengths = [0] * len(requests)
                for i in members:  # as HFLM's Collator sorts: longest context first, then by text
                    lengths[i] = len(self.tok_encode(contexts[i]))
                order = sorted(members, key=lambda i: (-lengths[i], contexts[i]))
                for batch in plan_batches(order, lengths, batch_size=int(self.batch_size),
                                          batch_tokens=self.batch_tokens, extra_tokens=max_gen_toks):
                    ids = self._encode([contexts[i] for i in batch], max_ctx_len)
                    gens = backend.generate(ids, max_new_tokens=max_gen_toks, stop=[t for t in until if t],
                                            batch_size=len(batch), progress=False)
                    for i, gen in zip(batch, gens):
                        text = postprocess_generated_text(generation=gen.text, stop=until, think_end_token=None)
                        results[i] = text
                        # committed per request, as HFLM does: the worker's cache and heartbeat
                        self.cache_hook.add_partial("generate_until", requests[i].args, text)
                        bar.update(1)
        finally:
            tok.pad_token = pad
            bar.close()
        self.generated["tunebench"] += sum(len(m) for m, _, _ in ours)
        return results
