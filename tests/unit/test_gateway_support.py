"""Shared fixtures of the gateway tests (no tests here).

Real Redis, DB 14 (flushed before every test and at the end), a real
:class:`workers.jobs.JobService` and a real Celery app whose broker is DB 14 too: jobs
are really enqueued, but no worker consumes them, so they stay ``queued`` unless a test
finishes one through :class:`common.jobstore.JobStore`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from skimage import data

from common.config import PROJECT_ROOT, Settings
from gateway.auth import hash_key

REDIS_URL = os.environ.get("LIVENESS_GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
KEYS = {"alice": "lk_test_alice_0123456789abcdef", "bob": "lk_test_bob_0123456789abcdef"}
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
    }
    values.update(overrides)
    return dataclasses.replace(Settings(), **values)


@contextlib.contextmanager
def patched_env(env: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.cache
def celery_app_for(url: str) -> Any:
    """The project's Celery app, built with broker and backend at ``url``."""
    from workers.celery_app import make_app

    with patched_env({"LIVENESS_BROKER_URL": url, "LIVENESS_RESULT_BACKEND": url}):
        return make_app()


def build_app(settings: Settings) -> Flask:
    """The real gateway wired to a real JobService on ``settings.redis_url``."""
    from common.jobstore import JobStore
    from gateway import create_app
    from workers.jobs import JobService

    timeout = settings.gateway_redis_timeout_s
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout,
                                  socket_timeout=timeout)
    service = JobService(JobStore(client, settings), celery_app_for(settings.broker_url),
                         settings)
    app = create_app(settings, job_service=service)
    app.testing = True
    return app


@pytest.fixture(scope="session")
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        subprocess.run(["bash", str(PROJECT_ROOT / "deploy" / "ensure-redis.sh")],
                       env={**os.environ, "LIVENESS_REDIS_URL": REDIS_URL}, check=False,
                       timeout=120, capture_output=True)
        client.ping()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def db(redis_db: redis.Redis) -> redis.Redis:
    """DB 14, empty at the start of the test."""
    redis_db.flushdb()
    return redis_db


@pytest.fixture
def app(db: redis.Redis) -> Flask:
    return build_app(make_settings())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


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
