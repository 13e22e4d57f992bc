"""The whole service while its Redis refuses writes (issue 15, item 5), over HTTP.

A Redis of its own (:mod:`tests.refusing_redis`), the gateway as deployed (gunicorn,
gevent workers) and the face, quality and fusion pools. During a real ``MISCONF`` (a
snapshot that cannot be written) a submission is answered 503 ``unavailable`` with
``Retry-After`` and a JSON body, a job that finished before is still readable, and the
gateway stays healthy; once a snapshot succeeds again, a new job is scored as before —
the pools lived through it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from skimage import data

from tests.e2e.support import jpeg
from tests.procs import Stack
from tests.refusing_redis import RefusingRedis

POOLS = ["face", "quality", "fusion"]


@pytest.fixture
def refusing_stack(tmp_path: Path) -> Iterator[tuple[RefusingRedis, Stack]]:
    server = RefusingRedis(tmp_path / "redis")
    service = Stack(server.url(), tmp_path / "logs",
                    extra_env={"LIVENESS_REQUIRED_QUEUES": ",".join(POOLS),
                               "LIVENESS_DEFAULT_TESTS": "quality"})
    try:
        with service.running(POOLS):
            yield server, service
    finally:
        server.stop()


@pytest.mark.timeout(240)
def test_redis_refusing_writes_is_a_503_and_the_service_recovers(
        refusing_stack: tuple[RefusingRedis, Stack]) -> None:
    server, service = refusing_stack
    image = jpeg(data.astronaut())
    before = service.wait_job(service.submit(image)["id"])
    assert before["status"] == "done"

    server.refuse_writes("misconf")
    try:
        status, headers, raw = service.request(
            "POST", "/v1/jobs", body={"image": base64.b64encode(image).decode()}, timeout=20)
        assert status == 503, raw
        assert json.loads(raw)["error"]["code"] == "unavailable"
        assert headers["Retry-After"] == "2"
        status, _, raw = service.request("GET", f"/v1/jobs/{before['id']}")
        assert status == 200, raw
        assert json.loads(raw)["status"] == "done"
        assert service.request("GET", "/healthz", key=None)[0] == 200
        time.sleep(3)  # long enough for every pool's consumer to meet the refusal
    finally:
        server.accept_writes()

    after = service.wait_job(service.submit(image)["id"], timeout_s=90)
    assert after["status"] == "done"
    assert after["decision"] == before["decision"]
    assert after["score"] == pytest.approx(before["score"])
    dead = [pool for pool, workers in service.workers.items()
            if not all(worker.alive() for worker in workers)]
    assert dead == [], "\n".join(service.sinks[pool].tail() for pool in dead)
