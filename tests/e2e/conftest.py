"""The real service for end-to-end tests: gateway (gunicorn) + Celery workers + Redis DB 13.

One stack per test session: starting gunicorn and three worker processes costs ~10 s
on 2 cores. Redis DB 13 is flushed before and after, so no other data is touched.
Deadlines are shortened (job deadline 30 s, broker visibility timeout 8 s) so that the
failure tests finish in seconds; everything else runs with production settings.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import redis
from skimage import data

from common.config import PROJECT_ROOT
from tests.e2e.support import WEBHOOK_SECRET, jpeg
from tests.procs import Stack

REDIS_URL = os.environ.get("LIVENESS_E2E_REDIS_URL", "redis://127.0.0.1:6379/13")
E2E_ENV = {
    "LIVENESS_JOB_DEADLINE_S": "30",
    "LIVENESS_VISIBILITY_TIMEOUT_S": "8",
    "LIVENESS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "LIVENESS_WEBHOOK_ALLOWLIST": "127.0.0.1/32",  # the tests' receiver only
}


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    subprocess.run(["bash", str(PROJECT_ROOT / "deploy/ensure-redis.sh")], check=True,
                   env=dict(os.environ, LIVENESS_REDIS_URL=REDIS_URL), capture_output=True)
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(scope="session")
def stack(redis_client, tmp_path_factory) -> Iterator[Stack]:
    service = Stack(REDIS_URL, tmp_path_factory.mktemp("e2e-logs"),
                    api_keys={"dev": "k-" + uuid.uuid4().hex, "other": "k-" + uuid.uuid4().hex},
                    extra_env=E2E_ENV)
    with service.running(["face", "quality", "fusion", "cnn", "fasnet", "depth3d"]):
        yield service


@pytest.fixture(scope="session")
def face_jpeg() -> bytes:
    """A real face photograph (scikit-image's astronaut, public domain)."""
    return jpeg(data.astronaut())
