"""Helpers of the gateway tests: settings, the app on a test database, request bodies.

The gateway runs on real Redis, DB 14, with a real :class:`common.jobs.JobService` and a
real Celery app (:func:`common.queueing.make_celery`) whose broker is DB 14 too: jobs
are really enqueued, but no worker consumes them, so they stay ``queued`` unless a test
finishes one through :class:`common.jobstore.JobStore` (:func:`finish`).
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from typing import Any

import numpy as np
from flask import Flask
from PIL import Image
from skimage import data

from common.config import Settings
from common.fusion import NormalisedLogOddsFusion
from common.jobstore import JobStore
from common.pipeline import combine
from common.result import FaceBox, FaceDetection, TestOutcome
from common.sealing import new_key as new_image_key
from gateway import create_app
from gateway.auth import hash_key
from tests.stub_dns import StubResolver

REDIS_URL = os.environ.get("LIVENESS_GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
KEYS = {"alice": "lk_test_alice_0123456789abcdef", "bob": "lk_test_bob_0123456789abcdef"}
#: The master webhook secret of the gateway tests (the gateway refuses to start without one).
WEBHOOK_SECRET = "gateway-tests-" + "0123456789abcdef" * 2
#: Seals the stored images of the gateway tests (LIVENESS_IMAGE_KEYS).
IMAGE_KEY = new_image_key()
CLOSED_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def auth(owner: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[owner]}"}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "broker_url": REDIS_URL,
        "result_backend": REDIS_URL,
        "api_key_hashes": ",".join(f"{o}:{hash_key(k)}" for o, k in KEYS.items()),
        "rate_limit": "1000/minute",
        "gateway_redis_timeout_s": 1.0,
        "readyz_cache_s": 0.0,
        "webhook_secret": WEBHOOK_SECRET,
        "image_keys": IMAGE_KEY,
    }
    values.update(overrides)
    return dataclasses.replace(Settings(), **values)


#: Host names the gateway tests' stub resolver knows (no DNS is ever asked).
STUB_DNS = {
    "example.org": ["93.184.215.14"],
    "hooks.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "rebind.example.net": ["93.184.215.14", "10.0.0.7"],
    "metadata.example.net": ["169.254.169.254"],
}


stub_resolver = StubResolver(STUB_DNS)


def build_app(settings: Settings) -> Flask:
    """The real gateway (its JobService and Celery app) built from ``settings``."""
    app = create_app(settings, resolver=stub_resolver)
    app.testing = True
    return app


def finished_result() -> dict[str, Any]:
    """A stored result as the fusion worker writes it (the pipeline's ``combine``)."""
    face = FaceDetection(FaceBox(10, 90, 90, 10), True, "hog", 1)
    outcome = TestOutcome(score=0.83, model="w-iqa", version="1", threshold=0.5, seconds=0.2)
    result = combine(face, {"quality": outcome}, 0.75, NormalisedLogOddsFusion())
    return dataclasses.replace(result, missing_tests={},
                               timings={"total_s": 0.75}).to_dict()


def finish(app: Flask, job_id: str, result: dict[str, Any] | None = None) -> None:
    """Finish a queued job as the fusion worker would."""
    store = JobStore(app.extensions["liveness"].jobs.store.redis, make_settings())
    store.finish(job_id, "done", result or finished_result())


def jpeg_bytes(array: np.ndarray | None = None, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut() if array is None else array).save(
        buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` (a decompression-bomb probe)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
