"""The web app: FastAPI routes beside the Gradio chat page, driven with a real HTTP client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ui.app import create_app


@pytest.fixture
def client(make_services):
    with TestClient(create_app(make_services())) as client:
        yield client


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_root_serves_the_gradio_chat_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<html" in page.lower()
    assert "gradio" in page.lower()
    assert "Support chat" in page
