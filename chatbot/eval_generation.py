"""Generation metrics of ``chatbot eval``: answer quality against the knowledge base's answers.

A *reference case* is an in-scope case whose expected id is an FAQ entry (documents have no
single answer); its reference is that entry's answer. A turn *went through the model* when it
was answered (decision ``answer``) by the language model: not small talk, not the fast path.
A model failure counts as a fallback.

- ``perplexity``: of the reference answers given the serving prompt, for every reference case
  whatever the decision: the prompt is built by ``PromptShape.messages`` (the same function as
  serving and training) from the turn's plan (its hits and the conversation so far), tokenized
  by ``encode_chat``; the model's NLL is summed over the answer's tokens (its end-of-turn token
  included) and ``exp(total NLL / total tokens)`` reported. Local models only (it needs the
  logits); ``None`` for other backends.
- ``bleu``, ``rouge_l``, ``token_f1``: the final reply (after any fallback to KB text) of
  answered reference cases that went through the model, against the reference; ``*_all``: the
  same over every answered reference case (fast-path answers included, when the fast path is on);
  ``*_generated``: the model's own words for the same cases as ``bleu``, as far as it got before
  the grounding check stopped it (a fallback replaces an FAQ answer by the reference itself, so
  the final reply flatters a model that falls back often).
- ``grounded_rate``, ``fallback_rate``: shares of all turns that went through the model whose
  reply was grounded / was replaced by the knowledge base's own text.
- ``abstain_rate``: share of those turns where the model gave the handoff reply it is trained
  to give when its passages do not hold the answer (``abstained``). Such a reply is not
  grounded (it states nothing from the passages), so it also counts as a fallback; an honest
  "I can't answer that" is a different failure from an invented fact, so it is counted apart.
- ``grounded_rate_answers``: grounded share of the turns where the model did not abstain: how
  often what the model *states* is supported.
- ``latency_ms``: p50 and p95 of the turns that went through the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from chatbot import metrics as m
from chatbot.evaluation import Case, percentile
from chatbot.generation.base import ChatMessages, GenerationParams, Generator
from chatbot.grounding import sentences
from chatbot.prompts import is_handoff_reply
from knowledge.records import Entry, Record


def reference_answers(records: Sequence[Record]) -> dict[str, str]:
    """Entry id → answer, for every FAQ entry."""
    return {r.id: r.answer for r in records if isinstance(r, Entry)}


def went_through_model(result: Mapping[str, Any]) -> bool:
    return result["decision"] == "answer" and (
        result.get("model") is not None or bool(result.get("fallback"))
    )


def abstained(model_text: str | None) -> bool:
    """Whether the model's own words open with the trained handoff reply ("I'm not able to
    answer that from our help articles, so I'm passing this conversation to a colleague...")."""
    first = sentences(model_text or "")[:1]
    return bool(first) and is_handoff_reply(first[0])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def generation_metrics(
    cases: Sequence[Case],
    results: Sequence[Mapping[str, Any]],
    answers: Mapping[str, str],
    nll: tuple[float, int] | None,
    *,
    fast_path: bool,
    model: str | None,
) -> dict[str, Any]:
    """The ``generation`` object of one model's report (see the module docstring)."""
    references = [
        (r, answers[c.expected_id])
        for c, r in zip(cases, results, strict=True)
        if c.expected_id is not None and c.expected_id in answers
    ]
    answered = [(r["text"], ref) for r, ref in references if r["decision"] == "answer"]
    modelled = [(r["text"], ref) for r, ref in references if went_through_model(r)]
    own = [(r.get("model_text") or "", ref) for r, ref in references if went_through_model(r)]
    generated = [r for r in results if went_through_model(r)]
    out: dict[str, Any] = {
        "model": model,
        "fast_path": fast_path,
        "n": len(references),
        "n_answered": len(answered),
        "n_model": len(modelled),
        "n_generated": len(generated),
        "perplexity": _round(m.perplexity(*nll) if nll else None),
        "perplexity_tokens": nll[1] if nll else 0,
    }
    for suffix, pairs in (("", modelled), ("_all", answered), ("_generated", own)):
        predictions = [p for p, _ in pairs]
        refs = [ref for _, ref in pairs]
        out["bleu" + suffix] = _round(m.bleu(predictions, refs))
        out["rouge_l" + suffix] = _round(m.rouge_l(predictions, refs))
        out["token_f1" + suffix] = _round(m.mean_token_f1(predictions, refs))
    out["grounded_rate"] = _round(_share([r.get("grounded") is True for r in generated]))
    out["fallback_rate"] = _round(_share([bool(r.get("fallback")) for r in generated]))
    abstentions = [abstained(r.get("model_text")) for r in generated]
    out["abstain_rate"] = _round(_share(abstentions))
    stated = [r for r, a in zip(generated, abstentions, strict=True) if not a]
    out["grounded_rate_answers"] = _round(_share([r.get("grounded") is True for r in stated]))
    latencies = sorted(r["latency_ms"] for r in generated)
    out["latency_ms"] = {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}
    return out


class RecordingGenerator:
    """Passes a generator's stream through and keeps the text of the latest one, so the eval
    sees the model's own words even when the service replaces them by the KB's text."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.name = inner.name
        self.last: list[str] | None = None

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages: ChatMessages, params: GenerationParams) -> Iterator[str]:
        pieces: list[str] = []
        self.last = pieces
        produced = self.inner.stream(messages, params)
        try:
            for piece in produced:
                pieces.append(piece)
                yield piece
        finally:
            close = getattr(produced, "close", None)  # the service stopped reading: stop too
            if close is not None:
                close()

    def take(self) -> str | None:
        """The text of the stream since the last call, or None when there was none."""
        pieces, self.last = self.last, None
        return None if pieces is None else "".join(pieces).strip()


class ReferenceScorer:
    """Sums a local model's NLL of reference answers given the prompts serving would build."""

    def __init__(self, chat: Any, tokenizer: Any, model: Any, device: str) -> None:
        from chatbot.training.data import PromptShape

        self.chat = chat
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.shape = PromptShape.from_settings(chat.settings, chat.generator.count_tokens)
        self.nll = 0.0
        self.tokens = 0

    @classmethod
    def for_generator(cls, chat: Any, generator: Generator) -> ReferenceScorer | None:
        """A scorer when ``generator`` is a local model (it has logits), else None."""
        from chatbot.generation.local import LocalGenerator

        if not isinstance(generator, LocalGenerator):
            return None
        return cls(chat, generator.tokenizer, generator.model, generator.device)

    def prompt(self, conversation_id: str, text: str, answer: str) -> list[dict[str, str]]:
        """The serving prompt of ``text`` as the next message of the conversation, with
        ``answer`` as the assistant's reply (``ChatService.stream_message`` step by step)."""
        from chatbot.dialogue.manager import plan_turn
        from chatbot.service import clean_message

        chat = self.chat
        text = clean_message(text, chat.settings.max_message_chars)
        history = chat.conversations.messages(conversation_id, limit=40)
        k = chat.settings.retrieval_top_k
        plan = plan_turn(text, history, chat.retriever, thresholds=chat.thresholds, k=k)
        # Answered turns prompt with the plan's hits; for the others, the hits they would have.
        hits = plan.decision.hits or chat.retriever.search(
            plan.query.text, k=k, context=plan.query.context
        )
        turns = [(msg.role, msg.content) for msg in history if msg.role in ("user", "assistant")]
        return self.shape.messages(plan.intent.text, hits, turns, answer)

    def score(self, conversation_id: str, text: str, answer: str) -> None:
        messages = self.prompt(conversation_id, text, answer)
        nll, tokens = reference_nll(self.tokenizer, self.model, self.device, messages)
        self.nll += nll
        self.tokens += tokens

    def totals(self) -> tuple[float, int]:
        return self.nll, self.tokens


def reference_nll(
    tokenizer: Any, model: Any, device: str, messages: ChatMessages
) -> tuple[float, int]:
    """(summed NLL in nats, tokens) of the last (assistant) message given the ones before it,
    tokenized as training tokenizes it (``encode_chat``: the reply and its end-of-turn)."""
    import torch

    from chatbot.training.tokens import IGNORE, encode_chat

    ids, labels = encode_chat(tokenizer, messages)
    inputs = torch.tensor([ids], device=device)
    target = torch.tensor(labels[1:], device=device)
    with torch.inference_mode():
        logits = model(input_ids=inputs).logits[0, :-1].float()
        loss = torch.nn.functional.cross_entropy(
            logits, target, ignore_index=IGNORE, reduction="sum"
        )
    return float(loss), int((target != IGNORE).sum())
