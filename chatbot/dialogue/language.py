"""Which language a message is written in, and whether it is the knowledge base's.

py3langid (a naive Bayes model over byte n-grams, bundled with the package) is restricted to
common languages and trusted only when it is sure: short messages ("Single", "Klarna?") and
product names fool every detector, so a message counts as another language only with at least
``MIN_WORDS`` words and a probability of ``MIN_PROBABILITY``. The knowledge base's language is
detected once per version from a sample of its own texts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache

LANGUAGES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "nl": "Dutch", "pt": "Portuguese", "pl": "Polish", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "fi": "Finnish", "cs": "Czech", "tr": "Turkish", "ru": "Russian",
    "uk": "Ukrainian", "ar": "Arabic", "zh": "Chinese", "ja": "Japanese", "ko": "Korean",
    "hi": "Hindi", "el": "Greek", "hu": "Hungarian", "ro": "Romanian",
}
MIN_WORDS = 3
MIN_PROBABILITY = 0.9
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # a sentence without spaces


_loading = threading.Lock()


def load_detector() -> None:
    """Load the detector's model now (server warm-up) rather than on the first message."""
    _identifier()


def _identifier():  # type: ignore[no-untyped-def]
    # lru_cache lets every caller that arrives before the first load ends load a copy of its
    # own: 50 customers' first messages at once loaded dozens of copies of ~80 MB (an RSS peak
    # of 2.6 GiB in bench/load_test.py), so the first load is made under a lock.
    with _loading:
        return _load_identifier()


@lru_cache(maxsize=1)
def _load_identifier():  # type: ignore[no-untyped-def]
    from py3langid import langid

    identifier = langid.LanguageIdentifier.from_modelpath(
        langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True
    )
    identifier.set_languages(list(LANGUAGES))
    if hasattr(identifier, "_full_model"):
        # set_languages keeps the model of all 97 languages for a later call, which never
        # comes here: 27 MB of the server's resident memory.
        identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
    return identifier


def detect(text: str) -> tuple[str, float]:
    """(language code, probability) of ``text``."""
    code, probability = _identifier().classify(text)
    return str(code), float(probability)


def sure_language(text: str) -> str | None:
    """The language of ``text`` when the detector is sure of it, else None."""
    if len(_WORD.findall(text)) < MIN_WORDS and not _CJK.search(text):
        return None
    code, probability = detect(text)
    return code if probability >= MIN_PROBABILITY else None


@lru_cache(maxsize=64)
def _kb_language(sample: tuple[str, ...]) -> str:
    return detect(" ".join(sample))[0] if sample else "en"


def kb_language(texts: Sequence[str]) -> str:
    """The language most of the knowledge base is written in (English if it is empty)."""
    step = max(1, len(texts) // 50)
    return _kb_language(tuple(t[:300] for t in texts[::step][:50]))


def other_language(text: str, texts: Sequence[str]) -> str | None:
    """The message's language, when it is surely not the knowledge base's; else None."""
    language = sure_language(text)
    return language if language is not None and language != kb_language(texts) else None


def name(code: str) -> str:
    return LANGUAGES.get(code, code)
