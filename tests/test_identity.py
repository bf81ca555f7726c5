"""Signed visitor identity: the canonical form, forgeries, replays and the README examples."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chatbot.errors import ChatbotError, Forbidden, InvalidInput
from chatbot.identity import (
    MAX_AGE_S,
    MAX_CLOCK_SKEW_S,
    VerifiedVisitor,
    canonical_string,
    sign_identity,
    verify_identity,
)

SECRET = "change-me-to-a-long-random-secret"
TS = 1_700_000_000
# A fixed vector, also printed in the README, so other languages can check their code.
VECTOR = "1700000000.373eca8fa2c0571943d921d3a97047ba8c32542bdcb63c1705be286e34a9dfdd"
README = Path(__file__).resolve().parents[1] / "README.md"


def payload(**overrides):
    values = {"user_id": "u-42", "name": "Ada Lovelace", "email": "ada@example.com"}
    values.update({k: v for k, v in overrides.items() if k != "signature"})
    token = sign_identity(
        SECRET, values["user_id"], values.get("name") or "", values.get("email") or "", TS
    )
    values["signature"] = overrides.get("signature", token)
    return values


def verify(data, **kwargs):
    kwargs.setdefault("now", TS + 10)
    return verify_identity(SECRET, data, **kwargs)


def test_forbidden_is_a_403_chatbot_error():
    assert issubclass(Forbidden, ChatbotError)
    assert Forbidden.status == 403


def test_the_canonical_string_and_a_fixed_vector():
    assert canonical_string("u-42", "Ada", "a@b.c", TS) == "1700000000\nu-42\nAda\na@b.c"
    assert sign_identity(SECRET, "u-42", "Ada Lovelace", "ada@example.com", TS) == VECTOR
    expected = hmac.new(
        SECRET.encode(), b"1700000000\nu-42\nAda Lovelace\nada@example.com", hashlib.sha256
    ).hexdigest()
    assert VECTOR == f"{TS}.{expected}"


def test_a_signed_visitor_verifies():
    visitor = verify(payload())
    assert visitor == VerifiedVisitor("u-42", "Ada Lovelace", "ada@example.com", TS)
    assert visitor.to_dict() == {
        "user_id": "u-42",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
    }


def test_timestamp_defaults_to_now():
    token = sign_identity(SECRET, "u-1")
    visitor = verify_identity(SECRET, {"user_id": "u-1", "signature": token})
    assert visitor.user_id == "u-1" and visitor.name == "" and visitor.email == ""


def test_name_and_email_are_optional_and_sign_as_empty_strings():
    token = sign_identity(SECRET, "u-1", timestamp=TS)
    for data in (
        {"user_id": "u-1", "signature": token},
        {"user_id": "u-1", "name": "", "email": None, "signature": token},
    ):
        assert verify(data).name == ""
    with pytest.raises(Forbidden):
        verify({"user_id": "u-1", "name": "Eve", "signature": token})


def test_unicode_and_separators_in_ids_are_signed_exactly():
    data = payload(user_id="auth0|123", name="Zoë Ångström", email="zoë@exämple.de")
    assert verify(data).name == "Zoë Ångström"
    # Not normalised: the NFD spelling of the same name is a different claim.
    with pytest.raises(Forbidden):
        verify({**data, "name": "Zoe\u0308 Ångström"})


@pytest.mark.parametrize(
    "field, value",
    [("user_id", "u-43"), ("name", "Mallory"), ("email", "mallory@example.com")],
)
def test_changing_any_signed_field_is_refused(field, value):
    data = payload()
    data[field] = value
    with pytest.raises(Forbidden, match="does not match"):
        verify(data)


def test_moving_text_between_fields_is_refused():
    token = sign_identity(SECRET, "u", "a b", "", TS)
    with pytest.raises(Forbidden):
        verify({"user_id": "u", "name": "a", "email": " b", "signature": token})


def test_a_signature_made_with_another_secret_is_refused():
    token = sign_identity("another-secret", "u-42", "Ada Lovelace", "ada@example.com", TS)
    with pytest.raises(Forbidden, match="does not match"):
        verify(payload(signature=token))


def test_a_changed_timestamp_is_refused():
    data = payload()
    digest = data["signature"].split(".")[1]
    with pytest.raises(Forbidden, match="does not match"):
        verify({**data, "signature": f"{TS + 3600}.{digest}"}, now=TS + 3600)


def test_uppercase_hex_is_the_same_signature():
    data = payload()
    ts, digest = data["signature"].split(".")
    assert verify({**data, "signature": f"{ts}.{digest.upper()}"}).user_id == "u-42"


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        123,
        ["1700000000.ab"],
        "373eca8fa2c0571943d921d3a97047ba8c32542bdcb63c1705be286e34a9dfdd",  # no timestamp
        "1700000000.373eca8f",  # truncated
        "1700000000." + "g" * 64,  # not hex
        "-1." + "a" * 64,
        "1700000000.373eca8fa2c0571943d921d3a97047ba8c32542bdcb63c1705be286e34a9dfdd ",
        "1700000000 373eca8fa2c0571943d921d3a97047ba8c32542bdcb63c1705be286e34a9dfdd",
    ],
)
def test_missing_or_malformed_signatures_are_refused(signature):
    data = payload()
    data["signature"] = signature
    with pytest.raises(Forbidden, match="missing or malformed"):
        verify(data)


def test_a_signature_without_a_field_is_refused():
    data = payload()
    del data["signature"]
    with pytest.raises(Forbidden):
        verify(data)


def test_expired_and_future_signatures_are_refused():
    data = payload()
    assert verify(data, now=TS + MAX_AGE_S).user_id == "u-42"
    with pytest.raises(Forbidden, match="expired"):
        verify(data, now=TS + MAX_AGE_S + 1)
    with pytest.raises(Forbidden, match="expired"):
        verify(data, now=TS + 61, max_age=60)
    assert verify(data, now=TS - MAX_CLOCK_SKEW_S).user_id == "u-42"
    with pytest.raises(Forbidden, match="future"):
        verify(data, now=TS - MAX_CLOCK_SKEW_S - 1)


def test_an_empty_server_secret_verifies_nothing():
    data = payload()
    with pytest.raises(Forbidden, match="CHATBOT_WIDGET_SECRET"):
        verify_identity("", data, now=TS)
    # An empty-key HMAC made by an attacker does not help either.
    forged = f"{TS}." + hmac.new(
        b"", canonical_string("u-42", "Ada Lovelace", "ada@example.com", TS).encode(),
        hashlib.sha256,
    ).hexdigest()
    with pytest.raises(Forbidden):
        verify_identity("", {**data, "signature": forged}, now=TS)


def test_the_ts_field_must_agree_with_the_signature():
    data = payload()
    assert verify({**data, "ts": TS}).issued_at == TS
    assert verify({**data, "ts": str(TS)}).issued_at == TS
    for wrong in (TS + 1, "soon", True):
        with pytest.raises(InvalidInput, match="ts"):
            verify({**data, "ts": wrong})


@pytest.mark.parametrize(
    "data, needle",
    [
        (None, "object"),
        ("u-42", "object"),
        (["u-42"], "object"),
        ({"signature": VECTOR}, "user_id"),
        ({"user_id": "", "signature": VECTOR}, "user_id"),
        ({"user_id": 42, "signature": VECTOR}, "user_id"),
        ({"user_id": "u", "name": 5, "signature": VECTOR}, "name"),
        ({"user_id": "u", "email": ["a"], "signature": VECTOR}, "email"),
        ({"user_id": "u\nv", "signature": VECTOR}, "line breaks"),
        ({"user_id": "u", "name": "a\r", "signature": VECTOR}, "line breaks"),
        ({"user_id": "u" * 201, "signature": VECTOR}, "limit is 200"),
        ({"user_id": "u", "email": "e" * 321, "signature": VECTOR}, "limit is 320"),
    ],
)
def test_malformed_payloads_are_invalid_input(data, needle):
    with pytest.raises(InvalidInput, match=needle) as caught:
        verify(data)
    assert caught.value.status == 400


def test_sign_refuses_what_verify_would_refuse():
    for args in (("", "u"), (SECRET, ""), (SECRET, "u\n"), (SECRET, "u", "a\nb")):
        with pytest.raises(InvalidInput):
            sign_identity(*args, timestamp=TS)
    with pytest.raises(InvalidInput):
        sign_identity(SECRET, "u", timestamp=-5)


def test_the_digest_comparison_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify(payload())
    assert calls, "verify_identity must compare digests with hmac.compare_digest"


# The README's signing examples, run as written.


def readme_block(language: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Embedding the widget", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"^```{language}\n(.*?)^```", section, re.S | re.M)
    assert blocks, f"README 'Embedding the widget' has no ```{language} block"
    return next(b for b in blocks if "sign" in b.lower())


def test_the_readme_python_example_makes_the_same_signature():
    namespace: dict = {}
    exec(readme_block("python"), namespace)  # the documented code, unchanged
    token = namespace["sign_visitor"](SECRET, "u-42", "Ada Lovelace", "ada@example.com", TS)
    assert token == VECTOR
    fresh = namespace["sign_visitor"](SECRET, "u-7", "Bo", "")
    assert verify_identity(SECRET, {"user_id": "u-7", "name": "Bo", "signature": fresh})


def test_the_readme_node_example_makes_the_same_signature():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed; the JavaScript example is checked where it is")
    script = readme_block("js") + (
        f'\nconsole.log(signVisitor("{SECRET}", "u-42", "Ada Lovelace", "ada@example.com", {TS}));'
        f'\nconsole.log(signVisitor("{SECRET}", "auth0|9", "Zoë", ""));'
    )
    out = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[0] == VECTOR
    assert verify_identity(SECRET, {"user_id": "auth0|9", "name": "Zoë", "signature": out[1]})
