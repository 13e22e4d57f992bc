"""Error messages never show Python object reprs (``<_io.BytesIO object at 0x…>``).

Many malformed requests and images go through the real gateway; every answer is a 4xx
whose JSON, per-item batch errors included, contains no object repr, and the gateway's
safety net (``gateway.errors.error_response``) never had to remove one.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import zipfile
from typing import Any

import pytest

from tests.gateway.support import auth, jpeg_bytes
from tests.malformed import OBJECT_REPR, malformed_images


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def _unknown_compression(archive: bytes) -> bytes:
    """The zip with its first entry's compression method set to an undefined one (77)."""
    broken = bytearray(archive)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = broken.find(header)
        offset = 8 if header == b"PK\x03\x04" else 10
        broken[at + offset:at + offset + 2] = (77).to_bytes(2, "little")
    return bytes(broken)


@pytest.fixture
def no_object_reprs(client, caplog):
    """Send requests, check each answer; at the end, the safety net never fired."""

    def check(response, what: str) -> dict:
        body = response.get_json(silent=True)
        assert body is not None, (what, response.status_code, response.data[:200])
        assert response.status_code < 500, (what, body)
        for text in _strings(body):
            assert not OBJECT_REPR.search(text), (what, text)
        return body

    caplog.set_level(logging.ERROR, logger="gateway.errors")
    yield check
    assert not [r for r in caplog.records if "object repr" in r.getMessage()], caplog.text


def test_malformed_images_as_jobs_and_batches(client, no_object_reprs):
    cases = malformed_images()
    refused = set()
    for name, blob in cases:
        multipart = client.post("/v1/jobs", headers=auth(), content_type="multipart/form-data",
                                data={"image": (io.BytesIO(blob), name)})
        body = no_object_reprs(multipart, f"multipart {name}")
        as_json = client.post("/v1/jobs", headers=auth(),
                              json={"image": base64.b64encode(blob).decode()})
        no_object_reprs(as_json, f"json {name}")
        if multipart.status_code >= 400:
            assert body["error"]["message"], name
            refused.add(name)
    # Every case but the randomly overwritten ones (bytes in pixel data may still decode).
    assert {name for name, _ in cases if "-header-" not in name} <= refused
    for start in range(0, len(cases), 50):
        chunk = cases[start:start + 50]
        batch = client.post("/v1/batches", headers=auth(), content_type="multipart/form-data",
                            data={"images": [(io.BytesIO(b), n) for n, b in chunk]})
        items = no_object_reprs(batch, f"batch {start}")["items"]
        assert {i["name"] for i in items if i["error"]} == {n for n, _ in chunk} & refused
        archive = client.post("/v1/batches", headers={**auth(), "Content-Type":
                                                      "application/zip"}, data=_zip(chunk))
        no_object_reprs(archive, f"zip {start}")


@pytest.mark.parametrize("body", [
    b"", b"PK", b"PK\x03\x04" + bytes(40), b"not a zip", b"PK\x05\x06" + bytes(18),
    _zip([("a.jpg", jpeg_bytes())])[:-30],
    _unknown_compression(_zip([("a.jpg", jpeg_bytes()), ("b.jpg", b"x")])),
])
def test_malformed_archives(client, no_object_reprs, body):
    response = client.post("/v1/batches", headers={**auth(), "Content-Type": "application/zip"},
                           data=body)
    no_object_reprs(response, f"zip {body[:12]!r}")


@pytest.mark.parametrize("payload", [
    {"image": "@@@not base64@@@"}, {"image": "abc"}, {"image": "data:image/png;base64,%%"},
    {"image": 12}, {"image": None}, {"image": ["x"]}, {},
    {"image": base64.b64encode(b"x").decode(), "tests": "nope"},
    {"image": base64.b64encode(b"x").decode(), "tests": [1, {}]},
    {"image": base64.b64encode(b"x").decode(), "explain": "maybe"},
    {"image": base64.b64encode(b"x").decode(), "profile": "../../etc/passwd"},
    {"image": base64.b64encode(b"x").decode(), "profile": "unknown-profile"},
    {"image": base64.b64encode(b"x").decode(), "callback_url": "http://[::1"},
    {"image": base64.b64encode(b"x").decode(), "callback_url": "ftp://example.org/x"},
    {"image": base64.b64encode(b"x").decode(), "callback_url": "http://exa mple.org/"},
    {"image": base64.b64encode(b"x").decode(), "callback_url": "http://127.0.0.1:99999/"},
    {"image": base64.b64encode(b"x").decode(), "callback_url": ["http://example.org"]},
    {"image": base64.b64encode(b"x").decode(), "unknown": object.__name__},
])
def test_malformed_json_fields(client, no_object_reprs, payload):
    response = client.post("/v1/jobs", headers=auth(), json=payload)
    assert no_object_reprs(response, json.dumps(payload)[:80])["error"]


@pytest.mark.parametrize("raw, content_type", [
    (b"{", "application/json"), (b"[]", "application/json"), (b"\xff\xfe", "application/json"),
    (b"null", "application/json"), (b"image", "text/plain"),
    (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    (b"", "multipart/form-data"),
])
def test_malformed_bodies(client, no_object_reprs, raw, content_type):
    response = client.post("/v1/jobs", headers={**auth(), "Content-Type": content_type},
                           data=raw)
    no_object_reprs(response, f"{content_type} {raw[:12]!r}")


def test_malformed_requests_elsewhere(client, no_object_reprs):
    for path in ("/v1/jobs/nope", "/v1/jobs/nope?wait=abc", "/v1/jobs/nope?wait=-1",
                 "/v1/batches/nope?format=xml", "/v1/jobs/" + "x" * 300,
                 "/v1/jobs/nope/explanations/quality", "/v1/unknown"):
        no_object_reprs(client.get(path, headers=auth()), path)
    no_object_reprs(client.get("/v1/jobs/nope", headers={"Authorization": "Bearer"}), "auth")
    no_object_reprs(client.post("/v1/jobs", headers={**auth(), "Idempotency-Key": "\x01"},
                                json={"image": "eA=="}), "idempotency")
    no_object_reprs(client.put("/v1/jobs", headers=auth()), "method")


def test_the_safety_net_removes_and_logs_a_repr_that_slipped_through(app, caplog):
    from gateway.errors import error_response

    leaked = "cannot identify image file <_io.BytesIO object at 0x7f3a2c1b9e50>"
    with app.app_context(), caplog.at_level(logging.ERROR, logger="gateway.errors"):
        response = error_response(422, "corrupt_image", leaked)
    assert response.get_json()["error"]["message"] == "cannot identify image file the data"
    assert "object repr" in caplog.text and "corrupt_image" in caplog.text
