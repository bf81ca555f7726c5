"""The knowledge base's subjects, and where a text names one.

An entry's optional ``subject`` (CONTRACT.md) is the product, place or plan it is about when
the same question exists for several of them ("Does it have free parking?" for each hotel).
Customers and agents rarely write a subject's full name: "the Belfry" for "The Cambridge
Belfry", "the Trailblazer" for "Trailblazer 40 backpack". So a subject is named by its full
name, or by a word of its name that no other subject's name holds and that is not part of the
KB's ordinary vocabulary (the words of the questions of entries about something else: "parking"
in a garage's name is no mention when every hotel has a parking question).

A KB that names no subject in the field may name them in its questions instead ("Does Acorn
Guest House have free parking?"): ``infer_subjects`` finds those names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[^\W_]+")
# Words that never single out a subject on their own.
_COMMON = frozenset(
    "the a an and or of in on at to for with from by my our your its it this that these those "
    "is are was be do does did can could will would have has had i you we they he she one ones "
    "other another hotel restaurant guest house guesthouse place shop store product plan "
    "centre center city street road north south east west new old layer base bag pack "
    "jacket coat shoes boots tent mat bottle poles lamp stove kit set pair".split()
)
MIN_WORD = 3


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class SubjectMatcher:
    """Finds the KB's subjects named in a text, in the order they are named."""

    def __init__(self, names: Iterable[str],
                 question_words: dict[str, set[str]] | None = None) -> None:
        """``question_words``: for each subject ("" for general entries), the words of its
        entries' questions; a word in the questions of anything else is no mention."""
        self.names = sorted(set(n for n in names if n.strip()))
        question_words = question_words or {}
        tokens = {name: words(name) for name in self.names}
        frequency = Counter(w for ws in tokens.values() for w in set(ws))
        self._phrases: list[tuple[re.Pattern[str], str, bool]] = []  # (pattern, name, full)
        for name, ws in tokens.items():
            if not ws:
                continue
            self._phrases.append(
                (re.compile(r"\b" + r"\W+".join(map(re.escape, ws)) + r"\b"), name, True))
            foreign = set().union(*(v for k, v in question_words.items() if k != name))
            for w in ws:
                if (frequency[w] == 1 and w not in _COMMON and w not in foreign
                        and len(w) >= MIN_WORD and not w.isdigit()):
                    self._phrases.append((re.compile(rf"\b{re.escape(w)}\b"), name, False))

    @classmethod
    def for_entries(cls, entries: Sequence[tuple[str, str]]) -> SubjectMatcher:
        """From the (subject, question) pairs of the KB's entries ("" for a general entry)."""
        question_words: dict[str, set[str]] = {}
        for subject, question in entries:
            question_words.setdefault(subject, set()).update(words(question))
        return cls({s for s, _ in entries if s}, question_words)

    def __bool__(self) -> bool:
        return bool(self.names)

    def mentions(self, text: str) -> list[str]:
        """The subjects ``text`` names, each once, least salient first: those named by one word
        of their name, then those named in full, each group in the order of mention ("a
        3-layer membrane, like the Stormshell jacket's" is about the jacket, not the Merino
        base layer)."""
        if not self.names:
            return []
        lowered = " ".join(words(text))
        found: dict[str, tuple[bool, int]] = {}
        for pattern, name, full in self._phrases:
            match = pattern.search(lowered)
            if match and (name not in found or (full, -match.start()) > (found[name][0], -found[name][1])):
                found[name] = (full, match.start())
        return sorted(found, key=found.__getitem__)


@dataclass(frozen=True)
class SubjectTable:
    """An index's subjects: each one's items, and the matcher that finds them in a text."""

    positions: dict[str, np.ndarray]  # subject -> its items' positions
    matcher: SubjectMatcher
    number: dict[str, int]  # subject -> its number in ``of_item``
    of_item: np.ndarray  # per item, its subject's number (-1: none)

    @classmethod
    def for_items(cls, subjects: Sequence[str], entries: Sequence[tuple[str, str]]) -> SubjectTable:
        """``subjects``: each item's subject ("" for none); ``entries``: the (subject,
        question) pairs of the FAQ entries, for the matcher."""
        positions: dict[str, list[int]] = {}
        for i, subject in enumerate(subjects):
            if subject:
                positions.setdefault(subject, []).append(i)
        matcher = SubjectMatcher.for_entries(entries) if positions else SubjectMatcher(())
        number = {name: n for n, name in enumerate(positions)}
        of_item = np.full(len(subjects), -1, dtype=np.int32)
        for name, where in positions.items():
            of_item[where] = number[name]
        return cls({k: np.array(v) for k, v in positions.items()}, matcher, number, of_item)

    def __bool__(self) -> bool:
        return bool(self.positions)


def shared_copies(subjects: Sequence[str], variants: Sequence[Sequence[str]]) -> np.ndarray:
    """Per item: how many subjects have one of its phrasings word for word (1 for none)."""
    subjects_of: dict[str, set[str]] = {}
    for subject, texts in zip(subjects, variants, strict=True):
        if subject:
            for text in texts:
                subjects_of.setdefault(" ".join(text.lower().split()), set()).add(subject)
    return np.array([
        max((len(subjects_of[" ".join(t.lower().split())]) for t in texts), default=1)
        if subject else 1
        for subject, texts in zip(subjects, variants, strict=True)
    ], dtype=np.float32)


# A run of capitalised words ("Acorn Guest House", "The Cambridge Belfry", "Trailblazer 40"),
# possibly joined by a short lower-case word ("Hotel du Vin", "Bed and Breakfast").
_NAME = re.compile(
    r"\b(?:[A-Z][\w'&.-]*|\d+)(?:\s+(?:(?:of|the|du|de|and|&|at|on)\s+)?(?:[A-Z][\w'&.-]*|\d+))*"
)
INFER_UP_TO = 100_000  # entries; inference is one pass, but a big KB names its subjects itself
MIN_SHARED_QUESTIONS = 3


def infer_subjects(questions: dict[str, str]) -> dict[str, str]:
    """Subjects of entries that name them in their question instead of a ``subject`` field.

    A capitalised name is a subject when other names fill the same questions, at least
    ``MIN_SHARED_QUESTIONS`` of them ("Does Acorn Guest House have free parking?" beside "Does
    Gonville Hotel have free parking?", and so on for wifi and breakfast), so "How do I reset
    my Password?" names nothing, and neither do "Can I pay with PayPal?" and "… with Klarna?".
    Then every entry whose question holds a subject's name is about it (the longest name,
    where several fit). Returns entry id -> name.
    """
    if len(questions) > INFER_UP_TO:
        return {}
    fillers: dict[str, set[str]] = {}
    for question in questions.values():
        for name, start, end in _names(question):
            template = _template(question[:start] + " <name> " + question[end:])
            fillers.setdefault(template, set()).add(name)
    shared = Counter(n for names in fillers.values() if len(names) > 1 for n in names)
    subjects = {n for n, count in shared.items() if count >= MIN_SHARED_QUESTIONS}
    out: dict[str, str] = {}
    for entry_id, question in questions.items():
        found = [name for name, _, _ in _names(question) if name in subjects]
        if found:
            out[entry_id] = max(found, key=len)
    return out


def _names(question: str) -> list[tuple[str, int, int]]:
    """Capitalised names in ``question`` with their span, the question word that starts the
    sentence ("Does", "Is") and leading articles left out."""
    out = []
    for match in _NAME.finditer(question):
        tokens = match.group(0).split()
        start = match.start()
        while tokens and (tokens[0].lower() in _QUESTION_WORDS or tokens[0].lower() in _ARTICLES):
            start = question.index(tokens[0], start) + len(tokens[0])
            tokens = tokens[1:]
        if not tokens:
            continue
        start = question.index(tokens[0], start)
        out.append((" ".join(tokens), start, match.end()))
    return out


def _template(text: str) -> str:
    return " ".join(w for w in words(text) if w not in _ARTICLES)


_QUESTION_WORDS = frozenset("does do is are can could will would what when where which who how "
                            "has have should may i my".split())
_ARTICLES = frozenset({"the", "a", "an"})
