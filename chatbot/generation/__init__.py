"""Generation backends behind one protocol: local transformers, OpenAI-compatible HTTP, scripted."""

from __future__ import annotations

from chatbot.generation.base import GenerationParams, Generator
from chatbot.settings import Settings


def make_generator(settings: Settings) -> Generator:
    if settings.generator == "scripted":
        from chatbot.generation.scripted import ScriptedGenerator

        return ScriptedGenerator()
    if settings.generator == "openai":
        from chatbot.generation.openai_http import OpenAIGenerator

        return OpenAIGenerator(
            base_url=settings.openai_base_url,
            model=settings.openai_model or settings.model,
            api_key=settings.openai_api_key,
        )
    from chatbot.generation.local import LocalGenerator

    return LocalGenerator(
        settings.model,
        device=settings.device,
        threads=settings.torch_threads,
        prompt_lookup_tokens=settings.prompt_lookup_tokens,
        prefix_cache=settings.prefix_cache,
        prefill_dtype=settings.prefill_dtype,
        decode_weights=settings.decode_weights,
        queue_timeout=settings.generation_queue_timeout,
    )


__all__ = ["GenerationParams", "Generator", "make_generator"]
