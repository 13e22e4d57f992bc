"""Redis refusing writes for a while (issue 15, item 5): workers survive, nothing is lost.

A throw-away Redis of its own (:mod:`tests.refusing_redis`) and real face, quality and
fusion workers on it (:class:`cli.processes.ServiceStack`). Jobs are in flight when the
Redis starts refusing every write with ``MISCONF`` (a snapshot that cannot be written:
a full disk) — the refusal begins inside a submission, after its tasks were enqueued and
before it could be confirmed. Submissions during the refusal fail with 503 (here
:class:`StoreUnavailableError`). Then the disk is "freed" and a snapshot succeeds.

Before the fix every pool died at once ("Unrecoverable error: ResponseError" from the
consumer's BRPOP) and the cut submission stayed as a job that failed much later as
``no_worker``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import skimage.data

from common.jobs import JobService, StoreUnavailableError
from common.jobstore import DEADLINES_KEY, JOBS_METRICS_KEY, JobStore
from common.queueing import make_celery
from gateway.app import redis_pool
from tests.e2e.support import jpeg
from tests.integration.support import integration_settings
from tests.procs import Stack
from tests.refusing_redis import RefusingRedis

pytestmark = pytest.mark.integration

POOLS = ("face", "quality", "fusion")
GRACE_S = 4
OUTAGE_S = 8


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[RefusingRedis, Stack, JobService]]:
    server = RefusingRedis(tmp_path / "redis")
    url = server.url()
    stack = Stack(url, tmp_path / "logs", extra_env={
        "LIVENESS_JOB_DEADLINE_S": "40", "LIVENESS_VISIBILITY_TIMEOUT_S": "8",
        "LIVENESS_SUBMIT_GRACE_S": str(GRACE_S)})
    settings = integration_settings(
        redis_url=url, broker_url=url, result_backend=url, job_deadline_s=40,
        visibility_timeout_s=8, submit_grace_s=GRACE_S,
        image_keys=stack.env["LIVENESS_IMAGE_KEYS"])
    try:
        stack.start_workers(list(POOLS))
        yield server, stack, JobService(JobStore.from_settings(settings),
                                        make_celery(settings), settings)
    finally:
        stack.stop()
        server.stop()


def wait_finished(jobs: JobService, job_id: str, timeout_s: float) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    view: dict[str, Any] | None = None
    while time.monotonic() < end:
        view = jobs.wait("owner-a", job_id, 5)
        if view is not None and view["status"] in ("done", "failed"):
            return view
    raise AssertionError(f"job {job_id} did not finish: {view}")


@pytest.mark.timeout(240)
def test_workers_survive_redis_refusing_writes_and_lose_nothing(
        outage: tuple[RefusingRedis, Stack, JobService]) -> None:
    server, stack, jobs = outage
    store = jobs.store
    image = jpeg(skimage.data.astronaut())
    reference = wait_finished(jobs, jobs.submit("owner-a", image, tests=["quality"])["id"], 60)
    assert reference["status"] == "done", reference

    in_flight = [jobs.submit("owner-a", image, tests=["quality"])["id"] for _ in range(6)]

    # The refusal begins inside the next submission: its tasks are queued, its job
    # written but not yet confirmed.
    confirm = store.confirm_job
    cut: list[str] = []

    def refused_confirm(job_id: str, created: float) -> bool:
        cut.append(job_id)
        server.refuse_writes("misconf")
        return confirm(job_id, created)

    store.confirm_job = refused_confirm  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailableError):
        jobs.submit("owner-a", image, tests=["quality"], idempotency_key="cut")
    store.confirm_job = confirm  # type: ignore[method-assign]
    record = store.get_job(cut[0])
    assert record is not None and record.get("pending"), "the cut left no pending job"
    caught = [j for j in in_flight if store.get_job(j)["status"] not in ("done", "failed")]
    assert caught, "every job finished before the refusal: nothing was in flight"

    refused_at = time.monotonic()
    while time.monotonic() - refused_at < OUTAGE_S:
        with pytest.raises(StoreUnavailableError):
            jobs.submit("owner-a", image, tests=["quality"])
        time.sleep(1)
    dead = [p for p, workers in stack.workers.items() if not all(w.alive() for w in workers)]
    assert dead == [], "\n".join(stack.sinks[p].tail() for p in dead)
    server.accept_writes()

    for job_id in in_flight:
        view = wait_finished(jobs, job_id, 120)
        # Done with the same answer as without the fault: nothing decided by the outage.
        assert view["status"] == "done", view["error"]
        assert view["decision"] == reference["decision"]
        assert view["score"] == pytest.approx(reference["score"])
        assert view["missing_tests"] == {}
    # The cut submission: erased at its grace deadline, its queued tasks skipped.
    end = time.monotonic() + 60
    while time.monotonic() < end and (server.client.keys(f"liveness:*{cut[0]}*")
                                      or server.client.zscore(DEADLINES_KEY, cut[0])):
        time.sleep(0.5)
    assert server.client.keys(f"liveness:*{cut[0]}*") == []
    assert server.client.zscore(DEADLINES_KEY, cut[0]) is None
    assert server.client.exists(store.idem_key("owner-a", "cut")) == 0
    assert server.client.hget(JOBS_METRICS_KEY, "failed") is None
    # The service works again, and the client's retry makes a new job.
    retried = jobs.submit("owner-a", image, tests=["quality"], idempotency_key="cut")
    assert retried["id"] != cut[0]
    assert wait_finished(jobs, retried["id"], 60)["status"] == "done"
    dead = [p for p, workers in stack.workers.items() if not all(w.alive() for w in workers)]
    assert dead == [], "\n".join(stack.sinks[p].tail() for p in dead)


@pytest.mark.timeout(60)
def test_reads_on_idle_connections_still_work_while_redis_refuses_writes(
        tmp_path: Path) -> None:
    """A client polling a finished job during ``MISCONF`` gets it (CI, 2026-12-06).

    Redis answers ``PING`` with ``MISCONF`` too, and redis-py sends one before a command
    on a connection idle for ``health_check_interval`` (30 s): the gateway's ``GET`` of
    a done job was a 503 whenever its pooled connection had been idle that long.
    """
    server = RefusingRedis(tmp_path / "redis")
    try:
        settings = integration_settings(redis_url=server.url())
        store = JobStore.from_settings(settings)
        gateway_client = redis.Redis(connection_pool=redis_pool(server.url(), settings))
        plain = redis.Redis.from_url(server.url(), health_check_interval=30)
        key = store.job_key("finished-before")
        server.client.hset(key, mapping={"status": "done"})
        clients = {"job store": store.redis, "gateway pool": gateway_client, "plain": plain}
        for client in clients.values():
            assert client.hgetall(key) == {b"status": b"done"}

        server.refuse_writes("misconf")
        for client in clients.values():  # as if idle for longer than the interval
            connection = client.connection_pool.get_connection()
            connection.next_health_check = 0
            client.connection_pool.release(connection)
        # The control: redis-py's own connection fails its health check on the refusal.
        with pytest.raises(redis.exceptions.ResponseError, match="MISCONF"):
            plain.hgetall(key)
        assert store.redis.hgetall(key) == {b"status": b"done"}
        assert gateway_client.hgetall(key) == {b"status": b"done"}
        with pytest.raises(redis.exceptions.ResponseError, match="MISCONF"):
            gateway_client.hset(key, "status", "changed")  # writes are still refused
    finally:
        server.stop()
