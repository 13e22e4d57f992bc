"""The Python client (clients/python) against scripted answers: retries with backoff
that honour Retry-After, one idempotency key per submission whatever the retries,
errors as LivenessError, long-poll waiting, the asyncio twin, webhook verification of
both signatures the service sends, and the dataclasses against the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from liveness_client import (
    AsyncLivenessClient,
    Batch,
    Face,
    Job,
    JobTimeoutError,
    LivenessClient,
    LivenessError,
    RetryPolicy,
    TestDetail,
    WebhookVerificationError,
    verify_webhook,
)
from liveness_client.models import BatchItem

from common.webhooks import sign, standard_secret, standard_sign, tenant_secret

DONE = {"id": "j1", "status": "done", "tests": ["cnn", "fasnet"], "score": 0.83,
        "decision": "live", "threshold": 0.12, "fusion": "rule-log-odds", "face_found": True,
        "face": {"box": {"top": 1, "right": 9, "bottom": 9, "left": 1}, "found": True,
                 "method": "blazeface", "n_faces": 1, "reasons": [], "capture_ok": True,
                 "score": 0.9, "rotation": 0, "landmarks": [[2.0, 3.0]], "pose": None,
                 "quality": {"face_side": 8.0}},
        "reasons": [], "tests_detail": {"cnn": {"score": 0.9, "model": "m", "version": "1",
                                                "threshold": 0.6, "seconds": 0.02,
                                                "error": None}},
        "missing_tests": {}, "timings": {}, "operating_point": None, "probability": None,
        "fused_score": None, "error": None, "explanations": [], "links": {"self": "/v1/jobs/j1"},
        "a_field_from_a_newer_service": 1}


@pytest.fixture
def no_sleep(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def _client(handler, attempts: int = 5) -> LivenessClient:
    return LivenessClient("http://svc", "k-1", transport=httpx.MockTransport(handler),
                          retry=RetryPolicy(attempts=attempts, base_s=0.01, max_s=0.02))


def test_a_submission_is_retried_with_one_idempotency_key_and_retry_after(no_sleep):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "3"},
                                  json={"error": {"code": "rate_limited", "message": "slow"}})
        if len(seen) == 2:
            raise httpx.ConnectError("reset", request=request)
        return httpx.Response(202, json={"id": "j1", "status": "queued", "links": {}})

    job = _client(handler).submit(b"\xff\xd8jpeg", tests=["cnn"])
    assert job.id == "j1" and job.status == "queued" and not job.finished
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and next(iter(keys)).startswith("py-")
    assert no_sleep[0] >= 3.0  # Retry-After honoured
    assert all(r.headers["Authorization"] == "Bearer k-1" for r in seen)
    assert b'name="tests"' in seen[-1].content and b"cnn" in seen[-1].content
    second = _client(handler).submit(b"x")
    assert second.id == "j1"  # (the handler answers the same; a new call has a new key)


def test_errors_carry_the_services_code_and_retries_stop(no_sleep):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": "1"},
                              json={"error": {"code": "overloaded", "message": "busy"}})

    with pytest.raises(LivenessError) as raised:
        _client(handler, attempts=3).get("j1")
    assert raised.value.status == 503 and raised.value.code == "overloaded"
    assert raised.value.retry_after == 1.0 and len(calls) == 3
    refused = _client(lambda r: httpx.Response(
        422, json={"error": {"code": "unknown_test", "message": "no test 'x'"}}))
    with pytest.raises(LivenessError, match="unknown_test"):
        refused.submit(b"x", tests=["x"])
    text = _client(lambda r: httpx.Response(502, text="bad gateway"))
    with pytest.raises(LivenessError, match="502 http_error"):
        text.get("j1")


def test_wait_long_polls_until_the_job_is_done(no_sleep):
    answers = iter([{"id": "j1", "status": "queued"}, {"id": "j1", "status": "running"},
                    DONE])
    waits = []

    def handler(request: httpx.Request) -> httpx.Response:
        waits.append(request.url.params.get("wait"))
        return httpx.Response(200, json=next(answers))

    job = _client(handler).wait("j1", timeout=60, poll_s=20)
    assert job.finished and job.live and job.score == 0.83
    assert waits[0] is None and waits[1] == "20"
    assert isinstance(job.face, Face) and job.face.box.top == 1
    assert job.tests_detail["cnn"] == TestDetail(0.9, "m", "1", 0.6, 0.02, None)
    assert job.extra == {"a_field_from_a_newer_service": 1}
    stuck = _client(lambda r: httpx.Response(200, json={"id": "j1", "status": "queued"}))
    with pytest.raises(JobTimeoutError) as raised:
        stuck.wait("j1", timeout=0)
    assert raised.value.last.status == "queued"


def test_a_batch_is_not_resent_after_a_lost_connection(no_sleep):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("reset", request=request)

    with pytest.raises(httpx.ConnectError):
        _client(handler).submit_batch([("a.jpg", b"1"), b"2"])
    assert len(calls) == 1
    with pytest.raises(ValueError, match="at least one image"):
        _client(handler).submit_batch([])
    batch = Batch.from_dict({"id": "b1", "status": "done", "total": 1, "counts": {"done": 1},
                             "items": [{"name": "a.jpg", "job_id": "j1", "status": "done",
                                        "result": {"decision": "live"}, "error": None}]})
    assert batch.finished and batch.items[0] == BatchItem("a.jpg", "j1", "done",
                                                          {"decision": "live"}, None)


def test_the_asyncio_client_does_the_same():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            if len(seen) == 1:
                return httpx.Response(503, json={"error": {"code": "overloaded",
                                                           "message": "busy"}})
            return httpx.Response(202, json={"id": "j1", "status": "queued"})
        return httpx.Response(200, json=DONE)

    async def run() -> Job:
        async with AsyncLivenessClient("http://svc", "k-1",
                                       transport=httpx.MockTransport(handler),
                                       retry=RetryPolicy(base_s=0.001, max_s=0.002)) as c:
            return await c.score(b"img")

    job = asyncio.run(run())
    assert job.decision == "live"
    posts = [r for r in seen if r.method == "POST"]
    assert len(posts) == 2 and posts[0].headers["Idempotency-Key"] == posts[1].headers[
        "Idempotency-Key"]


def test_webhooks_of_both_schemes_verify_and_tampering_is_refused():
    secret = tenant_secret("a-master-secret-of-at-least-32-chars!", "alice")
    body = json.dumps(DONE).encode()
    now = 1_700_000_000
    legacy = {"X-Liveness-Timestamp": str(now), "X-Liveness-Signature": sign(body, secret, now)}
    standard = {"webhook-id": "msg_j1", "webhook-timestamp": str(now),
                "webhook-signature": standard_sign(body, secret, "msg_j1", now)}
    for headers in (legacy, standard):
        for key in (secret, standard_secret(secret)):
            assert verify_webhook(body, headers, key, now=now + 5).id == "j1"
        with pytest.raises(WebhookVerificationError):
            verify_webhook(body + b" ", headers, secret, now=now)
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify_webhook(body, headers, secret, now=now + 3600)
    other = tenant_secret("a-master-secret-of-at-least-32-chars!", "bob")
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(body, standard, other, now=now)
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(body, {}, secret)


def test_a_challenge_is_issued_and_answered_with_its_frames_in_order(no_sleep):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/challenges":
            return httpx.Response(201, json={"id": "c1", "colours": ["#ff0000", "#00ffff"],
                                             "step_ms": 400, "frames": 2,
                                             "expires_at": "2026-12-07T00:00:00Z",
                                             "links": {"jobs": "/v1/jobs"}})
        return httpx.Response(202, json={"id": "j1", "status": "queued", "links": {}})

    client = _client(handler)
    challenge = client.challenge()
    assert (challenge.id, challenge.colours, challenge.step_ms) == ("c1", ("#ff0000",
                                                                           "#00ffff"), 400)
    client.submit(b"still", challenge="c1", frames=[b"first-frame", b"second-frame"])
    body = seen[-1].content
    assert b'name="challenge"' in body and b"c1" in body
    assert body.index(b"first-frame") < body.index(b"second-frame")
    assert body.count(b'name="frames"') == 2
    with pytest.raises(ValueError, match="both or neither"):
        client.submit(b"still", challenge="c1")
    done = Job.from_dict({**DONE, "challenge": {"outcome": "failed", "why": "wrong_sequence",
                                                "correlation": 0.1, "frames": 2}})
    assert not done.challenge.passed and done.challenge.why == "wrong_sequence"
    assert Job.from_dict(DONE).challenge is None
