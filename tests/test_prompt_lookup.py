"""Prompt lookup decoding through ``LocalGenerator``: the same greedy text as plain
``model.generate`` on the whole prompt, after the prefix cache has learnt the shared prefix.

transformers' assisted decoding reads the whole prompt in its first forward pass, even over a
key/value cache that already holds most of it, so handing it the turn's prefix cache put the
prompt in the model's context twice (and cost a second prefill), until
``prefix_cache.resume_assisted_from_cache`` made that pass read only the uncached part."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import save_tiny_llama

from chatbot.generation.base import GenerationParams

GREEDY = GenerationParams(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)
SYSTEM = ("You are a customer-support assistant. Answer from the passages. <passages>\n[a] "
          "Delivery\nStandard delivery to Canada takes 6 to 9 business days and costs 22.95 "
          "euros.\n</passages>")


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama saved with the bundled tokenizer."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-lookup"))


def plain_generate(lm: object, messages: list[dict[str, str]]) -> str:
    import torch

    inputs = lm.prompt_ids(messages)  # type: ignore[attr-defined]
    with torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=GREEDY.max_new_tokens,  # type: ignore[attr-defined]
                                do_sample=False, repetition_penalty=1.0)
    new = out[0, inputs["input_ids"].shape[1]:]
    return lm.tokenizer.decode(new, skip_special_tokens=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize("lookup", [0, 4])
def test_prompt_lookup_gives_the_text_of_plain_generate(tiny_model: Path, lookup: int) -> None:
    from chatbot.generation.local import LocalGenerator

    lm = LocalGenerator(str(tiny_model), device="cpu", prefill_dtype="float32")
    for question in ("How long does delivery take?", "What does delivery cost?"):
        "".join(lm.stream(chat(question), GREEDY))  # two turns: the prefix cache learns SYSTEM
    assert lm.prefix is not None and len(lm.prefix) > 30
    lm.prompt_lookup_tokens = lookup
    hits = lm.prefix.hits
    messages = chat("Can I get it delivered to Canada?")
    assert "".join(lm.stream(messages, GREEDY)).strip() == plain_generate(lm, messages).strip()
    assert lm.prefix.hits == hits + 1  # the drafting turn started from the prefix cache too


def test_a_model_folder_sets_its_own_prompt_lookup(tiny_model: Path, tmp_path: Path) -> None:
    """Unset, the folder's generation config decides; transformers is left none of it to apply
    behind ``stream``'s back (with the prefix cache: the prompt twice)."""
    import shutil

    from transformers import GenerationConfig

    from chatbot.generation.local import LocalGenerator

    folder = tmp_path / "drafting"
    shutil.copytree(tiny_model, folder)
    config = GenerationConfig.from_pretrained(folder)
    config.prompt_lookup_num_tokens = 4
    config.save_pretrained(folder)
    lm = LocalGenerator(str(folder), device="cpu", prefill_dtype="float32")
    assert lm.prompt_lookup_tokens == 4
    assert lm.model.generation_config.prompt_lookup_num_tokens is None
    assert LocalGenerator(str(folder), prompt_lookup_tokens=0).prompt_lookup_tokens == 0
    assert LocalGenerator(str(tiny_model)).prompt_lookup_tokens == 0  # none in its config
    for question in ("How long does delivery take?", "What does delivery cost?"):
        "".join(lm.stream(chat(question), GREEDY))
    messages = chat("Can I get it delivered to Canada?")
    assert "".join(lm.stream(messages, GREEDY)).strip() == plain_generate(lm, messages).strip()


def test_resuming_wraps_the_model_once_and_only_where_it_can() -> None:
    from chatbot.generation.prefix_cache import resume_assisted_from_cache

    class Older:  # transformers 4.x: the first pass is sliced by cache_position instead
        def prepare_inputs_for_generation(self, input_ids, cache_position=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return {"input_ids": input_ids}

    older = Older()
    assert resume_assisted_from_cache(older) is False
    assert "prepare_inputs_for_generation" not in vars(older)

    class Newer:
        def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return {"input_ids": input_ids[-next_sequence_length:] if next_sequence_length else input_ids}

    class Cache:
        def get_seq_length(self) -> int:
            return 3

    newer = Newer()
    assert resume_assisted_from_cache(newer) is True
    wrapped = newer.prepare_inputs_for_generation
    assert resume_assisted_from_cache(newer) is True and newer.prepare_inputs_for_generation is wrapped

    class Ids(list):
        shape = (1, 5)

    ids = Ids([1, 2, 3, 4, 5])
    first = wrapped(ids, cache=Cache(), is_first_iteration=True)["input_ids"]
    assert first == [4, 5]  # only what the cache does not hold
    assert wrapped(ids, cache=Cache(), is_first_iteration=False)["input_ids"] == ids
    assert wrapped(ids, next_sequence_length=1, cache=Cache(), is_first_iteration=True)["input_ids"] == [5]
