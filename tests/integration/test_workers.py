"""The spine with real parts: Redis DB 15, real Celery workers, the JobService API."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
import redis
import skimage.data

from common.config import PROJECT_ROOT, Settings
from common.errors import NotAnImageError
from common.fusion import NormalisedLogOddsFusion
from common.imageio import decode_image
from common.jobs import JobService, StoreUnavailableError, UnknownTestError
from common.jobstore import STAGES_METRICS_KEY, JobStore
from common.pipeline import load_tests, score_image
from common.registry import default_registry
from common.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, tenant_secret, verify
from tests.integration.support import WorkerPools, jpeg, with_settings
from workers.base import execute_face_stage, execute_test
from workers.fusion.tasks import finalize_job

pytestmark = pytest.mark.integration

WAIT_S = 60.0


@pytest.fixture(scope="module")
def astronaut() -> bytes:
    return jpeg(skimage.data.astronaut())


def service(settings: Settings, celery_app, **changes: object) -> JobService:
    s = with_settings(settings, **changes) if changes else settings
    return JobService(JobStore.from_settings(s), celery_app, s)


@pytest.fixture
def jobs(pools: WorkerPools, settings: Settings, celery_app) -> JobService:
    return service(settings, celery_app)


def wait_done(jobs: JobService, owner: str, job_id: str, timeout_s: float = WAIT_S) -> dict:
    view = jobs.wait(owner, job_id, timeout_s)
    assert view is not None
    assert view["status"] in ("done", "failed"), view
    return view


def job_keys(client: redis.Redis, job_id: str) -> list[bytes]:
    return list(client.scan_iter(match=f"liveness:*{job_id}*"))


def test_result_equals_in_process_score(jobs: JobService, astronaut: bytes) -> None:
    job = jobs.submit("owner-a", astronaut, tests=["quality"])
    assert job["status"] == "queued" and job["tests"] == ["quality"]
    view = wait_done(jobs, "owner-a", job["id"])
    expected = score_image(decode_image(astronaut), load_tests(["quality"])).to_dict()
    assert view["status"] == "done"
    for key in ("decision", "threshold", "fusion", "face_found", "face", "reasons"):
        assert view[key] == expected[key], key
    # The scores vary in their last bits between processes (multi-threaded float
    # reductions, ~1e-11); they are reported unrounded, as the decision uses them.
    assert view["score"] == pytest.approx(expected["score"], rel=1e-9, abs=1e-12)
    detail, local = view["tests_detail"]["quality"], expected["tests"]["quality"]
    assert detail["score"] == pytest.approx(local["score"], rel=1e-9, abs=1e-12)
    for key in ("model", "version", "threshold", "error"):
        assert detail[key] == local[key], key
    assert view["missing_tests"] == {}
    assert view["timings"]["finalized_by"] == "chord"
    assert view["error"] is None


def test_image_deleted_and_result_ttl_set(jobs: JobService, astronaut: bytes,
                                          redis_db: redis.Redis) -> None:
    job = jobs.submit("owner-a", astronaut)
    assert redis_db.exists(JobStore.image_key(job["id"]))
    assert 0 < redis_db.ttl(JobStore.image_key(job["id"])) <= jobs.settings.image_ttl_s
    wait_done(jobs, "owner-a", job["id"])
    assert not redis_db.exists(JobStore.image_key(job["id"]))
    assert 0 < redis_db.ttl(JobStore.job_key(job["id"])) <= jobs.settings.result_ttl_s


def test_the_cnn_pool_answers_with_the_shipped_model(jobs: JobService, astronaut: bytes
                                                     ) -> None:
    """The cnn pool serves models/cnn; its score equals the in-process one."""
    job = wait_done(jobs, "owner-a", jobs.submit("owner-a", astronaut, tests=["cnn"])["id"])
    assert job["status"] == "done", job
    detail = job["tests_detail"]["cnn"]
    assert detail["error"] is None and 0.0 <= detail["score"] <= 1.0
    shipped = json.loads((PROJECT_ROOT / "models/cnn/model.json").read_text())["info"]
    assert (detail["model"], detail["version"]) == (shipped["name"], shipped["version"])
    local = score_image(decode_image(astronaut), load_tests(["cnn"])).to_dict()
    assert detail["score"] == pytest.approx(local["tests"]["cnn"]["score"], abs=1e-5)
    assert job["decision"] == local["decision"]


def test_the_fasnet_pool_answers_with_the_shipped_model(jobs: JobService, astronaut: bytes
                                                        ) -> None:
    """The fasnet pool serves models/fasnet on the face stage's face; its score equals
    the in-process one."""
    job = wait_done(jobs, "owner-a", jobs.submit("owner-a", astronaut, tests=["fasnet"])["id"])
    assert job["status"] == "done", job
    detail = job["tests_detail"]["fasnet"]
    assert detail["error"] is None and 0.0 <= detail["score"] <= 1.0
    shipped = json.loads((PROJECT_ROOT / "models/fasnet/model.json").read_text())["info"]
    assert (detail["model"], detail["version"], detail["threshold"]) == (
        shipped["name"], shipped["version"], shipped["threshold"])
    local = score_image(decode_image(astronaut), load_tests(["fasnet"])).to_dict()
    assert detail["score"] == pytest.approx(local["tests"]["fasnet"]["score"], abs=1e-6)
    assert job["face"] == local["face"] and job["decision"] == local["decision"]

def test_absent_model_is_recorded_and_fusion_uses_the_rest(settings: Settings,
                                                           astronaut: bytes) -> None:
    """A pool whose model folder is missing answers ``model_unavailable`` and the other
    tests decide (a test with no model code at all is refused at submission instead)."""
    store = JobStore.from_settings(settings)
    registry = default_registry()
    bare = with_settings(settings, models_dir=PROJECT_ROOT / "no-such-models-folder")
    job_id = "nocnnmodel".ljust(32, "0")
    store.create_job(job_id, "owner-a", astronaut, ["quality", "cnn"])
    execute_face_stage(store, settings, job_id)
    assert execute_test(store, settings, registry, "quality", job_id)["error"] is None
    summary = execute_test(store, bare, registry, "cnn", job_id)
    assert summary["score"] is None and summary["error"].startswith("model_unavailable")
    assert finalize_job(store, settings, NormalisedLogOddsFusion(), job_id, "chord")
    both = store.get_job(job_id)["result"]
    assert set(both["missing_tests"]) == {"cnn"} and "test_failed:cnn" in both["reasons"]
    alone = score_image(decode_image(astronaut), load_tests(["quality"]),
                        fusion=NormalisedLogOddsFusion())
    assert both["score"] == pytest.approx(alone.score) and both["decision"] == alone.decision
    store.delete_job(job_id)


def test_a_profile_fitted_on_another_model_version_fails_the_job(settings: Settings,
                                                                 astronaut: bytes,
                                                                 tmp_path) -> None:
    """The fusion pool compares the models that scored a job with the ones its profile
    was fitted on (the gateway cannot see them): another version fails the job with
    ``profile_mismatch`` and no decision (issue 15.1)."""
    from common.profiles import Profile, save_profile

    shipped = json.loads((PROJECT_ROOT / "models/quality/model.json").read_text())["info"]
    fusion = NormalisedLogOddsFusion()
    store = JobStore.from_settings(settings)
    for version, status in (("1999.01.01", "failed"), (shipped["version"], "done")):
        save_profile(tmp_path, Profile(
            "kiosk", "eer", 0.5, {"method": "platt", "a": 1.0, "b": 0.0}, ("quality",),
            {"quality": {"name": shipped["name"], "version": version}}, 0.0, fusion.name,
            fusion.version))
        profiled = with_settings(settings, models_dir=tmp_path)
        time.sleep(1.1)  # the catalog looks for changed profile files once a second
        job_id = f"profiled{version}".replace(".", "").ljust(32, "0")
        store.create_job(job_id, "owner-a", astronaut, ["quality"], profile="kiosk")
        execute_face_stage(store, settings, job_id)
        execute_test(store, settings, default_registry(), "quality", job_id)
        assert finalize_job(store, profiled, fusion, job_id, "chord")
        job = store.get_job(job_id)
        assert job["status"] == status, job
        if status == "failed":
            assert job["error"].startswith("profile_mismatch:") and "1999.01.01" in job["error"]
            assert job["result"] is None
        else:
            assert job["result"]["score"] == job["result"]["probability"]
        store.delete_job(job_id)
    # A profile removed while its job runs: neither decided without it nor with another.
    (tmp_path / "profiles" / "kiosk.json").unlink()
    time.sleep(1.1)
    job_id = "profilegone".ljust(32, "0")
    store.create_job(job_id, "owner-a", astronaut, ["quality"], profile="kiosk")
    execute_face_stage(store, settings, job_id)
    execute_test(store, settings, default_registry(), "quality", job_id)
    assert finalize_job(store, with_settings(settings, models_dir=tmp_path), fusion, job_id,
                        "chord")
    result = store.get_job(job_id)["result"]
    assert result["decision"] == "retry" and "profile_unavailable:kiosk" in result["reasons"]
    store.delete_job(job_id)


def test_a_test_without_model_code_is_refused_at_submission(
        jobs: JobService, astronaut: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from common.jobs import TestUnavailableError
    from common.registry import TestRegistry, TestSpec

    pending = TestSpec(name="mask3d", description="a test whose model code is not installed",
                       scorer=None)
    monkeypatch.setattr(jobs, "registry", TestRegistry([*jobs.registry, pending]))
    with pytest.raises(TestUnavailableError, match="mask3d"):
        jobs.submit("owner-a", astronaut, tests=["quality", "mask3d"])


def test_the_depth3d_pool_answers_with_the_shipped_model(jobs: JobService, astronaut: bytes
                                                         ) -> None:
    """The depth3d pool serves models/depth3d (mesh backend) on the face stage's face;
    its score equals the in-process one."""
    job = wait_done(jobs, "owner-a", jobs.submit("owner-a", astronaut, tests=["depth3d"])["id"])
    assert job["status"] == "done", job
    detail = job["tests_detail"]["depth3d"]
    assert detail["error"] is None and 0.0 <= detail["score"] <= 1.0
    shipped = json.loads((PROJECT_ROOT / "models/depth3d/model.json").read_text())["info"]
    assert (detail["model"], detail["version"], detail["threshold"]) == (
        shipped["name"], shipped["version"], shipped["threshold"])
    local = score_image(decode_image(astronaut), load_tests(["depth3d"])).to_dict()
    assert detail["score"] == pytest.approx(local["tests"]["depth3d"]["score"], abs=1e-6)
    assert job["face"] == local["face"] and job["decision"] == local["decision"]


def test_a_stopped_pool_fails_the_job_without_a_decision(pools: WorkerPools, settings: Settings,
                                                         celery_app, astronaut: bytes,
                                                         redis_db: redis.Redis) -> None:
    """An outage is not a liveness answer: the job fails ``no_worker``, no score at all."""
    pools.stop("cnn")
    jobs = service(settings, celery_app, job_deadline_s=3)
    try:
        job = jobs.submit("owner-a", astronaut, tests=["quality", "cnn"])
        view = wait_done(jobs, "owner-a", job["id"])
    finally:
        redis_db.delete("cnn")  # the message nobody consumed
    assert view["status"] == "failed"
    assert view["error"].startswith("no_worker: no answer from cnn (no_worker)")
    assert view["score"] is None and view["decision"] is None


def test_a_job_no_worker_ever_starts_fails_at_its_start_timeout(
        pools: WorkerPools, settings: Settings, celery_app, astronaut: bytes,
        redis_db: redis.Redis) -> None:
    pools.stop("face")
    pools.stop("quality")
    jobs = service(settings, celery_app, job_start_timeout_s=2)
    try:
        job = jobs.submit("owner-a", astronaut, tests=["quality"])
        view = wait_done(jobs, "owner-a", job["id"], timeout_s=30)
    finally:
        redis_db.delete("face", "quality")
    assert view["status"] == "failed" and view["decision"] is None
    assert view["error"].startswith("no_worker: no answer from face (no_worker), quality")


def _held_unacknowledged(client: redis.Redis, queue: str) -> bool:
    """A message of ``queue`` was delivered and not acknowledged (kombu's ``unacked``)."""
    return any(json.loads(v)[2] == queue for v in client.hvals("unacked"))


def test_sigkilled_worker_does_not_lose_the_job(pools: WorkerPools, settings: Settings,
                                                celery_app, astronaut: bytes,
                                                redis_db: redis.Redis) -> None:
    # The deadline is far beyond the visibility timeout: only redelivery can finish it.
    jobs = service(settings, celery_app, job_deadline_s=120)
    for _attempt in range(5):
        pools.stop("quality")
        job = jobs.submit("owner-a", astronaut, tests=["quality"])
        pools.start("quality", wait=False)
        end = time.monotonic() + WAIT_S
        while not _held_unacknowledged(redis_db, "quality"):  # delivered to the worker
            assert time.monotonic() < end, "the quality task never started"
            time.sleep(0.002)
        pools.kill("quality")
        if (not redis_db.hexists(JobStore.outcomes_key(job["id"]), "quality")
                and _held_unacknowledged(redis_db, "quality")):
            break  # killed mid-task, before its outcome was written
    else:
        pytest.fail("could not SIGKILL the worker while the task ran")
    assert jobs.get("owner-a", job["id"])["status"] == "running"
    pools.start("quality")
    view = wait_done(jobs, "owner-a", job["id"])
    assert view["status"] == "done"
    assert view["tests_detail"]["quality"]["score"] is not None
    assert view["missing_tests"] == {}
    assert view["timings"]["finalized_by"] == "chord"


def test_the_cnn_pool_stores_a_grad_cam_png_when_asked(jobs: JobService, astronaut: bytes,
                                                       redis_db: redis.Redis) -> None:
    """explain=true: the cnn worker stores its Grad-CAM PNG; it expires with the result."""
    job = wait_done(jobs, "owner-a", jobs.submit("owner-a", astronaut, tests=["quality", "cnn"],
                                                 explain=True)["id"])
    assert job["status"] == "done" and job["explanations"] == ["cnn"], job
    png = jobs.get_explanation("owner-a", job["id"], "cnn")
    assert png is not None and png.startswith(b"\x89PNG")
    # the fusion pool added the job's decision in its own band under the test's verdict
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert tuple(image[-2, -2]) == (60, 40, 0)
    assert jobs.get_explanation("owner-b", job["id"], "cnn") is None
    assert jobs.get_explanation("owner-a", job["id"], "quality") is None  # no such explainer
    ttl = redis_db.ttl(JobStore.explanations_key(job["id"]))
    assert 0 < ttl <= jobs.settings.result_ttl_s
    plain = wait_done(jobs, "owner-a", jobs.submit("owner-a", astronaut, tests=["cnn"])["id"])
    assert plain["explanations"] == [] and not redis_db.exists(
        JobStore.explanations_key(plain["id"]))


def test_delete_erases_every_key(jobs: JobService, astronaut: bytes,
                                 redis_db: redis.Redis) -> None:
    job = jobs.submit("owner-a", astronaut, idempotency_key="erase-me")
    wait_done(jobs, "owner-a", job["id"])
    assert job_keys(redis_db, job["id"])
    assert jobs.delete("owner-b", job["id"]) is False
    assert jobs.delete("owner-a", job["id"]) is True
    assert job_keys(redis_db, job["id"]) == []
    assert not redis_db.exists(JobStore.idem_key("owner-a", "erase-me"))
    assert jobs.get("owner-a", job["id"]) is None
    assert jobs.delete("owner-a", job["id"]) is False


def test_results_expire_to_a_tombstone(pools: WorkerPools, settings: Settings, celery_app,
                                       astronaut: bytes, redis_db: redis.Redis) -> None:
    jobs = service(settings, celery_app, result_ttl_s=1)
    job = jobs.submit("owner-a", astronaut)
    wait_done(jobs, "owner-a", job["id"])
    end = time.monotonic() + 20
    while (view := jobs.get("owner-a", job["id"]))["status"] != "expired":
        assert time.monotonic() < end, view
        time.sleep(0.1)
    assert view["score"] is None
    assert jobs.get("owner-b", job["id"]) is None
    assert job_keys(redis_db, job["id"]) == [JobStore.expired_key(job["id"]).encode()]


def test_idempotency_key_returns_the_same_job(jobs: JobService, astronaut: bytes) -> None:
    first = jobs.submit("owner-a", astronaut, idempotency_key="k-1")
    again = jobs.submit("owner-a", astronaut, idempotency_key="k-1")
    other = jobs.submit("owner-b", astronaut, idempotency_key="k-1")
    assert again["id"] == first["id"]
    assert other["id"] != first["id"]
    wait_done(jobs, "owner-a", first["id"])
    assert jobs.submit("owner-a", astronaut, idempotency_key="k-1")["status"] == "done"
    wait_done(jobs, "owner-b", other["id"])


def test_jobs_are_visible_only_to_their_owner(jobs: JobService, astronaut: bytes) -> None:
    job = jobs.submit("owner-a", astronaut)
    assert jobs.get("owner-b", job["id"]) is None
    assert jobs.wait("owner-b", job["id"], 1) is None
    assert jobs.get("owner-a", "0" * 32) is None
    wait_done(jobs, "owner-a", job["id"])


def test_bad_input_is_refused_before_queueing(jobs: JobService, astronaut: bytes) -> None:
    with pytest.raises(UnknownTestError) as info:
        jobs.submit("owner-a", astronaut, tests=["quality", "palmistry"])
    assert info.value.code == "unknown_test" and info.value.http_status == 422
    with pytest.raises(NotAnImageError):
        jobs.submit("owner-a", b"definitely not an image")


def test_batch_tracks_every_item(jobs: JobService, astronaut: bytes) -> None:
    coffee = jpeg(skimage.data.coffee())
    items = [("astronaut.jpg", astronaut), ("junk.bin", b"junk"), ("coffee.jpg", coffee)]
    batch = jobs.create_batch("owner-a", items, tests=["quality"])
    assert batch["total"] == 3 and batch["counts"]["error"] == 1
    assert jobs.get_batch("owner-b", batch["id"]) is None
    for item in batch["items"]:
        if item["job_id"]:
            wait_done(jobs, "owner-a", item["job_id"])
    final = jobs.get_batch("owner-a", batch["id"])
    assert final["status"] == "done"
    assert final["counts"]["done"] == 2
    by_name = {item["name"]: item for item in final["items"]}
    assert by_name["junk.bin"]["error"].startswith("not_an_image")
    assert by_name["coffee.jpg"]["result"]["tests"]["quality"]["score"] is not None


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    event: threading.Event

    failures_left = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()
        self.event.set()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[type[_Hook]]:
    handler = type("Hook", (_Hook,), {"received": [], "event": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield handler
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_with_their_owners_secret(jobs: JobService, astronaut: bytes,
                                                      hook_server) -> None:
    """Each tenant's webhook verifies with its own secret only: not another tenant's,
    not the master secret."""
    owners = {jobs.submit(owner, astronaut, callback_url=hook_server.url)["id"]: owner
              for owner in ("owner-a", "owner-b")}
    deadline = time.monotonic() + WAIT_S
    while len(hook_server.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(hook_server.received) == 2, hook_server.received
    master = jobs.settings.webhook_secret
    for headers, body in hook_server.received:
        payload = json.loads(body)
        owner = owners[payload["id"]]
        other = "owner-b" if owner == "owner-a" else "owner-a"
        stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        assert verify(body, tenant_secret(master, owner), stamp, signature)
        assert not verify(body + b" ", tenant_secret(master, owner), stamp, signature)
        assert not verify(body, tenant_secret(master, other), stamp, signature)
        assert not verify(body, master, stamp, signature)
        assert payload["status"] == "done"
        assert payload == jobs.get(owner, payload["id"])


def test_missing_image_becomes_an_outcome_and_fails_the_job(service_env, settings: Settings,
                                                           astronaut: bytes) -> None:
    store = JobStore.from_settings(settings)
    fusion = NormalisedLogOddsFusion()
    job_id = "missing" + "0" * 25
    store.create_job(job_id, "owner-a", astronaut, ["quality"])
    store.delete_image(job_id)
    assert execute_face_stage(store, settings, job_id)["error"] == "image_missing"
    summary = execute_test(store, settings, default_registry(), "quality", job_id)
    assert summary["score"] is None and summary["error"].startswith("image_missing")
    assert finalize_job(store, settings, fusion, job_id, "test") is True
    assert finalize_job(store, settings, fusion, job_id, "test") is False  # idempotent
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"] == "image_missing"
    store.delete_job(job_id)


def test_unreachable_redis_is_a_typed_503(settings: Settings, celery_app,
                                          astronaut: bytes) -> None:
    dead = with_settings(settings, redis_url="redis://127.0.0.1:1/0")
    jobs = JobService(JobStore.from_settings(dead), celery_app, dead)
    for call in (lambda: jobs.submit("owner-a", astronaut), lambda: jobs.get("owner-a", "x"),
                 lambda: jobs.wait("owner-a", "x", 5), lambda: jobs.delete("owner-a", "x")):
        with pytest.raises(StoreUnavailableError) as info:
            call()
        assert info.value.http_status == 503


def test_webhook_is_retried_after_a_failure(jobs: JobService, astronaut: bytes,
                                            hook_server) -> None:
    hook_server.failures_left = 1
    job = jobs.submit("owner-a", astronaut, callback_url=hook_server.url)
    assert hook_server.event.wait(WAIT_S), "the webhook was not retried"
    assert hook_server.failures_left == 0
    assert json.loads(hook_server.received[0][1])["id"] == job["id"]


def test_timeouts_and_bugs_become_outcomes(service_env, settings: Settings, astronaut: bytes,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    import workers.base

    store = JobStore.from_settings(settings)
    for raised, prefix in ((SoftTimeLimitExceeded(), "timeout"),
                           (ZeroDivisionError(), "internal_error")):
        def boom(*_args: object, exc: BaseException = raised) -> None:
            raise exc

        monkeypatch.setattr(workers.base, "run_test", boom)
        job_id = f"{prefix}".ljust(32, "0")
        store.create_job(job_id, "owner-a", astronaut, ["quality"])
        assert execute_face_stage(store, settings, job_id)["found"] is True
        summary = workers.base.execute_test(store, settings, default_registry(), "quality",
                                            job_id)
        assert summary["score"] is None and summary["error"].startswith(prefix)
        assert store.get_outcomes(job_id)["quality"]["error"].startswith(prefix)
        assert store.get_job(job_id)["face"]["found"] is True
        assert store.get_job(job_id)["status"] == "running"
        store.delete_job(job_id)


def test_the_face_is_located_once_per_job_and_stored(jobs: JobService, astronaut: bytes,
                                                    redis_db: redis.Redis) -> None:
    before = int(redis_db.hget(STAGES_METRICS_KEY, "face_detections") or 0)
    ids = [jobs.submit("owner-a", astronaut, tests=["quality", "cnn"])["id"]
           for _ in range(3)]
    views = [wait_done(jobs, "owner-a", job_id) for job_id in ids]
    after = int(redis_db.hget(STAGES_METRICS_KEY, "face_detections") or 0)
    assert after - before == len(ids)  # two tests per job, one face detection per job
    local = score_image(decode_image(astronaut), load_tests(["quality"])).to_dict()
    for view in views:
        face_reasons = [r for r in view["reasons"] if not r.startswith("test_failed:")]
        assert view["face"] == local["face"] and face_reasons == local["reasons"]


def test_a_corrupt_model_file_stops_the_worker_at_start(service_env: dict[str, str],
                                                        tmp_path) -> None:
    import shutil
    import subprocess

    from cli.processes import celery_worker_argv
    from common.config import PROJECT_ROOT

    shutil.copytree(PROJECT_ROOT / "models" / "quality", tmp_path / "quality")
    weights = tmp_path / "quality" / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[-40] ^= 0x01  # one flipped bit
    weights.write_bytes(bytes(data))
    env = {**os.environ, **service_env, "LIVENESS_MODELS_DIR": str(tmp_path)}
    done = subprocess.run(celery_worker_argv("quality", node="corrupt@liveness-test"),
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "weights.npz: SHA-256" in done.stderr


def test_a_test_that_needs_the_face_waits_for_the_face_stage(service_env, settings: Settings,
                                                             astronaut: bytes,
                                                             plugin_on_path) -> None:
    """``brightness`` needs the face: it waits for the stored one, or says it has none."""
    store = JobStore.from_settings(settings)
    registry = default_registry()
    quick = with_settings(settings, face_stage_wait_s=0.5,
                          models_dir=plugin_on_path.models_dir)
    job_id = "faceless".ljust(32, "0")
    store.create_job(job_id, "owner-a", astronaut, ["brightness"])
    summary = execute_test(store, quick, registry, "brightness", job_id)
    assert summary["error"].startswith("face_unavailable")  # the face stage never ran

    waiting = "waiting".ljust(32, "0")
    store.create_job(waiting, "owner-a", astronaut, ["brightness", "quality"])
    timer = threading.Timer(0.3, execute_face_stage, (store, settings, waiting))
    timer.start()  # the face arrives while the test waits
    slow = with_settings(quick, face_stage_wait_s=20)
    summary = execute_test(store, slow, registry, "brightness", waiting)
    timer.join()
    assert summary["error"] is None and summary["score"] is not None
    # quality needs no face: it never waits, in process and in the service alike
    assert execute_test(store, slow, registry, "quality", waiting)["error"] is None
    for job in (job_id, waiting):
        store.delete_job(job)


def test_a_lost_message_is_re_run_once_at_the_deadline(pools: WorkerPools, settings: Settings,
                                                       celery_app, astronaut: bytes,
                                                       redis_db: redis.Redis) -> None:
    """A test message lost in transport (as when kombu's worker is killed while taking it)
    is sent again at the deadline, and the job ends ``done`` with its score."""
    pools.stop("quality")
    jobs = service(settings, celery_app, job_deadline_s=3)
    job = jobs.submit("owner-a", astronaut, tests=["quality"])
    end = time.monotonic() + WAIT_S
    while not redis_db.llen("quality"):  # the quality message is queued, not yet taken
        assert time.monotonic() < end
        time.sleep(0.01)
    redis_db.delete("quality")  # ... and lost
    pools.start("quality")
    view = wait_done(jobs, "owner-a", job["id"])
    assert view["status"] == "done", view["error"]
    assert view["tests_detail"]["quality"]["score"] is not None
    assert view["timings"]["finalized_by"] == "resent"
    assert redis_db.hget(JobStore.job_key(job["id"]), "resent") == b"quality"
