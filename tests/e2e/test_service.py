"""End to end over HTTP: real gunicorn gateway, real Celery workers, real Redis (DB 13).

No eager mode and no fakes: every request goes through the gateway, the broker, a
worker process and the fusion worker, exactly as in production.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
import redis
from skimage import data, transform

from cli.processes import LogSink, ManagedProcess, free_port, redis_server_argv
from common.config import PROJECT_ROOT
from common.jobstore import JobStore
from common.result import CSV_BASE_COLUMNS as BASE_COLUMNS
from common.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.e2e.support import WEBHOOK_SECRET, jpeg
from tests.procs import Stack, multipart

pytestmark = pytest.mark.integration

FUSED_FIELDS = ("score", "decision", "threshold", "fusion", "face_found", "face", "reasons")


def cli_result(path: Path, tests: str | None = None) -> dict:
    """What ``liveness score --json`` (``--tests tests``) says about the same file."""
    out = subprocess.run([sys.executable, "-c", "from cli import main; main()",
                          "score", str(path), "--json",
                          *(["--tests", tests] if tests else [])],
                         capture_output=True, text=True, check=False,
                         env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])["result"]


def test_submit_poll_equals_liveness_score(stack: Stack, face_jpeg: bytes, tmp_path: Path):
    body, content_type = multipart([("image", "face.jpg", face_jpeg)])
    status, headers, raw = stack.request("POST", "/v1/jobs", body=body,
                                         headers={"Content-Type": content_type})
    assert status == 202, raw
    accepted = json.loads(raw)
    assert accepted["status"] in ("queued", "running", "done")
    assert headers["Location"].endswith(f"/v1/jobs/{accepted['id']}")
    assert accepted["links"]

    job = stack.wait_job(accepted["id"])
    path = tmp_path / "face.jpg"
    path.write_bytes(face_jpeg)
    expected = cli_result(path)

    assert job["status"] == "done", job
    # Equal, but for the last bits of the score (multi-threaded float reductions differ
    # between processes, ~1e-11): the decision is taken on the unrounded score.
    exact = [k for k in FUSED_FIELDS if k != "score"]
    assert {k: job[k] for k in exact} == {k: expected[k] for k in exact}
    assert job["score"] == pytest.approx(expected["score"], rel=1e-9, abs=1e-12)
    assert job["face_found"] is True and job["decision"] in ("live", "spoof")
    # The raw test score is reproducible to ~1e-15 only (the first call in a process
    # sums in another order than later ones); the fused fields above are exactly equal.
    # A job that names no tests runs the registry's defaults, the fusion's recommendation.
    assert sorted(job["tests"]) == ["cnn", "fasnet", "quality"]
    for test in ("cnn", "fasnet", "quality"):
        assert job["tests_detail"][test]["score"] == pytest.approx(
            expected["tests"][test]["score"], rel=1e-6), test
        assert job["tests_detail"][test]["model"] == expected["tests"][test]["model"]
    assert job["missing_tests"] == {}


def _motion_blurred(image: np.ndarray, length: int) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(image, -1, kernel)


@pytest.mark.parametrize(("kind", "reason"), [
    ("dark", "too_dark"), ("blurred", "too_blurry"), ("faceless", "no_face")])
def test_unjudgeable_captures_get_retry_with_the_reason(stack: Stack, kind: str, reason: str):
    """A capture the face stage cannot judge is answered ``retry`` (never live or spoof)."""
    astronaut = data.astronaut()
    image = {
        "dark": (astronaut * 0.12).astype(np.uint8),
        "blurred": _motion_blurred(astronaut, 21),
        "faceless": data.coffee(),
    }[kind]
    body, content_type = multipart([("image", f"{kind}.jpg", jpeg(image))])
    status, _, raw = stack.request("POST", "/v1/jobs", body=body,
                                   headers={"Content-Type": content_type})
    assert status == 202, raw
    job = stack.wait_job(json.loads(raw)["id"])
    assert job["status"] == "done", job
    assert job["decision"] == "retry"
    assert reason in job["reasons"] and reason in job["face"]["reasons"]
    assert job["face"]["capture_ok"] is False
    assert job["tests_detail"]["cnn"]["score"] is not None  # the tests still ran


def _batch_images(n: int) -> list[tuple[str, bytes]]:
    """n different real photographs: faces at several sizes and crops, and non-faces."""
    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    items = []
    for i in range(n):
        image = sources[i % len(sources)]
        scale = 0.6 + 0.1 * (i // len(sources))
        resized = transform.rescale(image, scale, channel_axis=2, anti_aliasing=True)
        items.append((f"img_{i:02d}.jpg", jpeg((resized * 255).astype(np.uint8))))
    return items


def test_batch_of_20_and_its_csv(stack: Stack):
    items = _batch_images(20)
    body, content_type = multipart([("images", name, content) for name, content in items])
    status, _, raw = stack.request("POST", "/v1/batches", body=body,
                                   headers={"Content-Type": content_type})
    assert status == 202, raw
    batch_id = json.loads(raw)["id"]

    batch = stack.wait_batch(batch_id)
    assert batch["status"] == "done", batch["counts"]
    assert batch["total"] == 20 and batch["counts"]["done"] == 20
    assert [item["name"] for item in batch["items"]] == [name for name, _ in items]

    status, headers, raw = stack.request("GET", f"/v1/batches/{batch_id}?format=csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert len(rows) == 20
    assert tuple(rows[0])[: len(BASE_COLUMNS)] == BASE_COLUMNS
    assert "cnn_score" in rows[0] and "fasnet_score" in rows[0]
    for row, item in zip(rows, batch["items"], strict=True):
        assert row["path"] == item["name"]
        assert row["decision"] == item["result"]["decision"]
        assert float(row["score_live"]) == pytest.approx(item["result"]["score"])


def test_idempotency_key_returns_the_same_job(stack: Stack, face_jpeg: bytes):
    body, content_type = multipart([("image", "face.jpg", face_jpeg)])
    first_headers = {"Content-Type": content_type, "Idempotency-Key": "order-42"}
    s1, _, r1 = stack.request("POST", "/v1/jobs", body=body, headers=first_headers)
    s2, _, r2 = stack.request("POST", "/v1/jobs", body=body, headers=first_headers)
    s3, _, r3 = stack.request("POST", "/v1/jobs", body=body,
                              headers={**first_headers, "Idempotency-Key": "order-43"})
    s4, _, r4 = stack.request("POST", "/v1/jobs", key="other", body=body, headers=first_headers)
    assert (s1, s3, s4) == (202, 202, 202) and s2 in (200, 202), (s1, s2, s3, s4)
    ids = [json.loads(r)["id"] for r in (r1, r2, r3, r4)]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3   # another key, or another owner: a new job
    for job_id, key in ((ids[0], "dev"), (ids[2], "dev"), (ids[3], "other")):
        assert stack.wait_job(job_id, key)["status"] == "done"


def test_a_job_is_visible_only_to_its_key(stack: Stack, face_jpeg: bytes):
    job_id = stack.submit(face_jpeg)["id"]
    assert stack.request("GET", f"/v1/jobs/{job_id}", key="other")[0] == 404
    assert stack.request("DELETE", f"/v1/jobs/{job_id}", key="other")[0] == 404
    assert stack.request("GET", f"/v1/jobs/{job_id}", key=None)[0] == 401
    body, content_type = multipart([("images", "a.jpg", face_jpeg)])
    status, _, raw = stack.request("POST", "/v1/batches", body=body,
                                   headers={"Content-Type": content_type})
    assert status == 202
    batch_id = json.loads(raw)["id"]
    assert stack.request("GET", f"/v1/batches/{batch_id}", key="other")[0] == 404
    assert stack.wait_job(job_id)["status"] == "done"     # the owner still sees it
    assert stack.request("GET", f"/v1/jobs/{job_id}", key="other")[0] == 404


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    arrived = threading.Event()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        type(self).arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_is_posted_and_signed(stack: Stack, face_jpeg: bytes):
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        job_id = stack.submit(face_jpeg, callback_url=url)["id"]
        assert _Hook.arrived.wait(60), "no webhook arrived"
    finally:
        server.shutdown()
    headers, body = _Hook.received[0]
    stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert stack.webhook_secret == WEBHOOK_SECRET
    assert verify(body, stack.tenant_webhook_secret("dev"), stamp, signature)
    assert not verify(body + b" ", stack.tenant_webhook_secret("dev"), stamp, signature)
    # Signed with the submitting key's own secret: not another key's, not the master.
    assert not verify(body, stack.tenant_webhook_secret("other"), stamp, signature)
    assert not verify(body, WEBHOOK_SECRET, stamp, signature)
    payload = json.loads(body)
    assert payload["id"] == job_id and payload["status"] == "done"
    assert payload["score"] == stack.wait_job(job_id)["score"]


def test_image_is_gone_after_completion_and_delete_erases(stack: Stack, face_jpeg: bytes,
                                                          redis_client: redis.Redis):
    job_id = stack.submit(face_jpeg)["id"]
    assert stack.wait_job(job_id)["status"] == "done"
    assert not redis_client.exists(JobStore.image_key(job_id))
    assert redis_client.exists(JobStore.job_key(job_id))
    # The image bytes are nowhere in Redis (not in a task message, not in a result).
    digest = hashlib.sha256(face_jpeg).digest()
    assert all(hashlib.sha256(redis_client.get(k) or b"").digest() != digest
               for k in redis_client.scan_iter(count=1000) if redis_client.type(k) == b"string")

    status, _, _ = stack.request("DELETE", f"/v1/jobs/{job_id}")
    assert status in (200, 204)
    assert stack.request("GET", f"/v1/jobs/{job_id}")[0] == 404
    assert list(redis_client.scan_iter(match=f"*{job_id}*")) == []


def _unacked_on(queue: str, client: redis.Redis) -> int:
    """Messages delivered from ``queue`` and not acknowledged (kombu's ``unacked`` hash)."""
    return sum(json.loads(v)[2] == queue for v in client.hvals("unacked"))


def test_worker_killed_mid_task_job_still_completes(stack: Stack, face_jpeg: bytes,
                                                    redis_client: redis.Redis):
    """SIGKILL the whole quality worker (leader and child) while it holds a task.

    A kill can land between two tasks (a few ms): then it is retried. Such a kill may
    also land after the worker popped its next message and before kombu recorded it as
    unacknowledged — kombu's Redis transport loses that one message, and the job fails
    at its deadline with an infrastructure code (never a liveness decision). The
    jobs of the attempt whose kill landed mid-task are the proof of redelivery.
    """
    earlier: list[str] = []
    job_ids: list[str] = []
    killed_mid_task = False
    for _attempt in range(3):
        earlier += job_ids
        job_ids = [stack.submit(face_jpeg, tests=["quality"])["id"] for _ in range(8)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _unacked_on("quality", redis_client) == 0:
            time.sleep(0.005)
        stack.kill_pool("quality")
        # Its message was delivered and never acknowledged: it is still in the broker.
        killed_mid_task = _unacked_on("quality", redis_client) >= 1
        stack.start_workers(["quality"])            # a replacement, as an orchestrator would
        if killed_mid_task:
            break
    assert killed_mid_task, "the quality worker never held a task when killed"
    jobs = [stack.wait_job(job_id, timeout_s=90) for job_id in job_ids]
    assert [job["status"] for job in jobs] == ["done"] * len(jobs)
    assert all(job["missing_tests"] == {} and job["tests_detail"]["quality"]["score"] is not None
               for job in jobs), [job["missing_tests"] for job in jobs]
    for job in (stack.wait_job(job_id, timeout_s=90) for job_id in earlier):
        # never lost as a job; at worst failed at its deadline with an infrastructure code
        assert job["status"] == "done" or job["error"].startswith(("no_worker", "worker_lost"))


def test_the_cnn_pool_answers_over_http(stack: Stack, face_jpeg: bytes):
    """The cnn pool serves models/cnn: a score, its model name, fused with quality."""
    job = stack.wait_job(stack.submit(face_jpeg, tests=["quality", "cnn"])["id"])
    assert job["status"] == "done" and job["missing_tests"] == {}
    detail = job["tests_detail"]["cnn"]
    assert detail["error"] is None and 0.0 <= detail["score"] <= 1.0
    shipped = json.loads((PROJECT_ROOT / "models/cnn/model.json").read_text())["info"]
    assert detail["model"] == shipped["name"] and detail["threshold"] == shipped["threshold"]


@pytest.mark.parametrize("test", ["fasnet", "depth3d"])
def test_a_pool_job_over_http_equals_liveness_score(stack: Stack, face_jpeg: bytes,
                                                    tmp_path: Path, test: str):
    """tests=<fasnet | depth3d> over HTTP: the pool's score (depth3d: mesh backend) and the
    fused fields equal what ``liveness score --tests <test>`` prints for the same file."""
    job = stack.wait_job(stack.submit(face_jpeg, tests=[test])["id"])
    assert job["status"] == "done" and job["missing_tests"] == {}, job
    path = tmp_path / "face.jpg"
    path.write_bytes(face_jpeg)
    expected = cli_result(path, test)
    detail, local = job["tests_detail"][test], expected["tests"][test]
    assert detail["error"] is None and 0.0 <= detail["score"] <= 1.0
    assert detail["score"] == pytest.approx(local["score"], abs=1e-6)
    for key in ("model", "version", "threshold"):
        assert detail[key] == local[key], key
    exact = [k for k in FUSED_FIELDS if k != "score"]
    assert {k: job[k] for k in exact} == {k: expected[k] for k in exact}


def test_explain_true_returns_the_cnn_grad_cam_png(stack: Stack, face_jpeg: bytes):
    """explain=true over HTTP: links.explanations.cnn serves a PNG to the job's key only."""
    job = stack.wait_job(stack.submit(face_jpeg, tests=["cnn"], explain=True)["id"])
    assert job["status"] == "done" and job["explanations"] == ["cnn"], job
    link = job["links"]["explanations"]["cnn"]
    status, headers, body = stack.request("GET", link)
    assert status == 200 and body.startswith(b"\x89PNG")
    assert {k.lower(): v for k, v in headers.items()}["content-type"] == "image/png"
    status, _, body = stack.request("GET", link, key="other")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_explain_without_a_test_that_explains_is_refused(stack: Stack, face_jpeg: bytes):
    """explain=true without a test that explains is a 422 and leaves no job."""
    image = base64.b64encode(face_jpeg).decode()
    status, _, body = stack.request("POST", "/v1/jobs", body={
        "image": image, "tests": ["quality"], "explain": True})
    assert status == 422 and json.loads(body)["error"]["code"] == "explain_unsupported"


def test_a_stopped_pool_fails_the_job_no_worker(stack: Stack, face_jpeg: bytes,
                                                redis_client: redis.Redis):
    stack.stop_pool("cnn")
    try:
        job_id = stack.submit(face_jpeg, tests=["quality", "cnn"])["id"]
        job = stack.wait_job(job_id, timeout_s=90)
    finally:
        redis_client.delete("cnn")   # the cnn message nobody consumed
    # An outage is not a liveness answer: no decision, an infrastructure error instead.
    assert job["status"] == "failed" and job["decision"] is None and job["score"] is None
    assert job["error"].startswith("no_worker: no answer from cnn (no_worker)")


def test_redis_down_gives_503_not_a_hang(tmp_path: Path):
    """A gateway whose Redis goes away answers 503 with a JSON error within seconds."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    sink = LogSink(tmp_path / "redis.log")
    redis_process = ManagedProcess("redis", redis_server_argv(url), sink=sink)
    service = Stack(url, tmp_path, extra_env={"LIVENESS_REQUIRED_QUEUES": "face,quality,fusion"},
                    gateway_workers=1)
    try:
        assert sink.wait_for("Ready to accept connections", 10)
        service.start_gateway()
        image = jpeg(data.astronaut())
        assert service.submit(image)["status"] == "queued"       # Redis up: accepted
        redis_process.stop()
        encoded = {"image": base64.b64encode(image).decode()}
        for method, path, body in (("POST", "/v1/jobs", encoded),
                                   ("GET", "/v1/jobs/0123456789abcdef0123456789abcdef", None)):
            start = time.monotonic()
            status, _, raw = service.request(method, path, body=body, timeout=20)
            elapsed = time.monotonic() - start
            assert status == 503, (method, status, raw)
            assert json.loads(raw)["error"]["code"]
            assert elapsed < 10, f"{method} took {elapsed:.1f}s"
        assert service.request("GET", "/readyz", key=None, timeout=20)[0] == 503
        assert service.request("GET", "/healthz", key=None)[0] == 200
    finally:
        service.stop()
        redis_process.stop()
