"""The camera page: served at /demo (/ redirects there) with its script and style, no
API key needed to load it; LIVENESS_DEMO_PAGE=false turns both into 404s."""

from __future__ import annotations

import dataclasses

from tests.gateway.support import build_app, make_settings


def test_the_page_and_its_files_are_served(client) -> None:
    root = client.get("/")
    assert root.status_code == 302 and root.headers["Location"].endswith("/demo")
    page = client.get("/demo")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for needle in ('id="start-camera"', 'id="check"', 'type="file"', 'id="api-key"',
                   "/static/demo.js", "/static/demo.css"):
        assert needle in html, needle
    script = client.get("/static/demo.js")
    assert script.status_code == 200 and "getUserMedia" in script.get_data(as_text=True)
    assert client.get("/static/demo.css").status_code == 200


def test_the_page_can_be_switched_off(db) -> None:
    settings = dataclasses.replace(make_settings(), demo_page=False)
    client = build_app(settings).test_client()
    for path in ("/", "/demo"):
        response = client.get(path)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_the_switch_reads_true_and_false(monkeypatch) -> None:
    import pytest

    from common.config import Settings, SettingsError

    monkeypatch.setenv("LIVENESS_DEMO_PAGE", "false")
    assert Settings.from_env().demo_page is False
    monkeypatch.setenv("LIVENESS_DEMO_PAGE", "maybe")
    with pytest.raises(SettingsError, match="LIVENESS_DEMO_PAGE"):
        Settings.from_env()
