"""Warm-up at server start, so the first customer does not pay for lazy initialisation.

The first query embedding and the first generation are several times slower than later ones
(kernels, allocator, tokenizer caches), and the local model learns the prompt prefix every
turn shares from the first two prompts it sees (``generation.prefix_cache``). Two sample turns
in the serving layout, built by the same ``prompts.build_messages``, do both before the server
reports ready. The language detector's model (54 MB) is loaded here too: loaded by the first
messages, it held each of them up for a third of a second.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from chatbot.dialogue.language import load_detector
from chatbot.prompts import PromptPassage, build_messages

if TYPE_CHECKING:
    from chatbot.services import Services

log = logging.getLogger(__name__)

SAMPLES = (
    ("How long does delivery take?",
     PromptPassage("sample-delivery", "Delivery times", "Orders arrive in 3 to 5 working days.")),
    ("Can I change my order?",
     PromptPassage("sample-orders", "Changing an order", "Orders can be changed until they ship.")),
)


def warm_up(services: Services) -> float:
    """Embed a query, load the language detector and run two short generations; returns the
    seconds it took."""
    started = time.perf_counter()
    services.embedder.embed_query(SAMPLES[0][0])
    load_detector()
    generator = services.chat.generator
    if generator is not None and hasattr(generator, "warm_up"):
        samples = [
            build_messages(question=q, passages=[p], count_tokens=generator.count_tokens)
            for q, p in SAMPLES
        ]
        try:
            generator.warm_up(samples)
        except Exception as exc:  # a model that fails here fails its turns the same way
            log.warning("warm-up generation failed: %s", exc)
    seconds = time.perf_counter() - started
    log.info("warm-up took %.1f s", seconds)
    return seconds
