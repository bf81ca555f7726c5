"""The redactor: personal data out, everything a support conversation needs kept."""

from __future__ import annotations

import pytest

from chatbot.privacy.redaction import Redactor, card_ok, iban_ok, luhn_ok
from chatbot.settings import Settings

R = Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Email me at jane.doe+shop@example.co.uk please", "Email me at [email] please"),
        ("jürgen.müller@beispiel.de schrieb", "[email] schrieb"),
        ("My card is 4111 1111 1111 1111, expiry 12/27", "My card is [card], expiry 12/27"),
        ("Amex 3782-822463-10005 was charged twice", "Amex [card] was charged twice"),
        ("card 5555555555554444 and 2 items", "card [card] and 2 items"),
        ("card 4111 1111 1111 1111 2 items", "card [card] 2 items"),
        ("IBAN DE89 3704 0044 0532 0130 00 is mine", "IBAN [iban] is mine"),
        ("refund to gb82west12345698765432.", "refund to [iban]."),
        ("FR1420041010050500013M02606", "[iban]"),
        ("Call me on +49 30 12345678 or 0049 30 1234 5678", "Call me on [phone] or [phone]"),
        ("my number is 555-123-4567", "my number is [phone]"),
        ("(555) 123-4567 any time", "[phone] any time"),
        ("Mobile: 07700 900123", "Mobile: [phone]"),
        ("06 12 34 56 78 le soir", "[phone] le soir"),
        ("phone 5551234", "phone [phone]"),
        ("+14155552671", "[phone]"),
        ("SSN 123-45-6789", "SSN [national id]"),
        ("a@b.co, 555-123-4567", "[email], [phone]"),
    ],
)
def test_personal_data_is_replaced(text, expected):
    assert R.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order 123456789 has not arrived",
        "order #100234 and order number 0123456789",
        "Where is my order NW-2024-55123?",
        "The TX-2000 costs €1,299.00",
        "I bought 2 x 500 ml bottles and 12 pieces for $49.99",
        "Delivered on 2024-05-01 at 10:30, or was it 01.05.2024 or 5/1/2024?",
        "invoice INV-2024-00123, Rechnung Nr. 4711081512",
        "Tracking 1Z999AA10123456784 and parcel 00340434161234567890",
        "We have 100 200 300 units in stock; SKU 4006381333931",
        "A 4111111111111112 fails Luhn so it is not a card",
        "DE89 3704 0044 0532 0130 01 has a wrong checksum",
        "firmware v2.14.3, model 3300, size 42, 15% off until 2025",
        "Open 9:00-17:30, Monday to Friday; 10115 Berlin; 1990-2024",
        "Your return label is valid for 14 days, refund within 3-5 working days",
        "SSN 000-12-3456 is not a valid number and neither is 666-12-3456",
        "ticket 2024-0042-7781 and case 555-1234567",
    ],
)
def test_what_is_not_personal_data_is_kept(text):
    assert R.redact(text) == text


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert card_ok("378282246310005")  # Amex
    assert not card_ok("1234567812345670")  # Luhn-valid but no card network starts with 1
    assert iban_ok("DE89370400440532013000") and iban_ok("gb82west12345698765432")
    assert not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE8937040044053201300")  # one character short for Germany
    assert not iban_ok("XX89370400440532013000")  # no such country


def test_kinds_are_configurable():
    only_email = Redactor.from_setting("email")
    assert only_email.redact("a@b.co, 555-123-4567") == "[email], 555-123-4567"
    assert not Redactor.from_setting("off").enabled
    assert Redactor.from_setting("off").redact("a@b.co") == "a@b.co"
    assert Redactor.from_setting("all").kinds == R.kinds
    assert Redactor.from_setting("card, iban").kinds == {"card", "iban"}
    with pytest.raises(ValueError, match="unknown personal-data kind"):
        Redactor.from_setting("email,passport")
    with pytest.raises(ValueError, match="passport"):
        Settings(redact_pii="passport")


def test_on_by_default():
    assert Settings().redactor.kinds == R.kinds


def test_spans_do_not_overlap_and_keep_text_order():
    text = "mail x@y.org, card 4111-1111-1111-1111, call +44 20 7946 0958"
    spans = R.find(text)
    assert [s.kind for s in spans] == ["email", "card", "phone"]
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
