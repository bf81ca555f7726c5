"""Personal data in free text, found and replaced by placeholders (``[email]``, ``[phone]``, ...).

Kinds (``CHATBOT_REDACT_PII`` picks which; all by default):

- ``email``: ``name@domain.tld`` (Unicode local parts too).
- ``iban``: a country code, two check digits and the account, with or without spaces; the
  length must be the country's and the ISO 13616 mod-97 checksum must hold.
- ``card``: 13 to 19 digits (spaces or dashes allowed) starting 2-6, the networks' range,
  that pass the Luhn check.
- ``national_id``: US social security numbers written ``123-45-6789`` (the ranges never
  issued are left alone).
- ``phone``: an international number (``+`` or ``00`` and 8-15 digits); a national one
  written in groups (``030 1234 5678``, ``(555) 123-4567``, 9-12 digits) or starting with 0;
  or any 7-15 digits right after a word such as "phone", "call", "mobile" or "tel".

What is *not* personal data stays: order and invoice numbers (digits after "order", "invoice",
"tracking", "ref", "#" ... are never a phone), product codes (``TX-2000``), prices
(``€1,299.00``), dates, times and quantities. ``bench/redaction_recall.py`` measures recall
and false positives on generated text; ``tests/test_redaction.py`` pins the cases.

``Redactor.redact`` is pure and cheap (regular expressions, then the checksums on the few
candidates), so it runs on every stored message, log line and export.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

KINDS = ("email", "phone", "card", "iban", "national_id")
PLACEHOLDERS = {
    "email": "[email]",
    "phone": "[phone]",
    "card": "[card]",
    "iban": "[iban]",
    "national_id": "[national id]",
}

# ISO 13616 lengths of the IBAN countries (SWIFT registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TL": 23, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20,
}

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}\b")
_IBAN_START = re.compile(r"(?<![\w])([A-Za-z]{2})(\d{2})(?=[ ]?[A-Za-z0-9])")
_CARD = re.compile(r"(?<![\w.,/-])\d(?:[ -]?\d){12,18}(?![\w]|[.,/-]\d)")
_SSN = re.compile(r"(?<![\w/.-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w]|[-/.]\d)")
_PHONE = re.compile(
    r"(?<![\w@/.,+#:-])"
    r"(?:(?P<intl>(?:\+|00)[1-9]\d{0,2})[ .-]?)?"
    r"(?P<body>\(?\d{1,5}\)?(?:[ .-]{0,2}\(?\d{1,6}\)?){0,5})"
    r"(?![\w]|[.,/:-]\d)"
)
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|call|ring|text|sms|whats ?app|fax|contact|reach|"
    r"number is|my number|handy|telefon|rufnummer|t[ée]l[ée]phone|portable|tel[ée]fono|m[óo]vil|"
    r"n[úu]mero)\W{0,3}(?:\w+\W{1,3}){0,3}$",
    re.IGNORECASE,
)
_NOT_PHONE_WORDS = re.compile(
    r"(?:\b(?:order|invoice|tracking|track|parcel|shipment|ref|reference|ticket|case|sku|item|"
    r"article|art|model|serial|part|product|code|voucher|coupon|gift card|batch|lot|"
    r"bestellung|rechnung|commande|facture|pedido|factura|no|nr)\b|#)\W{0,3}"
    r"(?:(?:number|numbers|no|nr|num|id|code|is|was|are)\W{1,3}){0,2}$",
    re.IGNORECASE,
)
_NOT_CARD_WORDS = re.compile(
    r"\b(?:order|invoice|tracking|parcel|shipment|sku|ean|gtin|upc|barcode|isbn|serial|"
    r"article|item|ref|reference)\W{0,3}(?:(?:number|no|nr|num|id|code|is|was)\W{1,3}){0,2}$",
    re.IGNORECASE,
)
_IBAN_LIKE_BEFORE = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4})* ?$")
_DATE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    if not rearranged.isalnum():
        return False
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def card_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str


@dataclass
class Redactor:
    kinds: frozenset[str] = field(default_factory=lambda: frozenset(KINDS))

    @classmethod
    def from_setting(cls, value: str) -> Redactor:
        """``CHATBOT_REDACT_PII``: comma-separated kinds, ``all``, or ``off``/empty."""
        names = {v.strip().lower() for v in value.split(",") if v.strip()}
        if names & {"off", "none", "false", "0"} or not names:
            return cls(frozenset())
        if "all" in names:
            return cls()
        unknown = names - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown personal-data kind(s) {', '.join(sorted(unknown))}; use "
                f"{', '.join(KINDS)}, all or off"
            )
        return cls(frozenset(names))

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans of personal data, in text order."""
        spans: list[Span] = []
        if not self.kinds or not text:
            return spans
        finders = (("email", self._emails), ("iban", self._ibans), ("card", self._cards),
                   ("national_id", self._ssns), ("phone", self._phones))
        for kind, finder in finders:
            if kind not in self.kinds:
                continue
            for start, end in finder(text):
                if not any(s.start < end and start < s.end for s in spans):
                    spans.append(Span(start, end, kind))
        return sorted(spans, key=lambda s: s.start)

    def redact(self, text: str) -> str:
        spans = self.find(text)
        if not spans:
            return text
        out, at = [], 0
        for span in spans:
            out.append(text[at:span.start])
            out.append(PLACEHOLDERS[span.kind])
            at = span.end
        out.append(text[at:])
        return "".join(out)

    def redact_all(self, texts: Iterable[str]) -> list[str]:
        return [self.redact(t) for t in texts]

    # Finders: (start, end) of each candidate that passes its check.

    @staticmethod
    def _emails(text: str) -> Iterable[tuple[int, int]]:
        return ((m.start(), m.end()) for m in _EMAIL.finditer(text))

    @staticmethod
    def _ibans(text: str) -> Iterable[tuple[int, int]]:
        for m in _IBAN_START.finditer(text):
            length = IBAN_LENGTHS.get(m.group(1).upper())
            if length is None:
                continue
            chars, end = [m.group(1), m.group(2)], m.end()
            count = 4
            while count < length and end < len(text):
                ch = text[end]
                if ch == " " and end + 1 < len(text) and text[end + 1].isalnum():
                    end += 1
                    continue
                if not (ch.isascii() and ch.isalnum()):
                    break
                chars.append(ch)
                count += 1
                end += 1
            if count == length and not (end < len(text) and text[end].isalnum()):
                if iban_ok("".join(chars)):
                    yield m.start(), end

    @staticmethod
    def _cards(text: str) -> Iterable[tuple[int, int]]:
        for m in _CARD.finditer(text):
            before = text[max(0, m.start() - 40):m.start()]
            if _NOT_CARD_WORDS.search(before) or _IBAN_LIKE_BEFORE.search(before):
                continue
            # The longest run of whole digit groups from the start that is a valid card:
            # "4111 1111 1111 1111 2" (a card, then a quantity) still finds the card.
            groups = list(re.finditer(r"\d+", m.group()))
            for last in range(len(groups), 0, -1):
                end = groups[last - 1].end()
                if card_ok(re.sub(r"\D", "", m.group()[:end])):
                    yield m.start(), m.start() + end
                    break

    @staticmethod
    def _ssns(text: str) -> Iterable[tuple[int, int]]:
        return ((m.start(), m.end()) for m in _SSN.finditer(text))

    @staticmethod
    def _phones(text: str) -> Iterable[tuple[int, int]]:
        for m in _PHONE.finditer(text):
            body = m.group("body").strip(" .-")
            if not body or not any(c.isdigit() for c in body):
                continue
            start, end = m.start(), m.start() + len(m.group().rstrip(" .-"))
            digits = re.sub(r"\D", "", m.group())
            before = text[max(0, start - 40):start]
            if _NOT_PHONE_WORDS.search(before) or _IBAN_LIKE_BEFORE.search(before):
                continue
            grouped = bool(re.search(r"\d[ .()-]+\d|\(", body))
            if m.group("intl"):
                ok = 8 <= len(digits) <= 15
            elif _PHONE_WORDS.search(before):
                ok = 7 <= len(digits) <= 15
            elif _DATE.match(body) or re.fullmatch(r"\d{1,2}[:.]\d{2}|\d{3}-\d{2}-\d{4}", body):
                ok = False
            elif grouped:
                ok = 9 <= len(digits) <= 12 and (body[0] in "0(" or len(digits) == 10)
            else:
                ok = body.startswith("0") and 10 <= len(digits) <= 11
            if ok:
                yield start, end
