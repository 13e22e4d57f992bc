"""Fixtures of the gateway tests: Redis DB 14 (flushed per test) and the app on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from common.config import PROJECT_ROOT
from tests.gateway.support import REDIS_URL, build_app, make_settings


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
