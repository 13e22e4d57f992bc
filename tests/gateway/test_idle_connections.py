"""Idle connections (issue 15, item 6): long-polls and slow uploads do not stall the gateway.

An asynchronous API whose clients long-poll holds many idle connections. The gateway
runs gunicorn's ``gevent`` worker class (one greenlet per connection), and its
long-polls wait on one shared pub/sub subscription per process
(:class:`common.notifications.ChannelWatcher`) instead of a Redis connection each.
How fast it stays with 1,000 long-polls and 50 slow uploads is measured by
``bench/longpoll.py``; these tests check the behaviour: with more idle connections than
the old 2 processes × 8 threads, the gateway still answers at all.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from cli.processes import LogSink, ManagedProcess, free_port, gateway_argv, wait_http_ok
from common.jobstore import JobStore
from tests.gateway.support import (
    KEYS,
    auth,
    build_app,
    finish,
    finished_result,
    jpeg_bytes,
    make_settings,
)
from tests.refusing_redis import RefusingRedis

IDLE = 24  # of each kind: 48 idle connections, three times the old 16 threads


def http(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def gateway(db: redis.Redis, tmp_path: Path) -> Iterator[str]:
    """The gateway as ``liveness serve`` starts it (gunicorn, 2 processes, its config)."""
    settings = make_settings()
    port = free_port()
    env = {"LIVENESS_REDIS_URL": settings.redis_url, "LIVENESS_BROKER_URL": settings.broker_url,
           "LIVENESS_RESULT_BACKEND": settings.result_backend,
           "LIVENESS_API_KEY_HASHES": settings.api_key_hashes,
           "LIVENESS_WEBHOOK_SECRET": settings.webhook_secret,
           "LIVENESS_IMAGE_KEYS": settings.image_keys,
           "LIVENESS_READ_RATE_LIMIT": "100000/minute"}
    process = ManagedProcess("gateway", gateway_argv("127.0.0.1", port, 2),
                             {**os.environ, **env}, sink=LogSink(tmp_path / "gateway.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_http_ok(f"{base}/healthz", 60, process.alive), "gateway did not start"
        yield base
    finally:
        process.stop()


def _slow_upload(base: str) -> socket.socket:
    """A multipart POST whose headers announce a body that never comes (a slow client)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
                  f"{KEYS['alice']}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                  f"Content-Length: 100000\r\n\r\n--x\r\n").encode())
    return sock


@pytest.mark.timeout(120)
def test_idle_long_polls_and_slow_uploads_leave_the_gateway_answering(
        gateway: str, db: redis.Redis) -> None:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"'
            f'\r\nContent-Type: image/jpeg\r\n\r\n').encode() + jpeg_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    headers = {"Authorization": f"Bearer {KEYS['alice']}",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, raw = http(f"{gateway}/v1/jobs", "POST", body, headers)
    assert status == 202, raw
    job_id = json.loads(raw)["id"]

    answers: list[tuple[int, bytes]] = []
    polls = [threading.Thread(target=lambda: answers.append(http(
        f"{gateway}/v1/jobs/{job_id}?wait=25", headers=auth(), timeout=60)))
        for _ in range(IDLE)]
    for poll in polls:
        poll.start()
    uploads = [_slow_upload(gateway) for _ in range(IDLE)]
    try:
        time.sleep(1.0)
        # Every long-poll and upload is held, and the gateway still answers.
        assert http(f"{gateway}/healthz", timeout=5)[0] == 200
        assert http(f"{gateway}/v1/jobs", "POST", body, headers, timeout=5)[0] == 202
        assert answers == [], "a long-poll was answered before its job finished"
        finish_job(db, job_id)
        for poll in polls:
            poll.join(20)
    finally:
        for sock in uploads:
            sock.close()
    assert len(answers) == IDLE
    for status, raw in answers:
        assert status == 200 and b'"status":"done"' in raw


def finish_job(db: redis.Redis, job_id: str) -> None:
    """Finish a queued job as the fusion worker would (publishes its completion)."""
    JobStore(db, make_settings()).finish(job_id, "done", finished_result())


def _long_polls(client_factory: Any, job_id: str, n: int, wait_s: int
                ) -> tuple[list[threading.Thread], list[tuple[float, Any]]]:
    answers: list[tuple[float, Any]] = []

    def poll() -> None:
        started = time.monotonic()
        response = client_factory().get(f"/v1/jobs/{job_id}?wait={wait_s}", headers=auth())
        answers.append((time.monotonic() - started, response.get_json()))

    threads = [threading.Thread(target=poll) for _ in range(n)]
    for thread in threads:
        thread.start()
    return threads, answers


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RefusingRedis]:
    """A Redis of this test's own: pub/sub channels are server-wide (not per database),
    so counting or killing subscriptions must not see other tests' clients."""
    server = RefusingRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app_on(own_redis: RefusingRedis) -> Iterator[Flask]:
    """The gateway app on :func:`own_redis`; its subscriber stopped afterwards."""
    url = own_redis.url()
    app = build_app(make_settings(redis_url=url, broker_url=url, result_backend=url))
    try:
        yield app
    finally:
        app.extensions["liveness"].jobs.store.watcher.close()


def _submit(client: Any) -> str:
    response = client.post("/v1/jobs", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                           headers=auth(), content_type="multipart/form-data")
    assert response.status_code == 202
    return str(response.get_json()["id"])


def _wait_for_waiters(watcher: Any, n: int) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end and watcher.waiting() < n:
        time.sleep(0.05)
    assert watcher.waiting() == n


@pytest.mark.timeout(60)
def test_long_polls_share_one_subscription_per_process(own_redis: RefusingRedis,
                                                       app_on: Flask) -> None:
    app = app_on
    job_id = _submit(app.test_client())
    watcher = app.extensions["liveness"].jobs.store.watcher
    threads, answers = _long_polls(app.test_client, job_id, 20, 20)
    _wait_for_waiters(watcher, 20)
    # One pattern subscription on one connection for all of them, none per job channel.
    server = own_redis.client
    assert server.execute_command("PUBSUB", "NUMPAT") == 1
    assert server.pubsub_numsub(JobStore.done_channel(job_id))[0][1] == 0
    assert sum(1 for c in server.client_list() if int(c["psub"]) or int(c["sub"])) == 1
    finish(app, job_id)
    for thread in threads:
        thread.join(10)
    assert len(answers) == 20
    assert all(body["status"] == "done" for _, body in answers)
    # Woken by the notification, not by the periodic re-check.
    assert max(seconds for seconds, _ in answers) < watcher.recheck_s


@pytest.mark.timeout(60)
def test_a_long_poll_is_woken_when_its_notification_was_lost(own_redis: RefusingRedis,
                                                             app_on: Flask) -> None:
    """The subscription drops and the job finishes before it is back: the waiter is
    woken on resubscription (or by its re-check), not at the end of its wait."""
    app = app_on
    job_id = _submit(app.test_client())
    watcher = app.extensions["liveness"].jobs.store.watcher
    threads, answers = _long_polls(app.test_client, job_id, 1, 30)
    _wait_for_waiters(watcher, 1)
    assert watcher.subscribed.wait(10)
    own_redis.client.client_kill_filter(_type="pubsub")
    finish(app, job_id)  # published while no one is subscribed
    threads[0].join(25)
    [(seconds, body)] = answers
    assert body["status"] == "done" and seconds < 15
