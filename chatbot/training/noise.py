"""Questions as customers type them, for training examples beside the knowledge base's own.

A knowledge base's questions and paraphrases are written by staff: whole sentences, spelled
right, with a question mark. Customers write "reset pw", "item arrived broken", "Good morning,
how do i chnage my address". A model trained only on the tidy forms learned to hand over the
terse ones whose answer was right there in its passages (the demo model did so on six of its
seven fallbacks), so ``customer_form`` rewrites a question in one or two of these ways:

- ``casual``: lower case, no closing punctuation;
- ``keywords``: only the content words ("How do I reset my password?" -> "reset password");
- ``typo``: two neighbouring letters of one longer word swapped.

No greeting is put in front: serving removes a leading greeting before the prompt is built
(``dialogue.intents.classify``), so the model never sees one.
"""

from __future__ import annotations

import random
import re

_WORD = re.compile(r"[A-Za-z]+")
# Question words, auxiliaries and pronouns: what a terse message leaves out.
_FILLER = set(
    "a an the and or of to in on at for with by from as is are was were be been it its this "
    "that these those you your we our us i me my mine they them their can could would will "
    "should shall may might must do does did have has had how what when where which who why "
    "there here please any some just about so if then than also".split()
)


def casual(question: str, rng: random.Random) -> str:
    return question.strip().rstrip("?!. ").lower()


def keywords(question: str, rng: random.Random) -> str:
    words = [w.lower() for w in _WORD.findall(question)]
    kept = [w for w in words if w not in _FILLER]
    # Two words or fewer say too little to stand for the question ("return" of "Can I return
    # it?"): such a question keeps its casual form.
    return " ".join(kept) if len(kept) >= 2 else casual(question, rng)


def typo(question: str, rng: random.Random) -> str:
    spans = [m.span() for m in _WORD.finditer(question) if m.end() - m.start() >= 5]
    if not spans:
        return question
    start, end = rng.choice(spans)
    i = rng.randrange(start + 1, end - 2)  # neither the first nor the last letter
    return question[:i] + question[i + 1] + question[i] + question[i + 2:]


STYLES = {"casual": casual, "keywords": keywords, "typo": typo}


def customer_form(question: str, rng: random.Random) -> str:
    """``question`` rewritten in one or two of the styles above, the same for the same ``rng``
    state."""
    names = rng.sample(sorted(STYLES), rng.choice((1, 1, 2)))
    text = question
    for name in names:
        text = STYLES[name](text, rng)
    return text
