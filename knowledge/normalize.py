"""Customer messages as retrieval sees them: noise removed, typos mended.

Customers write "card not arrived yet??", "WHERE IS MY ORDER", "hi, whree do you deliver 🙏".
Before a message is embedded and matched on keywords:

- ``clean``: emoji and other pictographs are dropped, runs of punctuation become one mark
  ("??" -> "?", "!!!" -> "!"), whitespace is collapsed. Casing is left alone: the embedding
  model and BM25 both ignore it.
- ``Speller.correct``: a word that is neither in the knowledge base's vocabulary nor a known
  English word is replaced by the closest vocabulary word (Damerau-Levenshtein distance 1, or
  2 for words of 8 letters or more; the more frequent one on a tie), so "oredring" becomes
  "ordering". Only words the knowledge base uses are ever put in, so a correction can only
  move a query towards the knowledge base's own wording; words with digits (order numbers,
  product codes), short words and known words are never touched.

SymSpell (``symspellpy``) does the candidate search; its English frequency list is the set of
known words. The KB vocabulary comes from the index's keyword texts (``Speller.for_texts``).
Building SymSpell's table of deletes for a 10k-entry KB takes most of a second, so after an
edit the next version's speller is the previous one with the changed words' entries updated
(``Speller.updated``) rather than a new one.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

_PUNCT_RUN = re.compile(r"([?!.,;:])[?!.,;:]+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
MIN_LENGTH = 4  # shorter words are too often right as they are ("amex", "ok", "tv")
LONG_WORD = 8  # from this length, two edits are allowed


def clean(text: str) -> str:
    """The message without pictographs, repeated punctuation and extra whitespace."""
    kept = "".join(
        " " if unicodedata.category(ch) in ("So", "Cs", "Co") or ch in "\ufe0f\u200d" else ch
        for ch in text
    )
    return _SPACES.sub(" ", _PUNCT_RUN.sub(r"\1", kept)).strip()


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Known English words (SymSpell's 82,765-word frequency list)."""
    listing = resources.files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt")
    return frozenset(line.split(" ", 1)[0] for line in listing.read_text("utf-8").splitlines())


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """How often each (lower-cased) word occurs in ``texts``: a speller's vocabulary."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w.lower() for w in _WORD.findall(text))
    return counts


class _Table:
    """SymSpell's table of one vocabulary, changed in place from version to version."""

    def __init__(self, vocabulary: Counter[str]) -> None:
        from symspellpy import SymSpell

        self.symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        self.vocabulary = vocabulary  # what the table holds now
        self.lock = threading.Lock()  # a lookup must not see a change half made
        for word, count in vocabulary.items():
            if _listed(word):
                self.symspell.create_dictionary_entry(word, count)

    def change_to(self, vocabulary: Counter[str]) -> None:
        with self.lock:
            old = self.vocabulary
            for word, count in old.items():
                if _listed(word) and vocabulary.get(word) != count:
                    self.symspell.delete_dictionary_entry(word)
            for word, count in vocabulary.items():
                if _listed(word) and old.get(word) != count:
                    self.symspell.create_dictionary_entry(word, count)
            self.vocabulary = vocabulary


class Speller:
    """Mends typos towards the words of one knowledge base."""

    def __init__(self, vocabulary: Counter[str], table: _Table | None = None) -> None:
        self.vocabulary = vocabulary
        self._table = table if table is not None else _Table(vocabulary)

    @classmethod
    def for_texts(cls, texts: Iterable[str]) -> Speller:
        return cls(word_counts(texts))

    def updated(self, removed: Iterable[str], added: Iterable[str]) -> Speller:
        """The speller of this vocabulary without the words of the ``removed`` texts and with
        those of the ``added`` ones, made by changing this speller's table in place. This
        speller then suggests from the new table too (its ``known`` words stay its own), which
        suits the version being replaced; a speller whose vocabulary must stay exact (a fold
        of the knowledge base) is built with ``for_texts``."""
        vocabulary = self.vocabulary.copy()
        vocabulary.subtract(word_counts(removed))
        vocabulary.update(word_counts(added))
        vocabulary = Counter({w: c for w, c in vocabulary.items() if c > 0})
        self._table.change_to(vocabulary)
        return Speller(vocabulary, self._table)

    def known(self, word: str) -> bool:
        return word in self.vocabulary or word in english_words()

    def suggestion(self, word: str) -> str | None:
        """The vocabulary word ``word`` was probably meant to be, or None to keep it."""
        lower = word.lower()
        if len(lower) < MIN_LENGTH or self.known(lower) or "'" in lower:
            return None
        from symspellpy import Verbosity

        distance = 2 if len(lower) >= LONG_WORD else 1
        with self._table.lock:
            found = self._table.symspell.lookup(lower, Verbosity.CLOSEST,
                                                max_edit_distance=distance)
        if not found:
            return None
        best = max(found, key=lambda s: (-s.distance, s.count))
        return best.term

    def correct(self, text: str) -> str:
        def mend(match: re.Match[str]) -> str:
            word = match.group(0)
            better = self.suggestion(word)
            return word if better is None else better

        return _WORD.sub(mend, text)


def _listed(word: str) -> bool:
    """Whether the word goes into SymSpell's table (shorter ones are never suggested)."""
    return len(word) >= MIN_LENGTH - 1
