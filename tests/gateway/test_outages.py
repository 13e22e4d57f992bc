"""Redis up but refusing writes (issue 15, item 5): 503 ``unavailable``, nothing left behind.

Each test runs the gateway on a throw-away ``redis-server`` of its own
(:mod:`tests.refusing_redis`) made to refuse writes for real — a failed snapshot
(``MISCONF``, a full disk), ``min-replicas-to-write`` without replicas (``NOREPLICAS``),
``maxmemory`` under ``noeviction`` (``OOM``) — so the shared test database is never
touched. Submissions during the refusal are answered 503 with ``Retry-After``, never
500; reads still work; and a submission the outage cut half-way leaves a pending job
that the deadline sweep erases instead of failing it as ``no_worker`` later.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from common.jobs import JobService
from common.jobstore import DEADLINES_KEY, JobStore
from tests.gateway.support import auth, build_app, jpeg_bytes, make_settings
from tests.refusing_redis import KINDS, RefusingRedis
from workers.deadlines import sweep

GRACE_S = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RefusingRedis]:
    server = RefusingRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def gateway_on(job_store: RefusingRedis, broker: RefusingRedis | None = None) -> Flask:
    broker_url = (broker or job_store).url()
    return build_app(make_settings(redis_url=job_store.url(), broker_url=broker_url,
                                   result_backend=broker_url, submit_grace_s=GRACE_S))


def submit(client: Any, key: str | None = None) -> Any:
    headers = {**auth(), **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/jobs", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                       headers=headers, content_type="multipart/form-data")


def contents(client: redis.Redis) -> dict[str, Any]:
    """What a submission can leave: job-store keys and queued messages (not the rate
    limiter's counters, the erasure counter of common.aof, nor Celery's queue bindings
    and chord bookkeeping)."""
    found: dict[str, Any] = {}
    for raw in client.keys("*"):
        key = raw.decode()
        if key.startswith(("LIMITS:", "_kombu.", "celery-", "liveness:aof:")):
            continue
        kind = client.type(raw).decode()
        found[key] = (client.llen(raw) if kind == "list" else client.zrange(raw, 0, -1)
                      if kind == "zset" else kind)
    return found


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == "unavailable"
    assert "refuses writes" in body["error"]["message"]
    assert response.headers["Retry-After"] == "2"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_redis_refusing_writes_answers_503_and_keeps_nothing(server: RefusingRedis,
                                                             kind: str) -> None:
    client = gateway_on(server).test_client()
    accepted = submit(client)
    assert accepted.status_code == 202
    job = accepted.get_json()["links"]["self"]
    before = contents(server.client)

    server.refuse_writes(kind)
    try:
        assert_unavailable(submit(client))
        assert_unavailable(submit(client, key="retry-me"))
        assert_unavailable(client.post(
            "/v1/batches", headers=auth(), content_type="multipart/form-data",
            data={"images": [(io.BytesIO(jpeg_bytes()), "a.jpg")]}))
        assert_unavailable(client.delete(job, headers=auth()))
        # Reads need no write: still answered.
        read = client.get(job, headers=auth())
        assert read.status_code == 200 and read.get_json()["status"] == "queued"
        assert client.get("/healthz").status_code == 200
    finally:
        server.accept_writes()
    assert contents(server.client) == before
    assert submit(client, key="retry-me").status_code == 202


@pytest.mark.timeout(60)
def test_a_broker_refusing_writes_answers_503_and_the_job_store_keeps_nothing(
        server: RefusingRedis, tmp_path: Path) -> None:
    broker = RefusingRedis(tmp_path / "broker")
    try:
        client = gateway_on(server, broker).test_client()
        assert submit(client).status_code == 202
        before, queued = contents(server.client), contents(broker.client)
        broker.refuse_writes("noreplicas")
        assert_unavailable(submit(client))
        broker.accept_writes()
        assert contents(server.client) == before
        assert contents(broker.client) == queued
    finally:
        broker.stop()


def cut_after_the_job_is_written(app: Flask, server: RefusingRedis) -> JobService:
    """Make Redis refuse writes just as the submission enqueues its tasks: the job is
    written, and neither the enqueue nor the clean-up that follows can write."""
    service: JobService = app.extensions["liveness"].jobs
    enqueue = service._enqueue

    def refused_enqueue(job_id: str, names: list[str]) -> None:
        server.refuse_writes("misconf")
        enqueue(job_id, names)

    service._enqueue = refused_enqueue  # type: ignore[method-assign]
    return service


@pytest.mark.timeout(60)
def test_a_submission_cut_by_the_outage_is_erased_not_failed(server: RefusingRedis) -> None:
    app = gateway_on(server)
    client = app.test_client()
    service = cut_after_the_job_is_written(app, server)
    store: JobStore = service.store
    before = contents(server.client)

    assert_unavailable(submit(client, key="cut"))
    server.accept_writes()
    # What the refusal kept the gateway from erasing: a pending job on a short lease.
    [job_id] = [k.decode().rsplit(":", 1)[1] for k in server.client.keys("liveness:job:*")]
    record = store.get_job(job_id)
    assert record is not None and record["pending"] == "1"
    assert server.client.ttl(store.job_key(job_id)) <= store.pending_ttl_s()
    assert server.client.ttl(store.image_key(job_id)) <= store.pending_ttl_s()
    assert server.client.zscore(DEADLINES_KEY, job_id) == pytest.approx(
        float(record["created_ts"]) + GRACE_S)
    # Its client retries with the same key: not the half-made job, not a phantom.
    service._enqueue = JobService._enqueue.__get__(service)  # type: ignore[method-assign]
    assert_unavailable_retry = submit(client, key="cut")
    assert assert_unavailable_retry.status_code == 503
    assert "in progress" in assert_unavailable_retry.get_json()["error"]["message"]

    sent: list[Any] = []
    time.sleep(GRACE_S + 0.1)
    assert sweep(store, lambda *args, **kwargs: sent.append((args, kwargs))) == 0
    assert sent == [], "the pending job was sent to fail at its deadline"
    assert contents(server.client) == before, "the failed submission left something"
    retried = submit(client, key="cut")
    assert retried.status_code == 202 and retried.get_json()["id"] != job_id


@pytest.mark.timeout(60)
def test_a_confirmed_job_gets_its_real_lifetime_and_start_deadline(server: RefusingRedis
                                                                  ) -> None:
    app = gateway_on(server)
    response = submit(app.test_client(), key="fine")
    assert response.status_code == 202
    store: JobStore = app.extensions["liveness"].jobs.store
    job_id = response.get_json()["id"]
    record = store.get_job(job_id)
    assert record is not None and "pending" not in record
    settings = store.settings
    assert server.client.ttl(store.job_key(job_id)) > settings.result_ttl_s
    assert server.client.ttl(store.image_key(job_id)) > settings.image_ttl_s - 5
    assert server.client.ttl(store.idem_key("alice", "fine")) > settings.result_ttl_s - 5
    assert server.client.zscore(DEADLINES_KEY, job_id) == pytest.approx(
        float(record["created_ts"]) + settings.job_start_timeout_s)
    # A confirmed job is never erased as a failed submission.
    assert store.erase_pending(job_id) is False and store.get_job(job_id) is not None


@pytest.mark.timeout(60)
def test_a_confirmation_after_the_sweep_claimed_the_job_fails_the_submission(
        server: RefusingRedis) -> None:
    """The sweep and a (very late) confirmation race: exactly one of them wins."""
    app = gateway_on(server)
    store: JobStore = app.extensions["liveness"].jobs.store
    created = time.time() - 2 * GRACE_S
    store.create_job("late", "alice", jpeg_bytes(), ["quality"], pending=True,
                     created=created)
    assert store.claim_due(lease_s=30) == ["late"]  # the sweep took it
    assert store.confirm_job("late", created) is False
    assert store.erase_pending("late") is True
    assert contents(server.client) == {}
