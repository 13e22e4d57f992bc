"""A test added by another distribution runs in the service like a shipped one.

The test-only ``brightness`` plug-in (``tests/plugins``) is installed on the children's
``PYTHONPATH``; no product file names it. It gets its own queue and worker, the gateway
accepts it, fusion combines it with ``quality``, and it appears in the API result, the
batch CSV, ``/readyz`` and ``/metrics`` — all derived from the registry.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator

import pytest
import redis
from skimage import data

from common.imageio import decode_image
from tests.e2e.support import jpeg
from tests.procs import Stack, multipart

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/10"


@pytest.fixture(scope="module")
def plugin_stack(brightness_plugin, tmp_path_factory) -> Iterator[Stack]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    env = {**brightness_plugin.env(),
           "LIVENESS_REQUIRED_QUEUES": "face,quality,brightness,fusion"}
    service = Stack(REDIS_URL, tmp_path_factory.mktemp("plugin-logs"), extra_env=env,
                    gateway_workers=1)
    try:
        with service.running(["face", "quality", "brightness", "fusion"]):
            yield service
    finally:
        client.flushdb()


@pytest.fixture
def expected(brightness_plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(brightness_plugin.path))
    from brightness_liveness.scorer import expected_score

    return lambda image_bytes: expected_score(decode_image(image_bytes), 100.0, 0.05)


def test_the_plugin_test_is_scored_fused_and_reported(plugin_stack: Stack, expected):
    image = jpeg(data.astronaut())
    job = plugin_stack.submit(image, tests=["quality", "brightness"])
    view = plugin_stack.wait_job(job["id"])
    assert view["status"] == "done" and view["missing_tests"] == {}
    detail = view["tests_detail"]["brightness"]
    assert detail["model"] == "mean-brightness" and detail["error"] is None
    assert detail["score"] == pytest.approx(expected(image), abs=1e-9)
    alone = plugin_stack.wait_job(plugin_stack.submit(image, tests=["quality"])["id"])
    assert view["score"] != alone["score"]  # fusion combined both tests

    status, _, raw = plugin_stack.request("GET", "/readyz", key=None)
    assert status == 200, raw
    assert json.loads(raw)["checks"]["queues"]["brightness"] == 1
    metrics = plugin_stack.request("GET", "/metrics", key=None)[2].decode()
    assert 'liveness_queue_depth{queue="brightness"}' in metrics


def test_the_plugin_test_is_a_batch_csv_column(plugin_stack: Stack, expected):
    images = [("a.jpg", jpeg(data.astronaut())), ("b.jpg", jpeg(data.chelsea()))]
    body, content_type = multipart([("images", n, c) for n, c in images],
                                   {"tests": "quality,brightness"})
    status, _, raw = plugin_stack.request("POST", "/v1/batches", body=body,
                                          headers={"Content-Type": content_type})
    assert status == 202, raw
    batch_id = json.loads(raw)["id"]
    assert plugin_stack.wait_batch(batch_id, timeout_s=90)["status"] == "done"
    raw = plugin_stack.request("GET", f"/v1/batches/{batch_id}?format=csv")[2]
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [r["path"] for r in rows] == ["a.jpg", "b.jpg"]
    for row, (_, content) in zip(rows, images, strict=True):
        assert float(row["brightness_score"]) == pytest.approx(expected(content), abs=1e-6)
        assert row["quality_score"] != ""


def test_an_unknown_test_is_still_refused(plugin_stack: Stack):
    status, _, raw = plugin_stack.request("POST", "/v1/jobs", body={
        "image": base64.b64encode(jpeg(data.astronaut())).decode(), "tests": ["darkness"]})
    assert status == 422, raw
    error = json.loads(raw)["error"]
    assert error["code"] == "unknown_test" and "brightness" in error["message"]
