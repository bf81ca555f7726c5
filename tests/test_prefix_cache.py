"""The shared-prefix KV cache on a tiny random Llama: it learns the common prefix, shrinks to
what really is shared, and gives the same logits as running the whole prompt."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from chatbot.generation.prefix_cache import PrefixCache, cache_kwarg, common_prefix


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


def last_logits(model: LlamaForCausalLM, ids: list[int], cache: object = None) -> torch.Tensor:
    with torch.inference_mode():
        if cache is None:
            return model(input_ids=torch.tensor([ids])).logits[0, -1]
        done = cache.get_seq_length()  # type: ignore[attr-defined]
        out = model(input_ids=torch.tensor([ids[done:]]), **{cache_kwarg(): cache})
        return out.logits[0, -1]


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_learns_the_prefix_of_the_first_two_prompts(model: LlamaForCausalLM) -> None:
    prefix = PrefixCache(model, min_tokens=4)
    shared = list(range(10, 30))
    first, second = shared + [1, 2, 3], shared + [4, 5]
    assert prefix.cache_for(first) is None  # nothing to compare with yet
    cache = prefix.cache_for(second)
    assert cache is not None and prefix.tokens == shared and len(prefix) == 20
    assert cache.get_seq_length() == 20
    assert torch.allclose(last_logits(model, second, cache), last_logits(model, second), atol=1e-5)
    # Each turn gets its own copy: generating into one must not touch the stored prefix.
    assert cache.get_seq_length() == len(second)
    again = prefix.cache_for(first)
    assert again.get_seq_length() == 20
    assert torch.allclose(last_logits(model, first, again), last_logits(model, first), atol=1e-5)
    assert (prefix.hits, prefix.misses) == (2, 1)


def test_shrinks_to_what_is_really_shared_and_forgets_a_short_one(model: LlamaForCausalLM) -> None:
    prefix = PrefixCache(model, min_tokens=4)
    prefix.cache_for(list(range(40)) + [1])
    prefix.cache_for(list(range(40)) + [2])  # two prompts that happen to share 40 tokens
    assert len(prefix) == 40
    other = list(range(12)) + [99, 98, 97]
    cache = prefix.cache_for(other)
    assert prefix.tokens == list(range(12)) and cache.get_seq_length() == 12
    assert torch.allclose(last_logits(model, other, cache), last_logits(model, other), atol=1e-5)
    assert prefix.cache_for([7, 7, 7, 7, 7, 7]) is None  # shares under min_tokens: dropped
    assert len(prefix) == 0


def test_a_prompt_no_longer_than_the_prefix_is_run_whole(model: LlamaForCausalLM) -> None:
    prefix = PrefixCache(model, min_tokens=4)
    prefix.cache_for(list(range(20)) + [1])
    prefix.cache_for(list(range(20)) + [2])
    assert prefix.cache_for(list(range(20))) is None  # the model must read at least one token
