"""Fixtures of the integration tests: Redis DB 15 and the worker pools (see support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from common.config import Settings
from common.queueing import LivenessCelery, make_celery
from tests.integration.support import (
    QUEUES,
    REDIS_URL,
    SERVICE_SETTINGS,
    WorkerPools,
    ensure_redis,
    integration_settings,
    settings_env,
)


@pytest.fixture(scope="session")
def service_env() -> dict[str, str]:
    """The LIVENESS_* variables of the worker processes (Redis is started if needed)."""
    ensure_redis(REDIS_URL)
    return settings_env(SERVICE_SETTINGS)


@pytest.fixture(scope="session")
def redis_db(service_env: dict[str, str]) -> Iterator[redis.Redis]:
    """Redis DB 15, flushed before and after the session."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def worker_pools(redis_db: redis.Redis, service_env: dict[str, str],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPools]:
    """One real worker per queue for the whole session; all stopped at the end."""
    pools = WorkerPools(tmp_path_factory.mktemp("celery-logs"), service_env)
    try:
        for queue in QUEUES:
            pools.start(queue, wait=False)
        pools.wait_ready(list(QUEUES))
        yield pools
    finally:
        pools.stop_all()


@pytest.fixture
def pools(worker_pools: WorkerPools) -> Iterator[WorkerPools]:
    """The session's pools, every one running when the test starts and after it ends."""
    worker_pools.ensure_all()
    yield worker_pools
    worker_pools.ensure_all()


@pytest.fixture
def settings(service_env: dict[str, str]) -> Settings:
    """The same settings as the workers', built explicitly (no environment patching)."""
    return integration_settings()


@pytest.fixture(scope="session")
def celery_app(service_env: dict[str, str]) -> LivenessCelery:
    """A producer app (the gateway's) for the integration settings."""
    return make_celery(integration_settings())
