"""Is a generated answer supported by the passages it was given?

A sentence is supported when
- every number in it (prices, days, percentages, dates) appears in the passages,
- so does every link and e-mail address (the bundled model invents sign-in pages: "go to
  www.mywebsite.com/us/settings/..." reads close to a passage about resetting a password),
- its negation agrees with the passage sentence it is closest to ("you can return" is not
  "you cannot return": word overlap alone would pass that), and
- it is close in meaning to some passage sentence (cosine of sentence embeddings) or nearly
  all of its content words occur in the passages.
An answer is grounded when all its sentences are. An answer that is not grounded is replaced by
the passages' own text (``fallback_text``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_ADDRESS = re.compile(
    r"(?:https?://|www\.)[^\s\"'<>]*[^\s\"'<>.,;:!?)]"  # a link, without a closing full stop
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an e-mail address
    r"|\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|uk|eu|de|fr|es|it|nl|shop|store)\b(?:/[^\s\"'<>]*)?",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(no|not|never|cannot|can't|cant|won't|don't|doesn't|didn't|isn't|aren't|wasn't|"
    r"shouldn't|mustn't|unable|without|none|nothing|neither|nor)\b|n't\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = set(
    "a an the and or but if of to in on at for with by from as is are was were be been it its "
    "this that these those you your we our us i me my they them their he she his her can will "
    "would could should may might do does did have has had not no yes so than then there here "
    "what which who when where why how all any each some such only also just about into over "
    "please thank thanks".split()
)

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Grounding:
    grounded: bool
    support: float  # the weakest sentence's similarity to the passages
    unsupported: tuple[str, ...]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 1]


def split_keep_tail(text: str) -> list[str]:
    """Finished sentences of a growing text, then the unfinished rest (possibly empty)."""
    parts = re.split(r"(?<=[.!?])\s+", text)
    return [p.strip() for p in parts[:-1] if p.strip()] + [parts[-1]]


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", ".") for n in _NUMBER.findall(text)}


def _addresses(text: str) -> set[str]:
    return {a.lower().rstrip("/") for a in _ADDRESS.findall(text)}


def _negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


class Support:
    """The passages of one turn, split and embedded once, to check answer sentences against."""

    def __init__(self, passages: Sequence[str], embed: Embed, threshold: float = 0.6) -> None:
        self.passages = list(passages)
        self.embed = embed
        self.threshold = threshold
        self.sentences: list[str] = []
        self.owner: list[int] = []  # which passage each passage sentence comes from
        for index, passage in enumerate(self.passages):
            for sentence in sentences(passage):
                self.sentences.append(sentence)
                self.owner.append(index)
        self.words = _content_words(" ".join(self.passages))
        self.vectors = embed(self.sentences) if self.sentences else None

    def check(self, answer: str) -> Grounding:
        answer_sentences = sentences(answer)
        if not answer_sentences or self.vectors is None:
            return Grounding(False, 0.0, tuple(answer_sentences))
        sims = self.embed(answer_sentences) @ self.vectors.T
        unsupported: list[str] = []
        weakest = 1.0
        for i, sentence in enumerate(answer_sentences):
            best = int(np.argmax(sims[i]))
            similarity = float(sims[i, best])
            words = _content_words(sentence)
            coverage = len(words & self.words) / len(words) if words else 1.0
            # Numbers must come from the passage the sentence is about: "2 to 4 days" from the
            # UK passage does not support a sentence about Canada.
            passage = self.passages[self.owner[best]]
            ok = (
                _numbers(sentence) <= _numbers(passage)
                and _addresses(sentence) <= _addresses(passage)
                and _negated(sentence) == _negated(self.sentences[best])
                and (similarity >= self.threshold or coverage >= 0.9)
            )
            weakest = min(weakest, similarity)
            if not ok:
                unsupported.append(sentence)
        return Grounding(not unsupported, weakest, tuple(unsupported))


def check(answer: str, passages: Sequence[str], embed: Embed, threshold: float = 0.6) -> Grounding:
    return Support(passages, embed, threshold).check(answer)


def fallback_text(
    query: str, kind: str, text: str, embed: Embed, max_sentences: int = 3
) -> str:
    """The passage's own words: an FAQ answer whole, a document's most relevant sentences."""
    if kind == "faq":
        return text
    parts = sentences(text)
    if len(parts) <= max_sentences:
        return " ".join(parts)
    vecs = embed([query, *parts])
    sims = vecs[1:] @ vecs[0]
    chosen = sorted(np.argsort(-sims)[:max_sentences])
    return " ".join(parts[i] for i in chosen)
