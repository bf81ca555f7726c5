"""Moderation: word lists and patterns checked on what comes in and what goes out.

Passages and history are data, never instructions; this module is the second line behind that
prompt design, for a model that follows an instruction anyway.

- **Input** (``check_input``), on the customer's message: ``injection`` (attempts to change the
  bot's instructions or role, or to see its prompt; English, German, French, Spanish, Italian,
  Dutch; chat-template tokens), ``harmful`` (requests for weapons, drugs, malware),
  ``self_harm``, and ``blocked`` (the operator's own list). An injection never reaches the
  model: the turn is answered from the knowledge base's own text, or with a fixed refusal when
  the knowledge base has nothing; the message is stored flagged and left out of later prompts.
  Harmful requests get a fixed refusal (self-harm: where to find help). Angry or rude
  customers are *not* refused: a frustrated customer still gets an answer.
- **Output** (``check_output``), on every generated sentence before the customer sees it:
  fragments of the system prompt, insults, a changed role ("I am now DAN"), harmful content,
  the operator's blocked list, and promises (refunds, discounts, vouchers, compensation, codes)
  that the passages do not make. A flagged sentence stops generation and the customer gets the
  knowledge base's text instead, as for an unsupported sentence.
- **Passages** (``sanitize``): sentences of a knowledge-base passage that address the model
  ("ignore previous instructions and ...", "note to the AI: ...") are dropped before the
  passage is shown to the model, used as grounding support or quoted to the customer.

``CHATBOT_MODERATION=false`` turns it off. ``CHATBOT_MODERATION_FILE`` names a JSON file that
adds to the built-in lists: ``{"input": {"blocked": [regex, ...], "injection": [...], ...},
"output": {"blocked": [...], "insult": [...], ...}, "words": {"input": [word, ...],
"output": [word, ...]}}`` (words match whole, case-insensitively).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import InvalidInput

_I = re.IGNORECASE
_RULES = r"(instructions?|rules|guidelines|prompts?|directions|programming|restrictions|guardrails|constraints|system message)"
_PRIOR = r"(all |any |every |your |the |my |these |those |previous |prior |above |earlier |preceding |initial |original |of )*"

INJECTION = [
    rf"\b(ignore|disregard|forget|override|bypass)\s+{_PRIOR}{_RULES}",
    r"\b(reveal|show|print|repeat|recite|display|output|leak|tell me|give me|share|write out|"
    r"what (is|are|were)|translate|summari[sz]e)\s+(me\s+)?(all\s+)?(of\s+)?(your|the (system|hidden|secret|"
    r"original|initial|developer))\s+((system|initial|original|hidden|secret|exact|full|complete|"
    r"first|previous)\s+)?(instructions|prompt|system message|programming|configuration)\b",
    r"\bsystem[\s-]?prompt\b|\binitial prompt\b|\bhidden (prompt|instructions)\b",
    r"\b(you are|you're) now (a|an|my|the|in|free|unrestricted|(?-i:DAN))\b|\b(you are|you're) no longer "
    r"(bound|restricted|limited|an? (assistant|ai|bot|chatbot))\b|\bfrom now on,? (you|act|answer|reply|respond|always)\b",
    r"\b(act|behave|respond|answer) as (if you were |though you were )?(an? )?(unrestricted|unfiltered|uncensored|evil|jailbroken|different|new|dan)\b",
    r"\bpretend (to be|you are|that you|you're)\b|\brole-?play (as|that)\b|\blet'?s play a game\b",
    r"\b(developer|god|admin|debug|sudo) mode\b|\bjailbreak|\bdo anything now\b|(?-i:\bDAN\b)",
    r"<\|?(im_start|im_end|system|endoftext|assistant)\|?>|\[/?INST\]|<</?SYS>>|^\s*#{2,}\s*(system|instruction)",
    r"\bnew (instructions|rules|persona|role)\s*:",
    r"\byour (new )?(role|persona|task|job) is (now|to)\b",
    # German, French, Spanish, Italian, Dutch.
    r"\b(ignorier\w*|vergiss|missachte\w*)\b.{0,40}\b(anweisungen|regeln|instruktionen|vorgaben)\b",
    r"\b(zeig|nenn|verrat|gib)\w*\b.{0,20}\b(deine[nm]?|den|die) (system-?prompt|anweisungen|regeln)\b|\bdu bist (jetzt|nun|ab sofort)\b",
    r"\b(ignore[rz]|oublie[rz]?|ignore (toutes |tous )?(les|tes|vos))\b.{0,40}\b(instructions|consignes|règles)\b|\btu es (maintenant|désormais)\b",
    r"\b(montre|affiche|révèle|donne|dis)[sz]?\b.{0,15}\b(tes|vos|les) (instructions|consignes|règles)\b",
    r"\b(ignora\w*|olvida\w*|descarta\w*)\b.{0,40}\b(instrucciones|reglas|indicaciones|istruzioni|regole)\b",
    r"\b(muestra|revela|dime|mostra|rivela|dimmi)\w*\b.{0,15}\b(tus|las|le|tue) (instrucciones|reglas|istruzioni|regole)\b|\bahora eres\b|\bora sei\b",
    r"\b(negeer|vergeet)\b.{0,40}\b(instructies|regels|opdrachten)\b|\bje bent nu\b",
]
HARMFUL = [
    r"\b(make|build|synthesi[sz]e|cook|manufacture|assemble|produce|recipe for|instructions for)\b.{0,40}\b(bombs?|explosives?|detonators?|pipe bombs?|meth(amphetamine)?|nerve agents?|sarin|ricin|napalm|molotov|untraceable (gun|firearm)s?|bioweapons?)\b",
    r"\b(write|create|code|build|make)\b.{0,25}\b(malware|ransomware|keyloggers?|computer virus|trojans?|phishing (emails?|pages?|sites?|kits?))\b",
    r"\bhow (do i|to|can i)\b.{0,30}\b(poison|kill|murder|stab|shoot)\b.{0,20}\b(someone|somebody|a person|people|him|her|my)\b",
]
SELF_HARM = [
    r"\b(kill|hurt|harm|cut) (myself|me)\b|\bsuicid(e|al)\b|\bend (my|it all|my life)\b|\bwant to die\b",
]
LEAK = [
    r"customer-support assistant|using only the facts in the passages|passages are reference text|"
    r"</?passages>|\bsystem prompt\b|\bmy (instructions|system message|prompt) (is|are|say)\b",
]
INSULT = [
    r"\b(idiot|idiots|idiotic|stupid|moron|morons|dumb|dumbass|loser|pathetic|imbecile|"
    r"worthless|incompetent|clown|shut up|go away|get lost|dummkopf|blöd|idiota|imbécile|"
    r"crétin|stupide|estúpido|tonto|scemo|stupido|sukkel)\b",
]
ROLE = [
    r"(?-i:\bDAN\b)|\bdeveloper mode\b|\bjailbr(oken|eak)\b|\bI am now (a|an|your|no longer)\b|"
    r"\bI (have|follow) no (restrictions|rules|limits|guidelines)\b|"
    r"\bas an? (unrestricted|unfiltered|uncensored|evil) (ai|assistant|model)\b",
]
PROMISE = re.compile(
    r"\b(refunds?|refunded|reimburs\w*|discounts?|\d+ ?(%|percent) off|vouchers?|coupons?|"
    r"promo(tion)? codes?|free of charge|for free|compensat\w*|store credit|gift cards?|"
    r"money back|cash ?back|price match\w*)\b", _I)
CODE = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9-]{4,}\b")  # e.g. FREE90
# Passage sentences that talk to the model instead of the customer.
ADDRESSED = [r"\b(note|message|instructions?|reminder)s? (to|for) (the )?(ai|assistant|bot|chatbot|model|llm)\b",
             r"\b(ai|assistant|chatbot|language model|llm)s?\b.{0,30}\b(must|should|shall|always)\b"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Flag:
    direction: str  # input | output
    category: str
    match: str


def _compile(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    return [re.compile(p, _I | re.MULTILINE) for p in patterns]


def _words(words: Iterable[str]) -> list[re.Pattern[str]]:
    return [re.compile(rf"(?<!\w){re.escape(w.strip())}(?!\w)", _I) for w in words if w.strip()]


@dataclass
class Moderator:
    enabled: bool = True
    input_rules: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    output_rules: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    addressed: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def build(cls, enabled: bool = True, extra: dict[str, Any] | None = None) -> Moderator:
        extra = extra or {}
        inputs = {"injection": INJECTION, "harmful": HARMFUL, "self_harm": SELF_HARM,
                  "blocked": []}
        # A generated sentence that repeats an instruction to the model (planted in a passage
        # or the history) is withheld even when it is otherwise close to the passages.
        outputs = {"leak": LEAK, "insult": INSULT, "role": ROLE, "harmful": HARMFUL,
                   "injection": INJECTION + ADDRESSED, "blocked": []}
        rules_in = {k: _compile(v + list(extra.get("input", {}).get(k, []))) for k, v in inputs.items()}
        rules_out = {k: _compile(v + list(extra.get("output", {}).get(k, []))) for k, v in outputs.items()}
        for direction, rules in (("input", rules_in), ("output", rules_out)):
            unknown = set(extra.get(direction, {})) - set(rules)
            if unknown:
                raise InvalidInput(f"Unknown moderation categories for {direction}: "
                                   f"{', '.join(sorted(unknown))}; use {', '.join(rules)}.")
            rules["blocked"] += _words(extra.get("words", {}).get(direction, []))
        return cls(enabled, rules_in, rules_out, _compile(INJECTION + ADDRESSED))

    @classmethod
    def from_settings(cls, enabled: bool, path: str) -> Moderator:
        extra: dict[str, Any] = {}
        if path:
            try:
                extra = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
                if not isinstance(extra, dict):
                    raise ValueError("expected a JSON object")
                cls.build(True, extra)  # every pattern compiles
            except (OSError, ValueError, re.error, TypeError, AttributeError) as exc:
                raise InvalidInput(f"CHATBOT_MODERATION_FILE {path}: {exc}") from exc
        return cls.build(enabled, extra)

    @staticmethod
    def _first(rules: dict[str, list[re.Pattern[str]]], text: str, direction: str) -> Flag | None:
        for category, patterns in rules.items():
            for pattern in patterns:
                found = pattern.search(text)
                if found:
                    return Flag(direction, category, found.group(0))
        return None

    def check_input(self, text: str) -> Flag | None:
        return self._first(self.input_rules, text, "input") if self.enabled else None

    def check_output(self, sentence: str, passages: Sequence[str]) -> Flag | None:
        """A generated sentence the customer must not see (None: it may be shown)."""
        if not self.enabled:
            return None
        flag = self._first(self.output_rules, sentence, "output")
        if flag is not None:
            return flag
        source = " ".join(passages)
        lowered = source.lower()
        for promise in PROMISE.finditer(sentence):
            if promise.group(0).lower() not in lowered:
                return Flag("output", "promise", promise.group(0))
        for code in CODE.finditer(sentence):
            if code.group(0) not in source:
                return Flag("output", "promise", code.group(0))
        return None

    def sanitize(self, passage: str) -> str:
        """The passage without sentences that address the model."""
        if not self.enabled or not any(p.search(passage) for p in self.addressed):
            return passage
        kept = [s for s in _SENTENCE.split(passage)
                if s.strip() and not any(p.search(s) for p in self.addressed)]
        return " ".join(kept)
