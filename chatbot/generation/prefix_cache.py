"""The key/value cache of the prompt prefix that every turn shares.

Every prompt starts with the same tokens: the chat template's opening and the system prompt
(``chatbot.prompts.SYSTEM_PROMPT``), then the passages. Running the model over that prefix
once and starting each generation from a copy of its cache saves that part of the prefill on
every turn. The prefix is learnt rather than configured, so it fits any model's chat template
and a fine-tuned model's own system prompt: it starts as the longest common prefix of the
first two prompts and only ever shrinks (to the common prefix of itself and a prompt that
does not start with it), so it settles on the part that really is fixed. Shrinking crops the
cache; nothing is recomputed.

A cache only depends on the tokens it covers (attention is causal), so reusing it gives the
same logits as running the whole prompt, up to float rounding.
"""

from __future__ import annotations

import copy
from typing import Any

MIN_PREFIX_TOKENS = 16


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """Not thread-safe: the generator calls it while it holds the model."""

    def __init__(self, model: Any, *, min_tokens: int = MIN_PREFIX_TOKENS,
                 prefill: Any = None) -> None:
        self.model = model
        # Where prompts are read with a bfloat16 prefill (generation.prefill), the prefix is
        # read with it too, so a prompt's cache is computed alike with or without this one.
        self.prefill = prefill
        self.min_tokens = min_tokens
        self.tokens: list[int] = []  # the cached prefix
        self._cache: Any = None
        self._previous: list[int] = []  # the last prompt, while no prefix is known yet
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.tokens) if self._cache is not None else 0

    def cache_for(self, ids: list[int]) -> Any:
        """A fresh cache holding the prefix of ``ids`` (to pass to ``generate``), or None.

        At least one token of ``ids`` is always left for the model to read."""
        if self._cache is not None and ids[: len(self.tokens)] != self.tokens:
            self._shrink(common_prefix(self.tokens, ids))
        if self._cache is None:
            self._learn(ids)
        if self._cache is None or len(self.tokens) >= len(ids):
            self.misses += 1
            return None
        self.hits += 1
        return copy.deepcopy(self._cache)

    def _learn(self, ids: list[int]) -> None:
        previous, self._previous = self._previous, list(ids)
        n = min(common_prefix(previous, ids), len(ids) - 1)
        if n >= self.min_tokens:
            self._build(ids[:n])

    def _shrink(self, n: int) -> None:
        if n < self.min_tokens:
            self.tokens, self._cache = [], None
            return
        # Negative: "remove this many", which every transformers version since 4.36 reads the
        # same way (5.x rejects a positive target length).
        self._cache.crop(n - len(self.tokens))
        self.tokens = self.tokens[:n]

    def _build(self, prefix: list[int]) -> None:
        import torch
        from transformers import DynamicCache

        if self.prefill is not None:
            self.tokens, self._cache = list(prefix), self.prefill.read(None, prefix)
            return
        device = next(self.model.parameters()).device
        cache = DynamicCache()
        with torch.inference_mode():
            self.model(
                input_ids=torch.tensor([prefix], device=device),
                **{cache_kwarg(): cache}, use_cache=True,
            )
        self.tokens, self._cache = list(prefix), cache


def cache_kwarg() -> str:
    """The name transformers gives the cache argument: ``cache`` from 5.x on (where
    ``past_key_values`` is deprecated), ``past_key_values`` before."""
    from transformers.generation import utils

    return "cache" if "cache" in getattr(utils, "ALL_CACHE_NAMES", ()) else "past_key_values"


def resume_assisted_from_cache(model: Any) -> bool:
    """Make assisted decoding (prompt lookup) read only what its cache does not hold yet.

    transformers 5.x's ``_assisted_decoding`` asks ``prepare_inputs_for_generation`` for the
    whole prompt in its first pass (``next_sequence_length=None``), whatever the cache holds,
    where plain decoding's ``_prefill`` slices off the cached part. Wrapping the model's own
    method to slice the same way on that first pass lets a prompt-lookup turn start from the
    prefix cache and the bfloat16 prefill; without it the prompt sat in the context twice.
    Returns False, changing nothing, on a transformers whose method takes no
    ``next_sequence_length`` (4.x), where a prompt-lookup turn then gets no prefilled cache."""
    import functools
    import inspect

    original = model.prepare_inputs_for_generation
    if getattr(original, "resumes_from_cache", False):
        return True
    if "next_sequence_length" not in inspect.signature(original).parameters:
        return False

    @functools.wraps(original)
    def prepare(input_ids: Any, next_sequence_length: int | None = None, **kwargs: Any) -> Any:
        cache = kwargs.get("cache")
        if (next_sequence_length is None and kwargs.get("is_first_iteration")
                and cache is not None and kwargs.get("inputs_embeds") is None):
            past = cache.get_seq_length()
            if 0 < past < input_ids.shape[1]:
                next_sequence_length = input_ids.shape[1] - past
        return original(input_ids, next_sequence_length=next_sequence_length, **kwargs)

    prepare.resumes_from_cache = True  # type: ignore[attr-defined]
    model.prepare_inputs_for_generation = prepare
    return True
