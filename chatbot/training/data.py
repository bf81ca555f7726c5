"""Training examples for the answer model, built from the published knowledge base.

Every example is a chat in exactly the serving layout: ``prompts.turn_messages`` builds the
prompt from the hits the real retriever returns for the question, as a customer turn would,
and the target is the reply the bot should give to that prompt:

- ``answer``: a question or paraphrase of an entry whose passages hold the entry → its answer;
- ``abstain``: the same question with the entry's own passage removed from the hits, so the
  passages do not hold the answer → the handoff reply (the model learns to say so rather than
  invent);
- ``noisy``: an ``answer`` example whose question is rewritten as customers type it (lower case,
  keywords only, a typo: ``noise.customer_form``), kept when the real retriever still shows the
  entry's passage for it;
- ``followup``: an ``answer`` example preceded by an earlier, unrelated exchange, so the model
  answers the newest message and is not confused by history;
- ``conversation``: exchanges from exported real conversations that the customer rated up.

A question whose own entry is not among the retrieved passages becomes an ``abstain`` example
too: that is what the prompt supports. With ``states_answer`` (``answer_check``), no abstain
example is made from passages that state the answer anyway: a knowledge base's documents often
repeat its FAQ entries (the demo shop's returns policy holds the refund entry's facts), and
teaching "I can't answer" beside the facts taught the model to abstain where it should answer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot import grounding
from chatbot.errors import InvalidInput
from chatbot.privacy.redaction import Redactor
from chatbot.prompts import HANDOFF_REPLY, select_passages, turn_messages
from chatbot.settings import Settings
from chatbot.training.noise import customer_form
from knowledge.records import Entry, Record
from knowledge.retrieval import Hit

ChatMessages = list[dict[str, str]]
Search = Callable[[str, int], Sequence[Hit]]


@dataclass(frozen=True)
class Example:
    messages: ChatMessages  # the prompt, then the assistant's target as the last message
    kind: str  # answer | noisy | abstain | followup | conversation
    group: str  # the entry (or conversation) it came from
    # Which of the entry's questions it was made from (0: its main question; None for a
    # conversation): validation holds out whole phrasings, never an entry's main question.
    phrasing: int | None = None


@dataclass(frozen=True)
class Exchange:
    """A customer question and the reply they rated up, with the conversation before it."""

    history: tuple[tuple[str, str], ...]
    question: str
    answer: str
    group: str


@dataclass(frozen=True)
class DataOptions:
    abstain_share: float = 0.2  # abstain examples per answer example
    followup_share: float = 0.2
    noisy_share: float = 1.0  # customer-style rewrites per answer example
    seed: int = 0
    extra_hits: int = 3  # retrieved beyond top_k so a removed entry still leaves top_k hits


@dataclass
class PromptShape:
    """What the serving prompt depends on, taken from the settings."""

    count_tokens: Callable[[str], int]
    context_tokens: int
    max_new_tokens: int
    history_turns: int
    min_score: float
    top_k: int

    @classmethod
    def from_settings(cls, settings: Settings, count_tokens: Callable[[str], int]) -> PromptShape:
        return cls(
            count_tokens=count_tokens,
            context_tokens=settings.context_tokens,
            max_new_tokens=settings.max_new_tokens,
            history_turns=settings.history_turns,
            min_score=settings.clarify_threshold,
            top_k=settings.retrieval_top_k,
        )

    def messages(
        self, question: str, hits: Sequence[Hit], history: Sequence[tuple[str, str]], target: str
    ) -> ChatMessages:
        prompt = turn_messages(
            question=question,
            hits=hits,
            history=history,
            count_tokens=self.count_tokens,
            context_tokens=self.context_tokens,
            max_new_tokens=self.max_new_tokens,
            history_turns=self.history_turns,
            min_score=self.min_score,
        )
        return [*prompt, {"role": "assistant", "content": target}]


StatesAnswer = Callable[[str, Sequence[Hit]], bool]


def answer_check(embed: grounding.Embed, threshold: float, min_score: float) -> StatesAnswer:
    """Whether the passages a prompt shows state any sentence of an answer, by the grounding
    check serving applies to the model's sentences."""

    def states(answer: str, hits: Sequence[Hit]) -> bool:
        texts = [p.text for p in select_passages(list(hits), min_score)]
        if not texts:
            return False
        support = grounding.Support(texts, embed, threshold)
        return any(support.check(s).grounded for s in grounding.sentences(answer))

    return states


@dataclass
class ExampleSet:
    examples: list[Example] = field(default_factory=list)
    skipped_abstain: int = 0  # abstain examples not made: the passages stated the answer

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for ex in self.examples:
            out[ex.kind] = out.get(ex.kind, 0) + 1
        return out

    def split(self, validation: float, seed: int) -> tuple[list[Example], list[Example]]:
        """Train and validation examples. A ``validation`` share of the phrasings goes to
        validation whole (every example made from one question: its answer, noisy, abstain and
        follow-up forms), but never an entry's main question, so the model still learns every
        entry's answer and validation loss measures questions phrased in ways it has not seen,
        as customers ask them. Holding out whole entries instead left a tenth of the knowledge
        base unlearnt: the served model handed off questions about them that it could answer
        from their passages. A knowledge base with one question per entry has no such phrasing,
        and then whole entries are held out."""
        if not 0 <= validation < 1:
            raise InvalidInput("--validation-split must be at least 0 and below 1.")

        by_phrasing = any(ex.phrasing for ex in self.examples)

        def unit(ex: Example) -> tuple[str, int | None]:
            return ex.group, ex.phrasing if by_phrasing else None

        units = sorted(
            {unit(ex) for ex in self.examples if not by_phrasing or ex.phrasing != 0}, key=str
        )
        random.Random(seed).shuffle(units)
        n_val = round(len(units) * validation)
        if validation and n_val == 0 and len(units) > 1:
            n_val = 1
        held = set(units[:n_val])
        train = [ex for ex in self.examples if unit(ex) not in held]
        val = [ex for ex in self.examples if unit(ex) in held]
        return train, val


def build_examples(
    records: Sequence[Record],
    search: Search,
    shape: PromptShape,
    options: DataOptions | None = None,
    conversations: Sequence[Exchange] = (),
    states_answer: StatesAnswer | None = None,
) -> ExampleSet:
    """Chat examples for every question and paraphrase of the FAQ entries in ``records``."""
    options = options or DataOptions()
    rng = random.Random(options.seed)
    # Its own generator, so the other kinds are sampled as they were before noisy examples.
    noise_rng = random.Random(f"{options.seed}:noise")
    entries = [r for r in records if isinstance(r, Entry)]
    if not entries:
        raise InvalidInput(
            "The knowledge base has no FAQ entries to train on; import some with "
            "'chatbot kb import'."
        )
    out = ExampleSet()

    def shows(hits: Sequence[Hit], entry_id: str) -> bool:
        """Whether the prompt built from ``hits`` shows the entry's passage."""
        return entry_id in {p.id for p in select_passages(hits, shape.min_score)}

    def abstain(question: str, hits: Sequence[Hit], entry: Entry, phrasing: int) -> None:
        if states_answer is not None and states_answer(entry.answer, hits):
            out.skipped_abstain += 1
            return
        messages = shape.messages(question, list(hits), (), HANDOFF_REPLY)
        out.examples.append(Example(messages, "abstain", entry.id, phrasing))

    answered: list[tuple[str, str]] = []  # (question, answer) pairs for follow-up history
    for entry in entries:
        for phrasing, question in enumerate(entry.variants()):
            top = list(search(question, shape.top_k))
            if top and shows(top, entry.id):
                out.examples.append(Example(
                    shape.messages(question, top, (), entry.answer), "answer", entry.id, phrasing
                ))
                answered.append((question, entry.answer))
                if noise_rng.random() < options.noisy_share:
                    typed = customer_form(question, noise_rng)
                    hits = list(search(typed, shape.top_k))
                    if typed != question and shows(hits, entry.id):
                        out.examples.append(Example(
                            shape.messages(typed, hits, (), entry.answer), "noisy", entry.id,
                            phrasing,
                        ))
                if rng.random() < options.abstain_share:
                    more = search(question, shape.top_k + options.extra_hits)
                    others = [h for h in more if h.parent != entry.id][: shape.top_k]
                    if others:
                        abstain(question, others, entry, phrasing)
                if answered[:-1] and rng.random() < options.followup_share:
                    earlier = rng.choice(answered[:-1])
                    history = [("user", earlier[0]), ("assistant", earlier[1])]
                    out.examples.append(
                        Example(
                            shape.messages(question, top, history, entry.answer),
                            "followup",
                            entry.id,
                            phrasing,
                        )
                    )
            elif top:
                # Retrieval missed the entry: the prompt the model will see may hold no answer.
                abstain(question, top, entry, phrasing)
    for ex in conversations:
        hits = list(search(ex.question, shape.top_k))
        if hits:
            messages = shape.messages(ex.question, hits, ex.history, ex.answer)
            out.examples.append(Example(messages, "conversation", ex.group))
    return out


def read_conversations(path: Path, redactor: Redactor | None = None) -> list[Exchange]:
    """Exchanges from a conversations export (JSONL, one conversation a line:
    ``{"id": ..., "messages": [{"role", "content", "rating"?}, ...]}``): every assistant message
    the customer rated up, with the question it answered and the messages before it. With
    ``redactor`` (``CHATBOT_REDACT_PII``), personal data in every text is replaced first, so a
    model is never trained on it (an export from elsewhere may hold some)."""
    clean = redactor.redact if redactor is not None and redactor.enabled else str
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the conversations file ({exc}).") from exc
    out: list[Exchange] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data: Any = json.loads(line)
            messages = list(data["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"{path}:{n}: expected a JSON object with a 'messages' list ({exc})."
            ) from exc
        turns: list[tuple[str, str, Any]] = [
            (m["role"], clean(m["content"]), m.get("rating"))
            for m in messages
            if isinstance(m, dict)
            and m.get("role") in ("user", "assistant")
            and isinstance(m.get("content"), str)
        ]
        for i, (role, content, rating) in enumerate(turns):
            if role == "assistant" and rating == "up" and i and turns[i - 1][0] == "user":
                history = tuple((r, c) for r, c, _ in turns[: i - 1])
                group = f"conversation-{data.get('id', n)}"
                out.append(Exchange(history, turns[i - 1][1], content, group))
    return out
