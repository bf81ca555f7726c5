"""Redaction recall and false positives on generated customer messages.

    .venv/bin/python bench/redaction_recall.py [--n 1000] [--seed 7] [--show-misses]

Generates ``--n`` messages (at least 500) from templates: half carry one piece of personal
data (email, phone, card, IBAN, US SSN; in many national formats, with and without a hint
word such as "call me on"; unformatted US numbers like 5551234567 are among them, and
without a hint word they are missed on purpose), half carry things that are *not* personal
data and must survive (order and invoice numbers, bare digit runs, tracking numbers, SKUs and
EANs, product codes like TX-2000, prices, dates, times, quantities, postcodes, versions).
Every card passes Luhn and every IBAN its mod-97 check, as real ones do; some cards and IBANs
are corrupted by one digit and count as negatives (a mistyped number is not a valid one).

Prints, per kind, recall (the value is gone from the redacted text) and, per kind of
negative, the false-positive rate (the value was changed).
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatbot.privacy.redaction import IBAN_LENGTHS, Redactor, luhn_ok  # noqa: E402

FIRST = ["jane", "omar", "li", "sofia", "jürgen", "amélie", "raj", "kwame", "ana", "tom"]
LAST = ["doe", "smith", "müller", "dupont", "garcia", "okafor", "chen", "rossi", "nowak"]
DOMAINS = ["example.com", "mail.example.co.uk", "shop-example.de", "example.fr", "post.example.org",
           "uni.example.edu", "example.io"]

POSITIVE_TEMPLATES = [
    "Hi, you can reach me at {v}.",
    "{v}",
    "My details: {v}, thanks",
    "please send the invoice to {v} asap",
    "The refund should go to {v}",
    "I wrote from {v} yesterday but got no answer",
    "Contact: {v} (evenings)",
    "is {v} correct?",
]
HINTED = {  # hint words a customer puts before the value
    "phone": ["call me on {v}", "my phone number is {v}", "mobile: {v}", "Tel. {v}",
              "text me at {v} please", "you can reach me on {v}", "WhatsApp {v}",
              "meine Telefonnummer ist {v}", "mon numéro de téléphone: {v}"],
    "card": ["my card number is {v}", "I paid with card {v}", "Visa {v}", "charge {v} again"],
    "iban": ["IBAN: {v}", "please refund to my account {v}", "Kontonummer {v}"],
    "email": ["email me at {v}", "my e-mail is {v}"],
    "national_id": ["SSN {v}", "my social security number is {v}"],
}
NEGATIVE_TEMPLATES = [
    "Where is order {v}?",
    "I ordered {v} last week",
    "It says {v} on the box",
    "{v}",
    "The total was {v} and nothing arrived",
    "Regarding {v}, can you help?",
]


def email(rng: random.Random) -> str:
    sep = rng.choice([".", "_", "", "-"])
    local = rng.choice(FIRST) + sep + rng.choice(LAST)
    if rng.random() < 0.3:
        local += str(rng.randint(1, 99))
    if rng.random() < 0.15:
        local += "+shop"
    return local + "@" + rng.choice(DOMAINS)


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def phone(rng: random.Random) -> str:
    style = rng.randrange(9)
    if style == 0:  # US
        a, b, c = digits(rng, 3), digits(rng, 3), digits(rng, 4)
        a = str(rng.randint(2, 9)) + a[1:]
        return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}",
                           f"+1-{a}-{b}-{c}", f"{a}{b}{c}"])
    if style == 1:  # Germany
        return rng.choice([f"+49 30 {digits(rng, 8)}", f"030 {digits(rng, 4)} {digits(rng, 4)}",
                           f"0049 89 {digits(rng, 7)}", f"+49 (0)30 {digits(rng, 3)} {digits(rng, 5)}",
                           f"0171 {digits(rng, 7)}"])
    if style == 2:  # UK
        return rng.choice([f"07700 {digits(rng, 6)}", f"+44 7700 {digits(rng, 6)}",
                           f"020 {digits(rng, 4)} {digits(rng, 4)}",
                           f"+44 (0)20 {digits(rng, 4)} {digits(rng, 4)}"])
    if style == 3:  # France
        pairs = " ".join(digits(rng, 2) for _ in range(4))
        dotted = "01." + ".".join(digits(rng, 2) for _ in range(4))
        return rng.choice([f"06 {pairs}", f"+33 6 {pairs}", dotted])
    if style == 4:  # Spain, Italy, Netherlands
        return rng.choice([f"+34 6{digits(rng, 2)} {digits(rng, 3)} {digits(rng, 3)}",
                           f"+39 3{digits(rng, 2)} {digits(rng, 7)}", f"+31 6 {digits(rng, 8)}",
                           f"06-{digits(rng, 8)}"])
    if style == 5:  # India, Nigeria, Brazil
        return rng.choice([f"+91 98{digits(rng, 3)} {digits(rng, 5)}",
                           f"+234 80{digits(rng, 1)} {digits(rng, 3)} {digits(rng, 4)}",
                           f"+55 11 9{digits(rng, 4)}-{digits(rng, 4)}"])
    if style == 6:  # compact international
        return "+" + str(rng.randint(30, 49)) + digits(rng, rng.randint(8, 10))
    if style == 7:  # national, no separators, trunk prefix
        return "0" + str(rng.randint(1, 9)) + digits(rng, rng.randint(8, 9))
    return f"00{rng.randint(30, 49)} {digits(rng, 3)} {digits(rng, 6)}"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + digits(rng, length - len(prefix) - 1)
    for check in string.digits:
        if luhn_ok(body + check):
            return body + check
    raise AssertionError


def card(rng: random.Random, valid: bool = True) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        number, groups = luhn_complete("4", 16, rng), (4, 4, 4, 4)
    elif kind == 1:
        number, groups = luhn_complete(str(rng.randint(51, 55)), 16, rng), (4, 4, 4, 4)
    elif kind == 2:
        number, groups = luhn_complete(rng.choice(["34", "37"]), 15, rng), (4, 6, 5)
    else:
        number, groups = luhn_complete("6011", 16, rng), (4, 4, 4, 4)
    if not valid:  # one digit changed: Luhn catches every single-digit error
        i = rng.randrange(1, len(number))
        number = number[:i] + str((int(number[i]) + rng.randint(1, 9)) % 10) + number[i + 1:]
    sep = rng.choice([" ", "-", ""])
    parts, at = [], 0
    for g in groups:
        parts.append(number[at:at + g])
        at += g
    return sep.join(parts)


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(["DE", "GB", "FR", "NL", "ES", "IT", "BE", "AT", "CH", "PL"])
    length = IBAN_LENGTHS[country]
    if country in ("GB", "NL"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + digits(rng, length - 8)
    else:
        bban = digits(rng, length - 4)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    value = f"{country}{check:02d}{bban}"
    if not valid:
        i = rng.randrange(4, len(value))
        while not value[i].isdigit():
            i = rng.randrange(4, len(value))
        value = value[:i] + str((int(value[i]) + rng.randint(1, 9)) % 10) + value[i + 1:]
    if rng.random() < 0.6:
        value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value if rng.random() < 0.9 else value.lower()


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"


def negative(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["order", "invoice", "tracking", "sku", "product", "price", "date", "time",
                       "quantity", "postcode", "version", "bad_card", "bad_iban", "year_range",
                       "bare_number"])
    value = {
        "order": lambda: rng.choice([f"#{digits(rng, 6)}", f"order {digits(rng, 9)}",
                                     f"order number {digits(rng, 10)}", f"NW-{digits(rng, 7)}",
                                     f"Order No. {digits(rng, 8)}"]),
        "invoice": lambda: rng.choice([f"INV-2024-{digits(rng, 5)}", f"invoice {digits(rng, 10)}",
                                       f"Rechnung Nr. {digits(rng, 9)}"]),
        "tracking": lambda: rng.choice([f"1Z{digits(rng, 3)}AA1{digits(rng, 10)}",
                                        f"tracking number {digits(rng, 12)}",
                                        f"parcel 00{digits(rng, 18)}", f"JD{digits(rng, 16)}"]),
        "sku": lambda: rng.choice([f"SKU {digits(rng, 13)}", f"EAN {digits(rng, 13)}",
                                   f"item {digits(rng, 8)}", f"art. {digits(rng, 6)}"]),
        "product": lambda: rng.choice(["TX-2000", "TX-2000 Pro", "AB-12/34", "Model 3300",
                                       "X5-100", "size 42", "e-bike E-500", "SP-3 2024"]),
        "price": lambda: rng.choice([f"€{rng.randint(1, 9)},{digits(rng, 3)}.00",
                                     f"${rng.randint(10, 999)}.99", f"{rng.randint(10, 999)},50 €",
                                     f"EUR {rng.randint(1000, 99999)}", f"£{rng.randint(1, 99)}"]),
        "date": lambda: rng.choice([f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)}",
                                    f"{rng.randint(10, 28)}.0{rng.randint(1, 9)}.2024",
                                    f"{rng.randint(1, 12)}/{rng.randint(10, 28)}/2024",
                                    f"May {rng.randint(1, 28)}, 2024"]),
        "time": lambda: rng.choice([f"{rng.randint(8, 20)}:{rng.randint(10, 59)}",
                                    "between 9:00 and 17:30", f"{rng.randint(1, 12)}pm"]),
        "quantity": lambda: rng.choice([f"{rng.randint(2, 9)} x {rng.randint(100, 999)} ml",
                                        f"{rng.randint(100, 999)} {rng.randint(100, 999)} units",
                                        f"{rng.randint(2, 50)} pieces", f"{rng.randint(1, 99)}%",
                                        f"{rng.randint(1000, 5000)} km"]),
        "postcode": lambda: rng.choice([f"{digits(rng, 5)} Berlin", "SW1A 1AA", f"75{digits(rng, 3)} Paris",
                                        f"NY 100{digits(rng, 2)}"]),
        "version": lambda: rng.choice([f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                                       f"firmware 2.{rng.randint(0, 9)}.{digits(rng, 4)}"]),
        "bad_card": lambda: card(rng, valid=False),
        "bad_iban": lambda: iban(rng, valid=False),
        "year_range": lambda: f"{rng.randint(1990, 2010)}-{rng.randint(2011, 2024)}",
        # A bare run of digits with no hint either way (an order number the customer pasted):
        # the same shape as an unformatted US phone number, which the phone rule leaves alone.
        "bare_number": lambda: str(rng.randint(2, 9)) + digits(rng, 9),
    }[kind]()
    return kind, value


def generate(n: int, seed: int) -> list[tuple[str, str, str, bool]]:
    """(kind, value, message, is_personal) for ``n`` messages."""
    rng = random.Random(seed)
    makers = {"email": email, "phone": phone, "card": card, "iban": iban, "national_id": ssn}
    samples = []
    for i in range(n):
        if i % 2 == 0:
            kind = rng.choice(list(makers))
            value = makers[kind](rng)
            templates = POSITIVE_TEMPLATES + HINTED[kind] * 2
            samples.append((kind, value, rng.choice(templates).format(v=value), True))
        else:
            kind, value = negative(rng)
            samples.append((kind, value, rng.choice(NEGATIVE_TEMPLATES).format(v=value), False))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    if args.n < 500:
        parser.error("--n must be at least 500")
    redactor = Redactor()
    totals, hits, misses = Counter(), Counter(), []
    for kind, value, message, personal in generate(args.n, args.seed):
        out = redactor.redact(message)
        totals[kind] += 1
        if personal:
            if value not in out:
                hits[kind] += 1
            else:
                misses.append(("missed", kind, message, out))
        elif value not in out:
            hits[kind] += 1
            misses.append(("false positive", kind, message, out))
    personal_kinds = ["email", "phone", "card", "iban", "national_id"]
    print(f"{args.n} generated messages (seed {args.seed})\n")
    print(f"{'personal data':<14} {'n':>5} {'recall':>8}")
    for kind in personal_kinds:
        print(f"{kind:<14} {totals[kind]:>5} {hits[kind] / max(1, totals[kind]):>8.3f}")
    n_pos = sum(totals[k] for k in personal_kinds)
    print(f"{'all':<14} {n_pos:>5} {sum(hits[k] for k in personal_kinds) / n_pos:>8.3f}\n")
    print(f"{'not personal':<14} {'n':>5} {'false positive rate':>20}")
    negatives = sorted(k for k in totals if k not in personal_kinds)
    for kind in negatives:
        print(f"{kind:<14} {totals[kind]:>5} {hits[kind] / totals[kind]:>20.3f}")
    n_neg = sum(totals[k] for k in negatives)
    print(f"{'all':<14} {n_neg:>5} {sum(hits[k] for k in negatives) / n_neg:>20.3f}")
    if args.show_misses:
        for what, kind, message, out in misses:
            print(f"\n{what} ({kind}): {message!r}\n  -> {out!r}")


if __name__ == "__main__":
    main()
