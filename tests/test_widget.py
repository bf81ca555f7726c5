"""``GET /widget.js`` and static checks of the widget script (the browser tests drive it)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from chatbot.identity import sign_identity
from ui.app import create_app
from ui.widget import WIDGET_JS

SOURCE = WIDGET_JS.read_text(encoding="utf-8")


@pytest.fixture
def client(make_services):
    services = make_services(kb=False, allowed_origins="https://shop.example.com")
    with TestClient(create_app(services)) as client:
        yield client


def test_widget_js_is_served_as_javascript(client):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in response.headers["cache-control"]
    assert response.content == WIDGET_JS.read_bytes()


def test_widget_js_is_gzipped_for_browsers_that_accept_it(client):
    plain = client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == WIDGET_JS.read_bytes()
    packed = client.get("/widget.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.content == plain.content  # decoded by the client
    assert packed.headers["etag"] != plain.headers["etag"]
    assert "Accept-Encoding" in packed.headers["vary"]


def test_widget_js_revalidates_with_its_etag(client):
    etag = client.get("/widget.js", headers={"Accept-Encoding": "identity"}).headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    again = client.get("/widget.js", headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert client.get("/widget.js", headers={"If-None-Match": '"stale"'}).status_code == 200


def test_widget_js_is_served_to_any_origin(client):
    # The script holds nothing secret; the API it calls refuses origins not allowed.
    response = client.get("/widget.js", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


def test_the_script_loads_nothing_from_elsewhere():
    assert not re.search(r"https?://", SOURCE, re.I), "no external URLs: no CDN, no fonts"
    assert not re.search(r"(^|[^.\w])import\s*\(|\bimportScripts\b|@import", SOURCE)


def test_server_text_is_never_parsed_as_html():
    # A crude but real check: the script has no way to turn a string into markup at all.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                 "DOMParser", "createContextualFragment", "srcdoc", "eval(", "new Function"):
        assert sink not in SOURCE, f"widget.js uses {sink}"
    assert "textContent" in SOURCE


def test_the_script_renders_in_a_shadow_root_with_its_own_styles():
    assert "attachShadow(" in SOURCE
    assert "all:initial" in SOURCE.replace(" ", "")


def test_labels_exist_in_every_language():
    table = SOURCE.split("var TEXT = {", 1)[1].split("\n  };", 1)[0]
    languages = dict(re.findall(r"^    (\w\w): \{(.*?)\}", table, re.S | re.M))
    assert set(languages) >= {"en", "de", "fr", "es"}
    keys = [set(re.findall(r"(\w+):", body)) for body in languages.values()]
    assert all(k == keys[0] for k in keys), "every language needs every label"
    assert {"send", "human", "reset", "placeholder", "helpful", "forbidden"} <= keys[0]
    assert "Talk to a person" in table and "Was this helpful?" in table


def test_the_script_is_small():
    assert len(SOURCE.encode()) < 24_000


def test_the_script_is_valid_javascript():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed; the browser tests load the script instead")
    proc = subprocess.run([node, "--check", str(WIDGET_JS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# The contract the conversation-create route follows for signed visitors (README, "Signed
# visitor identity").
def test_creating_a_conversation_verifies_the_signed_visitor(make_services):
    secret = "s3cret-for-tests"
    services = make_services(kb=False, widget_secret=secret)
    visitor = {"user_id": "u-42", "name": "Ada", "email": "ada@example.com"}
    signed = {**visitor, "signature": sign_identity(secret, "u-42", "Ada", "ada@example.com")}
    forged = {**signed, "user_id": "u-43"}
    with TestClient(create_app(services)) as client:
        created = client.post("/api/v1/conversations", json={"visitor": signed})
        assert created.status_code == 200, created.text
        with services.engine.connect() as conn:
            stored = conn.execute(
                text("SELECT visitor_id FROM conversations WHERE id = :id"),
                {"id": created.json()["id"]},
            ).scalar_one()
        assert stored == "u-42"

        refused = client.post("/api/v1/conversations", json={"visitor": forged})
        assert refused.status_code == 403
        assert refused.json() == {"ok": False, "error": refused.json()["error"], "status": 403}
        malformed = client.post("/api/v1/conversations", json={"visitor": {"user_id": 5}})
        assert malformed.status_code in (400, 422)
        assert client.post("/api/v1/conversations", json={}).status_code == 200


def test_a_verified_visitors_conversations_are_linked_and_anonymous_ones_are_not(make_services):
    secret = "s3cret-for-tests"
    services = make_services(kb=False, widget_secret=secret)
    signed = {"user_id": "auth0|42", "signature": sign_identity(secret, "auth0|42")}
    with TestClient(create_app(services)) as client:
        first = client.post("/api/v1/conversations", json={"visitor": signed}).json()["id"]
        later = {"user_id": "auth0|42", "signature": sign_identity(secret, "auth0|42")}
        second = client.post("/api/v1/conversations", json={"visitor": later}).json()["id"]
        anonymous = client.post("/api/v1/conversations", json={}).json()["id"]
    assert first != second
    owner = {cid: services.chat.conversation(cid).conversation.visitor_id
             for cid in (first, second, anonymous)}
    assert owner == {first: "auth0|42", second: "auth0|42", anonymous: None}


def test_a_visitor_is_refused_where_signing_is_off_and_nothing_is_stored(make_services):
    services = make_services(kb=False)  # no CHATBOT_WIDGET_SECRET
    visitor = {"user_id": "u-42", "signature": sign_identity("some-secret", "u-42")}
    with TestClient(create_app(services)) as client:
        refused = client.post(
            "/api/v1/conversations",
            json={"visitor": visitor, "history": [{"role": "user", "content": "hi"}]},
        )
    assert refused.status_code == 403
    assert "CHATBOT_WIDGET_SECRET" in refused.json()["error"]
    with services.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM conversations")).scalar_one() == 0
