"""The real bundled language model (SmolLM2-135M-Instruct, GGUF) on CPU. Slow: loaded once."""

from __future__ import annotations

import pytest

from chatbot.generation.base import GenerationParams
from chatbot.generation.prefix_cache import cache_kwarg
from chatbot.prompts import PromptPassage, build_messages

pytestmark = pytest.mark.slow

CANADA = PromptPassage(
    "delivery-canada",
    "How long does delivery to Canada take?",
    "Delivery to Canada takes 7 to 10 business days after dispatch and costs £18.",
)


@pytest.fixture(scope="module")
def messages(bundled_lm):
    return build_messages(
        question="How long does delivery to Canada take?",
        passages=[CANADA],
        count_tokens=bundled_lm.count_tokens,
        budget=1024,
    )


def test_streams_text_and_greedy_is_deterministic(bundled_lm, messages):
    params = GenerationParams(max_new_tokens=16, temperature=0.0)
    first = list(bundled_lm.stream(messages, params))
    assert len(first) > 1, "the reply arrives in pieces"
    assert all(isinstance(piece, str) and piece for piece in first)
    assert "".join(first).strip()
    second = list(bundled_lm.stream(messages, params))
    assert "".join(second) == "".join(first)


def test_max_new_tokens_is_honoured(bundled_lm, messages):
    text = "".join(bundled_lm.stream(messages, GenerationParams(max_new_tokens=6)))
    assert text.strip()
    # Re-tokenising decoded text may differ by a token or so from what was generated.
    assert bundled_lm.count_tokens(text) <= 6 + 2


def test_chat_turn_is_grounded_or_falls_back_to_the_kb(bundled_lm, make_services):
    services = make_services(bundled_lm, fast_path_threshold=1.5, max_new_tokens=40)
    result = services.chat.send_message(
        services.chat.start_conversation(), "How long does delivery to Canada take?"
    )
    assert result.decision == "answer"
    assert result.sources[0]["id"] == "delivery-canada"
    assert result.text.strip()
    assert result.model == bundled_lm.name
    if result.grounded:
        assert result.fallback is False
    else:
        assert result.fallback is True
        assert result.text == services.knowledge.get("delivery-canada").answer
    stored = services.conversations.messages(result.conversation_id)[-1]
    assert stored.content == result.text and stored.grounded == result.grounded


RETURNS = PromptPassage(
    "returns", "Can I return an item?",
    "You can return any item within 30 days of delivery for a full refund.",
)


def test_warm_up_caches_the_system_prompt_and_answers_stay_the_same(bundled_lm, messages):
    lm = bundled_lm
    from chatbot.prompts import SYSTEM_PROMPT
    from chatbot.warmup import SAMPLES

    params = GenerationParams(max_new_tokens=12)
    other = build_messages(question="Can I return a jumper?", passages=[RETURNS],
                           count_tokens=lm.count_tokens)
    saved, lm.prefix = lm.prefix, None
    try:
        whole = ["".join(lm.stream(m, params)) for m in (messages, other)]
    finally:
        lm.prefix = saved
    lm.warm_up([build_messages(question=q, passages=[p], count_tokens=lm.count_tokens)
                for q, p in SAMPLES])
    cached = lm.tokenizer.decode(lm.prefix.tokens)
    assert SYSTEM_PROMPT in cached  # the fixed part of every prompt, and nothing after it
    assert "sample-" not in cached and "delivery" not in cached.lower()
    hits = lm.prefix.hits
    again = ["".join(lm.stream(m, params)) for m in (messages, other)]
    assert lm.prefix.hits == hits + 2
    if lm.prefill is None:  # float32 prompts: the cached prefix changes nothing
        assert again == whole
        return
    # A bfloat16 prefill rounds a prefix read on its own apart from the same tokens read in
    # one pass with the rest, which can flip the base model's near ties: the next-token
    # distributions must still agree.
    import torch

    ids = lm.prompt_ids(other)["input_ids"][0].tolist()
    with torch.inference_mode():
        last = torch.tensor([ids[-1:]])
        cached = lm.prefill.extend(lm.prefix.cache_for(ids), ids)
        one_pass = lm.prefill.extend(None, ids)
        assert cached.get_seq_length() == one_pass.get_seq_length() == len(ids) - 1
        a = lm.model(input_ids=last, use_cache=True, **{cache_kwarg(): cached}).logits[0, -1]
        b = lm.model(input_ids=last, use_cache=True, **{cache_kwarg(): one_pass}).logits[0, -1]
    assert torch.allclose(a.softmax(-1), b.softmax(-1), atol=0.02)


def test_the_repetition_penalty_spares_the_words_of_the_prompt(bundled_lm, messages):
    """A grounded reply quotes its passages: their tokens must not be penalised, only what the
    reply itself has already said."""
    import torch

    inputs = bundled_lm.prompt_ids(messages)
    prompt = inputs["input_ids"]
    kwargs = bundled_lm.generate_kwargs(inputs, GenerationParams(repetition_penalty=1.5))
    assert kwargs["repetition_penalty"] == 1.0
    (penalty,) = kwargs["logits_processor"]
    canada = bundled_lm.tokenizer(" Canada", add_special_tokens=False)["input_ids"][0]
    assert canada in prompt[0].tolist()
    said = bundled_lm.tokenizer(" parcel", add_special_tokens=False)["input_ids"][0]
    assert said not in prompt[0].tolist()
    sequence = torch.cat([prompt, torch.tensor([[said]])], dim=1)  # the reply so far: " parcel"
    scores = penalty(sequence, torch.ones(1, len(bundled_lm.tokenizer)))
    assert scores[0, canada] == 1.0
    assert scores[0, said] == pytest.approx(1 / 1.5)
    assert "logits_processor" not in bundled_lm.generate_kwargs(
        inputs, GenerationParams(repetition_penalty=1.0))


def test_bfloat16_prefill_fills_the_cache_in_float32_and_keeps_the_first_token(
    bundled_lm, bundled_float32_model, messages
):
    import torch

    from chatbot.generation.prefill import BFloat16Prefill, resolve_prefill_dtype

    assert resolve_prefill_dtype("auto", "cuda") == "float32"
    assert resolve_prefill_dtype("float32", "cpu") == "float32"
    model = bundled_float32_model
    prefill = BFloat16Prefill.for_model(model)
    assert prefill.megabytes() > 100  # the decoder's linear weights, 2 bytes each
    ids = bundled_lm.prompt_ids(messages)["input_ids"][0].tolist()
    cache = prefill.extend(None, ids)
    assert cache.get_seq_length() == len(ids) - 1
    assert all(layer.keys.dtype == torch.float32 for layer in cache.layers)
    assert prefill.extend(None, ids[:10]) is None  # too short to be worth it
    with torch.inference_mode():
        fast = model(input_ids=torch.tensor([ids[-1:]]), cache=cache).logits[0, -1]
        plain = model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert fast.argmax() == plain.argmax()
    assert torch.allclose(fast.softmax(-1), plain.softmax(-1), atol=0.02)
