"""An answered turn: the knowledge base's text, or the model's, checked sentence by sentence.

``answer`` is the last step of ``ChatService.stream_message`` when the decision is to answer.
It yields the events the customer sees and returns an ``Answered``. The fast path (a
confident FAQ match) and a server without a model answer with the entry's own text;
otherwise the model writes the answer, each finished sentence is checked (moderation, then
grounding) before it is shown, and the first sentence that fails stops the model and is
replaced by the best passage's own text. So is any failure of the model itself, and the
model's abstention: a first sentence that is the trained handoff reply
(``prompts.is_handoff_reply``) is never shown, and the turn is marked ``abstained`` so that
staff see it among the unanswered questions. The customer is not handed over: retrieval was
confident enough to answer, and the passage's text was the right answer in most such turns
measured (3 of 4 on the demo held-out set).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from chatbot import grounding
from chatbot.dialogue.decision import Decision, is_fast_path
from chatbot.errors import ChatbotError
from chatbot.generation import GenerationParams
from chatbot.prompts import is_handoff_reply, select_passages, turn_messages
from chatbot.turns import Delta, Event, Reset, sentences_of

if TYPE_CHECKING:
    from chatbot.service import ChatService

log = logging.getLogger("chatbot.service")


class Answered(NamedTuple):
    text: str
    grounded: bool | None
    origin: str  # fast_path, generated, fallback or kb_only
    model: str | None
    tokens: int
    abstained: bool = False  # the model said its passages do not answer (origin: fallback)


def answer(
    chat: ChatService,
    question: str,
    history: list[Any],
    decision: Decision,
    params: GenerationParams,
    model_allowed: bool = True,
) -> Iterator[Event]:
    """Yields events; returns an ``Answered``.

    Whatever the model does (raises, times out, is unavailable), the customer gets the best
    passage's own text: the failure is logged with its traceback and counted."""
    # Passage sentences that address the model are dropped before anything uses them.
    decision = replace(decision, hits=tuple(
        replace(h, text=chat.moderator.sanitize(h.text)) for h in decision.hits))
    top = decision.hits[0]
    embed = chat.embedder.embed_sentences
    if not model_allowed:  # an injection attempt: the model never sees it
        text = grounding.fallback_text(question, top.kind, top.text, embed)
        yield Delta(text)
        return Answered(text, None, "kb_only", None, 0)
    if chat.generator is None or is_fast_path(decision, chat.thresholds):
        text = grounding.fallback_text(question, top.kind, top.text, embed)
        yield Delta(text)
        return Answered(text, None, "kb_only" if chat.generator is None else "fast_path", None, 0)
    generator = chat.generator
    streamed: list[str] = []
    pieces: list[str] = []
    grounded: bool | None = None
    model: str | None = None
    abstained = False
    try:
        messages = turn_messages(
            question=question,
            hits=decision.hits,
            history=[(m.role, m.content) for m in history if m.role in ("user", "assistant")
                     and not m.meta.get("moderation")],  # flagged messages stay out
            count_tokens=generator.count_tokens,
            context_tokens=chat.settings.context_tokens,
            max_new_tokens=params.max_new_tokens,
            history_turns=chat.settings.history_turns,
            min_score=chat.thresholds.clarify,
        )
        passages = select_passages(decision.hits, chat.thresholds.clarify)
        texts = [p.text for p in passages]
        support = grounding.Support(texts, embed, chat.settings.grounding_threshold)
        # Closing the stream early (a sentence failed) stops the model generating.
        with closing(sentences_of(recorded(generator.stream(messages, params), pieces))) as produced:
            # Each finished sentence is checked before the customer sees it.
            for sentence in produced:
                if streamed and cut_off(chat, sentence, pieces, params):
                    break  # the answer so far ends where its last whole sentence does
                if not streamed and is_handoff_reply(sentence):
                    abstained = True
                    break
                if blocked(chat, sentence, texts) or not support.check(sentence).grounded:
                    grounded = False
                    break
                streamed.append(sentence)
                yield Delta(sentence if len(streamed) == 1 else " " + sentence)
            if streamed and grounded is None:
                return Answered(" ".join(streamed), True, "generated", generator.name,
                                count_tokens(chat, pieces))
            grounded, model = False, generator.name
    except Exception as exc:  # the model failed: the knowledge base answers instead
        if isinstance(exc, ChatbotError):  # expected (busy, unreachable): its message says why
            log.warning("generation failed (%s); answering from the knowledge base", exc)
        else:
            log.error("generation failed; answering from the knowledge base", exc_info=exc)
        if chat.metrics is not None:
            chat.metrics.generation_failed()
    text = grounding.fallback_text(question, top.kind, top.text, embed)
    yield Reset(text)
    return Answered(text, grounded, "fallback", model, count_tokens(chat, pieces), abstained)


def cut_off(chat: ChatService, sentence: str, pieces: list[str], params: GenerationParams) -> bool:
    """Is ``sentence`` the unfinished rest of a reply that ran out of tokens?

    Finished sentences end in . ! or ?, so one that does not is the stream's rest; it is cut
    off when the reply used (nearly) its whole token budget: re-counting decoded text can come
    out a token or two short of what was generated. Without it a long answer would end
    mid-sentence ("Wash your hands with soap and")."""
    if sentence.rstrip("\"')]*").endswith((".", "!", "?")):
        return False
    return count_tokens(chat, pieces) >= params.max_new_tokens - 2


def blocked(chat: ChatService, sentence: str, passages: list[str]) -> bool:
    flag = chat.moderator.check_output(sentence, passages)
    if flag is not None:
        log.warning("moderation withheld a generated sentence (%s)", flag.category)
        chat.count_moderated(flag)
    return flag is not None


def count_tokens(chat: ChatService, pieces: list[str]) -> int:
    if not pieces or chat.generator is None:
        return 0
    try:
        return chat.generator.count_tokens("".join(pieces))
    except Exception:  # a broken tokenizer must not break the turn
        return 0


def recorded(stream: Iterator[str], pieces: list[str]) -> Iterator[str]:
    """``stream``, keeping each piece in ``pieces``; closing it closes ``stream``."""
    try:
        for piece in stream:
            pieces.append(piece)
            yield piece
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
