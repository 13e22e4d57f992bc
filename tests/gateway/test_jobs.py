"""``/v1/jobs`` through Flask's test client against real Redis (DB 14) and JobService."""

from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from common.config import PROJECT_ROOT
from common.jobstore import JobStore
from common.sealing import new_key as new_image_key
from gateway.intake import job_body_limit
from tests.gateway.support import (
    KEYS,
    auth,
    build_app,
    finish,
    finished_result,
    jpeg_bytes,
    make_settings,
    png_header_only,
)


def submit(client, body: bytes | None = None, owner: str = "alice", **form):
    payload = {"image": (io.BytesIO(jpeg_bytes() if body is None else body), "face.jpg")}
    payload.update(form)
    return client.post("/v1/jobs", data=payload, headers=auth(owner),
                       content_type="multipart/form-data")


# --- submission ----------------------------------------------------------------------
def test_multipart_submission_is_accepted_and_readable(client):
    response = submit(client, tests="quality")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "status", "links"} and body["status"] == "queued"
    assert response.headers["Location"] == body["links"]["self"] == f"/v1/jobs/{body['id']}"
    assert "Retry-After" not in response.headers
    job = client.get(body["links"]["self"], headers=auth()).get_json()
    assert job["id"] == body["id"] and job["status"] == "queued"
    assert job["tests"] == ["quality"] and job["score"] is None


def test_multipart_tests_may_be_repeated_fields(client):
    response = client.post("/v1/jobs", headers=auth(), content_type="multipart/form-data",
                           data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg"),
                                 "tests": ["quality", "cnn"]})
    assert response.status_code == 202, response.get_json()
    job = client.get(response.headers["Location"], headers=auth()).get_json()
    assert job["tests"] == ["quality", "cnn"]


def test_json_base64_submission_with_options(client):
    image = base64.b64encode(jpeg_bytes()).decode()
    response = client.post("/v1/jobs", headers=auth(), json={
        "image": image, "tests": ["quality"], "callback_url": "https://example.org/hook"})
    assert response.status_code == 202, response.get_json()
    job = client.get(response.headers["Location"], headers=auth()).get_json()
    assert job["tests"] == ["quality"]


def test_data_url_and_urlsafe_base64_are_accepted(client):
    raw = jpeg_bytes()
    for text in ("data:image/jpeg;base64," + base64.b64encode(raw).decode(),
                 base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        response = client.post("/v1/jobs", headers=auth(), json={"image": text})
        assert response.status_code == 202, response.get_json()


def test_done_job_carries_the_fused_result(app, client):
    job_id = submit(client).get_json()["id"]
    finish(app, job_id)
    job = client.get(f"/v1/jobs/{job_id}", headers=auth()).get_json()
    expected = finished_result()
    assert job["status"] == "done"
    for name in ("score", "decision", "threshold", "fusion", "face_found", "face", "reasons"):
        assert job[name] == expected[name]
    assert job["tests_detail"]["quality"]["model"] == "w-iqa"
    assert job["missing_tests"] == {}


def test_long_poll_returns_when_the_job_finishes(app, client):
    job_id = submit(client).get_json()["id"]
    timer = threading.Timer(0.3, finish, args=(app, job_id))
    timer.start()
    try:
        job = client.get(f"/v1/jobs/{job_id}?wait=20", headers=auth()).get_json()
    finally:
        timer.join()
    assert job["status"] == "done"


def test_long_poll_is_capped(db):
    app = build_app(make_settings(long_poll_max_s=0))
    client = app.test_client()
    job_id = submit(client).get_json()["id"]
    # wait=3600 with a cap of 0 answers at once instead of holding the request an hour.
    job = client.get(f"/v1/jobs/{job_id}?wait=3600", headers=auth()).get_json()
    assert job["status"] == "queued"


def test_idempotency_key_returns_the_first_job_per_owner(client):
    first = submit(client)  # no key: a job of its own
    headers = {**auth(), "Idempotency-Key": "order-17"}
    payload = lambda: {"image": (io.BytesIO(jpeg_bytes()), "a.jpg")}  # noqa: E731
    a = client.post("/v1/jobs", data=payload(), headers=headers).get_json()["id"]
    b = client.post("/v1/jobs", data=payload(), headers=headers).get_json()["id"]
    other = client.post("/v1/jobs", data=payload(),
                        headers={**auth("bob"), "Idempotency-Key": "order-17"}).get_json()["id"]
    assert a == b != other and first.get_json()["id"] not in (a, other)


def test_idempotency_key_reused_for_another_request_is_a_409(client):
    headers = {**auth(), "Idempotency-Key": "order-18"}
    image = base64.b64encode(jpeg_bytes()).decode()
    first = client.post("/v1/jobs", headers=headers, json={"image": image})
    assert first.status_code == 202
    same = client.post("/v1/jobs", headers=headers, json={"image": image})
    assert same.status_code == 202 and same.get_json()["id"] == first.get_json()["id"]
    other_image = base64.b64encode(jpeg_bytes(quality=70)).decode()
    for body in ({"image": other_image}, {"image": image, "tests": ["quality", "cnn"]},
                 {"image": image, "callback_url": "https://example.org/hook"}):
        response = client.post("/v1/jobs", headers=headers, json=body)
        assert response.status_code == 409, body
        error = response.get_json()["error"]
        assert error["code"] == "idempotency_conflict" and "Idempotency-Key" in error["message"]


def test_delete_erases_every_key_of_the_job(app, client, db):
    job_id = submit(client).get_json()["id"]
    assert any(job_id in k.decode() for k in db.keys("liveness:*"))
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth()).status_code == 204
    assert not [k for k in db.keys("liveness:*") if job_id in k.decode()]
    response = client.get(f"/v1/jobs/{job_id}", headers=auth())
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth()).status_code == 404


def test_expired_job_answers_expired_to_its_owner_only(app, client, db):
    job_id = submit(client).get_json()["id"]
    db.delete(JobStore.job_key(job_id))  # the record expired; the tombstone remains
    assert client.get(f"/v1/jobs/{job_id}", headers=auth()).get_json()["status"] == "expired"
    assert client.get(f"/v1/jobs/{job_id}", headers=auth("bob")).status_code == 404


# --- authentication and tenancy ----------------------------------------------------------
def test_missing_and_invalid_keys_are_401(client):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "nope"},
                    {"Authorization": f"Basic {KEYS['alice']}"}):
        response = client.get("/v1/jobs/abc", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert submit(client, owner="alice").status_code == 202
    response = client.post("/v1/jobs", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")})
    assert response.status_code == 401


def test_x_api_key_header_works(client):
    response = client.post("/v1/jobs", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                           headers={"X-API-Key": KEYS["bob"]})
    assert response.status_code == 202


def test_another_key_sees_404(client):
    job_id = submit(client, owner="alice").get_json()["id"]
    for method in (client.get, client.delete):
        response = method(f"/v1/jobs/{job_id}", headers=auth("bob"))
        assert response.status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=auth("alice")).status_code == 200


def test_malformed_key_configuration_fails_at_start(db):
    with pytest.raises(ValueError, match="API_KEY_HASHES"):
        build_app(make_settings(api_key_hashes="alice:not-a-hash"))


# --- every error maps to a JSON 4xx ----------------------------------------------------------
def _truncated_jpeg() -> bytes:
    raw = jpeg_bytes()
    return raw[: len(raw) // 2]


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"", 422, "empty_image"),
    (b"hello, this is plain text and not an image at all", 415, "not_an_image"),
    (_truncated_jpeg(), 422, "corrupt_image"),
    (png_header_only(50_000, 50_000), 413, "too_many_pixels"),
    (_gif(), 415, "unsupported_format"),
    (jpeg_bytes(np.zeros((20, 20, 3), np.uint8)), 422, "image_too_small"),
])
def test_bad_images_map_to_typed_errors(client, body, status, code):
    response = submit(client, body)
    assert response.status_code == status
    assert response.get_json() == {"error": {"code": code, "message": response.get_json()[
        "error"]["message"]}}


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ({"data": "", "content_type": "application/json"}, 400, "invalid_json"),
    ({"json": ["a list"]}, 400, "invalid_request"),
    ({"json": {"tests": ["quality"]}}, 400, "missing_image"),
    ({"json": {"image": 12}}, 400, "invalid_request"),
    ({"json": {"image": "not base64 !!"}}, 400, "invalid_base64"),
    ({"json": {"image": "QUJD", "tests": "quality"}}, 415, "not_an_image"),
    ({"json": {"image": "QUJD", "tests": [1, 2]}}, 400, "invalid_request"),
    ({"data": "raw", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"data": {"file": (io.BytesIO(b"x"), "a.jpg")}, "content_type": "multipart/form-data"},
     400, "unknown_field"),
    ({"data": {"tests": "quality"}, "content_type": "multipart/form-data"},
     400, "missing_image"),
    ({"data": {"image": [(io.BytesIO(b"x"), "a.jpg"), (io.BytesIO(b"y"), "b.jpg")]},
      "content_type": "multipart/form-data"}, 400, "invalid_request"),
])
def test_malformed_requests_are_400_class(client, kwargs, status, code):
    response = client.post("/v1/jobs", headers=auth(), **kwargs)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code


def test_unknown_test_is_422(client):
    response = submit(client, tests="quality,palmistry")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "unknown_test"
    image = base64.b64encode(jpeg_bytes()).decode()
    response = client.post("/v1/jobs", headers=auth(), json={"image": image, "tests": ["x"]})
    assert response.get_json()["error"]["code"] == "unknown_test"


@pytest.mark.parametrize("url", [
    "ftp://example.org/hook", "https://user:pw@example.org/hook", "example.org/hook",
    "https:///nohost", "http://example.org:99999/", "https://example.org/a b", 17,
])
def test_bad_callback_urls_are_422(client, url):
    image = base64.b64encode(jpeg_bytes()).decode()
    response = client.post("/v1/jobs", headers=auth(), json={"image": image, "callback_url": url})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_callback_url"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "http://[::1]/hook", "http://0.0.0.0/", "http://2130706433/",
    "http://169.254.169.254/latest/meta-data/", "http://metadata.example.net/",
    "http://10.0.0.8/hook", "http://rebind.example.net/hook", "http://no-such-host.test/",
])
def test_callback_urls_to_internal_targets_are_refused(client, db, url):
    image = base64.b64encode(jpeg_bytes()).decode()
    response = client.post("/v1/jobs", headers=auth(), json={"image": image, "callback_url": url})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["code"] == "callback_url_refused"
    assert db.keys("liveness:job:*") == []  # nothing was stored or enqueued


def test_an_operator_allowlist_admits_an_internal_callback(db):
    app = build_app(make_settings(webhook_allowlist="10.0.0.0/8"))
    image = base64.b64encode(jpeg_bytes()).decode()
    ok = app.test_client().post("/v1/jobs", headers=auth(), json={
        "image": image, "callback_url": "http://10.0.0.8/hook"})
    assert ok.status_code == 202, ok.get_json()
    refused = app.test_client().post("/v1/jobs", headers=auth(), json={
        "image": image, "callback_url": "http://127.0.0.1/hook"})
    assert refused.status_code == 422


def test_bad_query_and_header_values_are_400(client):
    job_id = submit(client).get_json()["id"]
    for wait in ("soon", "-1", "nan", "inf"):
        response = client.get(f"/v1/jobs/{job_id}?wait={wait}", headers=auth())
        assert response.status_code == 400, wait
    response = client.post("/v1/jobs", data={"image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                           headers={**auth(), "Idempotency-Key": "k" * 300})
    assert response.get_json()["error"]["code"] == "invalid_idempotency_key"


def test_too_large_bodies_and_images_are_413(db):
    app = build_app(make_settings(max_image_bytes=50_000))
    client = app.test_client()
    # Larger than the image limit but within the body limit: the core's typed error.
    big_image = jpeg_bytes(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8),
                           quality=95)
    assert 50_000 < len(big_image) < 1_000_000
    response = submit(client, big_image)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "image_too_large"
    # Larger than the whole-body limit: refused before the body is parsed.
    limit = job_body_limit(make_settings(max_image_bytes=50_000))
    response = client.post("/v1/jobs", headers=auth(),
                           data=json.dumps({"image": "A" * limit}),
                           content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_too_large"


def test_unknown_route_and_wrong_method_are_json(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    response = client.put("/v1/jobs", headers=auth())
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_a_bug_is_a_json_500(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("bug")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "bug" not in response.get_data(as_text=True)


# --- rate limits -------------------------------------------------------------------------
def test_rate_limit_is_per_key_with_retry_after(db):
    client = build_app(make_settings(read_rate_limit="3/minute")).test_client()
    answers = [client.get("/v1/jobs/x", headers=auth()) for _ in range(4)]
    assert [r.status_code for r in answers] == [404, 404, 404, 429]
    refused = answers[-1]
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert client.get("/v1/jobs/x", headers=auth("bob")).status_code == 404  # own budget
    assert client.get("/healthz").status_code == 200  # operations are not limited


def test_submissions_share_one_limit_and_reads_have_their_own(db):
    client = build_app(make_settings(rate_limit="3/minute",
                                     read_rate_limit="100/minute")).test_client()
    image = base64.b64encode(jpeg_bytes()).decode()
    first = client.post("/v1/jobs", headers=auth(), json={"image": image})
    batch = client.post("/v1/batches", headers=auth(), content_type="multipart/form-data",
                        data={"images": (io.BytesIO(jpeg_bytes()), "a.jpg")})
    second = client.post("/v1/jobs", headers=auth(), json={"image": image})
    assert [first.status_code, batch.status_code, second.status_code] == [202, 202, 202]
    assert client.post("/v1/jobs", headers=auth(), json={"image": image}).status_code == 429
    assert client.post("/v1/batches", headers=auth()).status_code == 429  # the same counter
    job_url = first.headers["Location"]
    polls = [client.get(job_url, headers=auth()).status_code for _ in range(20)]
    assert polls == [200] * 20  # long-polling does not use up submissions


def test_uploads_stay_in_memory(app):
    with app.test_request_context("/v1/jobs", method="POST", data={
            "image": (io.BytesIO(b"x" * 2_000_000), "big.jpg")}):
        from flask import request

        assert isinstance(request.files["image"].stream, io.BytesIO)



def test_a_full_queue_answers_503_with_retry_after(db):
    client = build_app(make_settings(max_queue_depth=2)).test_client()
    image = base64.b64encode(jpeg_bytes()).decode()
    accepted = [client.post("/v1/jobs", headers=auth(), json={"image": image})
                for _ in range(2)]  # nothing consumes: the face queue fills up
    assert [r.status_code for r in accepted] == [202, 202]
    refused = client.post("/v1/jobs", headers=auth(), json={"image": image})
    assert refused.status_code == 503
    assert refused.get_json()["error"]["code"] == "overloaded"
    assert refused.headers["Retry-After"] == "5"  # the delay it asked for, not the limiter's
    batch = client.post("/v1/batches", headers=auth(), content_type="multipart/form-data",
                        data={"images": (io.BytesIO(jpeg_bytes()), "a.jpg")})
    assert batch.status_code == 503 and batch.get_json()["error"]["code"] == "overloaded"
    assert len(db.keys("liveness:job:*")) == 2  # nothing more was stored


def test_unknown_fields_are_refused_as_the_schema_says(client):
    """The OpenAPI schemas allow no other fields (additionalProperties: false)."""
    image = base64.b64encode(jpeg_bytes()).decode()
    response = client.post("/v1/jobs", headers=auth(), json={"image": image, "tset": "x"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unknown_field"
    for path, field in (("/v1/jobs", "image"), ("/v1/batches", "images")):
        response = client.post(path, headers=auth(), content_type="multipart/form-data",
                               data={field: (io.BytesIO(jpeg_bytes()), "a.jpg"),
                                     "": (io.BytesIO(b"x"), "b.jpg")})
        assert response.status_code == 400, path
        assert response.get_json()["error"]["code"] == "unknown_field"


# --- explanations ----------------------------------------------------------------------
def _store(app) -> JobStore:
    return JobStore(app.extensions["liveness"].jobs.store.redis, make_settings())


def test_explain_is_stored_listed_and_served_to_its_owner_only(app, client, db):
    png = b"\x89PNG\r\n\x1a\nexplanation"
    job_id = submit(client, tests="quality,cnn", explain="true").get_json()["id"]
    store = _store(app)
    assert store.put_explanation(job_id, "cnn", png) is True
    job = client.get(f"/v1/jobs/{job_id}", headers=auth()).get_json()
    assert job["explanations"] == ["cnn"]
    link = job["links"]["explanations"]["cnn"]
    assert link == f"/v1/jobs/{job_id}/explanations/cnn"
    response = client.get(link, headers=auth())
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data == png and "no-store" in response.headers["Cache-Control"]
    other = client.get(link, headers=auth("bob"))
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/v1/jobs/{job_id}/explanations/quality",
                      headers=auth()).status_code == 404
    finish(app, job_id)  # the result TTL now bounds the explanation too
    ttl = db.ttl(JobStore.explanations_key(job_id))
    assert 0 < ttl <= make_settings().result_ttl_s
    assert store.put_explanation(job_id, "cnn", png) is False  # finished: not stored
    assert JobStore.explanations_key(job_id) in store.job_keys(job_id)
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth()).status_code == 204
    assert not db.exists(JobStore.explanations_key(job_id))


def test_explanations_are_off_by_default(app, client):
    job_id = submit(client, tests="cnn").get_json()["id"]
    assert _store(app).put_explanation(job_id, "cnn", b"png") is False
    job = client.get(f"/v1/jobs/{job_id}", headers=auth()).get_json()
    assert job["explanations"] == [] and "explanations" not in job["links"]
    response = client.get(f"/v1/jobs/{job_id}/explanations/cnn", headers=auth())
    assert response.status_code == 404 and "explain=true" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("value", ["yes", "2", "maybe"])
def test_a_bad_explain_value_is_a_400(client, value):
    response = submit(client, explain=value)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_explain"
    image = base64.b64encode(jpeg_bytes()).decode()
    response = client.post("/v1/jobs", headers=auth(), json={"image": image, "explain": 1})
    assert response.status_code == 400 and "'explain'" in response.get_json()["error"]["message"]


def test_explain_is_part_of_the_idempotent_request(client):
    headers = {**auth(), "Idempotency-Key": "k-explain"}
    image = base64.b64encode(jpeg_bytes()).decode()
    first = client.post("/v1/jobs", headers=headers, json={"image": image,
                                                           "tests": ["quality", "cnn"]})
    assert first.status_code == 202
    again = client.post("/v1/jobs", headers=headers, json={"image": image, "explain": True,
                                                           "tests": ["quality", "cnn"]})
    assert again.status_code == 409


# --- calibration profiles ---------------------------------------------------------------
def _lobby(name: str = "lobby", tests: tuple[str, ...] = ("quality",), threshold: float = 0.4):
    from common.fusion import DEFAULT_RULE_NAME, DEFAULT_RULE_VERSION
    from common.profiles import Profile

    models = {"quality": {"name": "wiqa-lda", "version": "2026.11.29"},
              "cnn": {"name": "efficientnet_lite0-probe-frame", "version": "2026-11-29"}}
    return Profile(name, "apcer<=5%", threshold, {"method": "platt", "a": 1.0, "b": 0.5},
                   tests, {t: models[t] for t in tests}, 0.3, DEFAULT_RULE_NAME,
                   DEFAULT_RULE_VERSION)


@pytest.fixture
def profiled(db, tmp_path):
    from common.profiles import save_profile

    save_profile(tmp_path, _lobby())
    owner = next(iter(KEYS))
    # A deployment whose default tests are the profile's (quality; the registry's
    # defaults, cnn+fasnet, would not fit it and stop the gateway).
    app = build_app(make_settings(models_dir=tmp_path, key_profiles=f"{owner}=lobby",
                                  default_tests="quality"))
    return app, owner


def test_profiles_are_listed_and_chosen_per_request_or_key(profiled):
    app, owner = profiled
    client = app.test_client()
    listing = client.get("/v1/profiles", headers=auth(owner))
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["default"] == "lobby"
    assert body["profiles"] == [{
        "name": "lobby", "operating_point": "apcer<=5%", "threshold": 0.4, "retry_band": 0.3,
        "calibration": "platt", "tests": ["quality"],
        "models": {"quality": {"name": "wiqa-lda", "version": "2026.11.29"}},
        "fusion": "mean-threshold-normalised-log-odds", "fusion_version": "1",
        "fitted_on": {}}]
    assert client.get("/v1/profiles").status_code == 401
    store = _store(app)
    by_key = submit(client, owner=owner).get_json()["id"]
    assert store.get_job(by_key)["profile"] == "lobby"
    unknown = submit(client, owner=owner, profile="nope")
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_profile"
    assert "lobby" in unknown.get_json()["error"]["message"]
    bad = submit(client, owner=owner, profile="../etc")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_profile"
    named = submit(client, owner=owner, profile="lobby").get_json()["id"]
    assert store.get_job(named)["profile"] == "lobby"


def test_a_profile_named_with_other_tests_is_refused(db, tmp_path):
    """Issue 15.1: a profile fitted on quality+cnn, named by a job that runs quality
    (explicitly, by default, through the key's default), accepted every attack."""
    from common.profiles import save_profile

    save_profile(tmp_path, _lobby("both", ("quality", "cnn")))
    save_profile(tmp_path, _lobby("lobby"))
    app = build_app(make_settings(models_dir=tmp_path, key_profiles="bob=lobby",
                                  default_tests="quality"))
    client = app.test_client()
    for form in ({"profile": "both"}, {"profile": "both", "tests": "quality"},
                 {"profile": "both", "tests": "cnn"}):
        response = submit(client, **form)
        assert response.status_code == 422, form
        error = response.get_json()["error"]
        assert error["code"] == "profile_mismatch"
        assert "cnn+quality" in error["message"] and "runs" in error["message"]
    assert submit(client, profile="both", tests="cnn,quality").status_code == 202
    # bob's key default (lobby, quality only) does not fit a job that runs cnn too
    response = submit(client, owner="bob", tests="quality,cnn")
    assert response.status_code == 422
    assert "default" in response.get_json()["error"]["message"]
    batch = client.post("/v1/batches", data={"images": [(io.BytesIO(jpeg_bytes()), "a.jpg")],
                                             "profile": "both"},
                        headers=auth(), content_type="multipart/form-data")
    assert batch.status_code == 422 and batch.get_json()["error"]["code"] == "profile_mismatch"


def test_a_default_profile_that_does_not_exist_stops_the_gateway(db, tmp_path):
    from common.errors import ModelError

    with pytest.raises(ModelError, match="kiosk"):
        build_app(make_settings(models_dir=tmp_path, default_profile="kiosk"))


def test_a_default_profile_that_does_not_fit_the_default_tests_stops_the_gateway(db, tmp_path):
    from common.errors import ModelError
    from common.profiles import save_profile

    save_profile(tmp_path, _lobby("both", ("quality", "cnn")))
    with pytest.raises(ModelError, match=r"cnn\+quality; the default tests .* cnn\+fasnet"):
        build_app(make_settings(models_dir=tmp_path, default_profile="both"))
    with pytest.raises(ModelError, match="LIVENESS_KEY_PROFILES"):
        build_app(make_settings(models_dir=tmp_path, key_profiles="bob=both"))
    build_app(make_settings(models_dir=tmp_path, default_profile="both",
                            default_tests="cnn,quality"))


def test_a_default_profile_fitted_on_another_model_version_stops_the_gateway(db, tmp_path):
    """Where the gateway sees the models folder (liveness serve), a default profile
    fitted on another version of an installed model is refused at start."""
    import shutil

    from common.errors import ModelError
    from common.profiles import save_profile

    shutil.copytree(PROJECT_ROOT / "models" / "quality", tmp_path / "quality")
    shipped = json.loads((tmp_path / "quality" / "model.json").read_text())["info"]
    stale = _lobby("stale")
    stale.models["quality"]["version"] = "1999.01.01"
    save_profile(tmp_path, stale)
    with pytest.raises(ModelError, match=f"1999.01.01.*{shipped['version']}"):
        build_app(make_settings(models_dir=tmp_path, default_profile="stale",
                                default_tests="quality"))


def test_a_profile_written_while_the_gateway_runs_is_picked_up(db, tmp_path):
    """Issue 15.16: `liveness calibrate` writes a profile; no restart is needed."""
    from common.profiles import save_profile

    app = build_app(make_settings(models_dir=tmp_path, default_tests="quality"))
    client = app.test_client()
    assert submit(client, profile="lobby").status_code == 422
    app.extensions["liveness"].jobs.profiles.check_s = 0.0
    save_profile(tmp_path, _lobby())
    assert [p["name"] for p in client.get("/v1/profiles", headers=auth()).get_json()[
        "profiles"]] == ["lobby"]
    assert submit(client, profile="lobby").status_code == 202


def test_explain_without_a_test_that_explains_is_refused(client):
    """Issue 15.15: explain=true without the cnn test ended with an empty list."""
    response = submit(client, explain="true", tests="quality,fasnet")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "explain_unsupported" and "cnn" in error["message"]
    assert submit(client, explain="true", tests="quality,cnn").status_code == 202
    assert submit(client, explain="true").status_code == 202  # the defaults include cnn
    assert submit(client, explain="false").status_code == 202


def test_a_test_without_installed_model_code_is_refused(db):
    """Issue 15.15: a test whose model code is not installed (depth3d, before it shipped)
    ended with a retry; it is a 422 naming it, for jobs and batches."""
    from common.queueing import make_celery
    from common.registry import TestRegistry, TestSpec, default_registry
    from gateway.app import create_app
    from tests.gateway.support import stub_resolver

    settings = make_settings()
    pending = TestSpec(name="mask3d", description="a test whose model code is not installed",
                       scorer=None)
    registry = TestRegistry([*default_registry(), pending])
    app = create_app(settings, celery_app=make_celery(settings, registry),
                     resolver=stub_resolver)
    client = app.test_client()
    response = submit(client, tests="quality,mask3d")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "test_unavailable" and "mask3d" in error["message"]
    batch = client.post("/v1/batches", data={"images": [(io.BytesIO(jpeg_bytes()), "a.jpg")],
                                             "tests": "mask3d"},
                        headers=auth(), content_type="multipart/form-data")
    assert batch.status_code == 422 and batch.get_json()["error"]["code"] == "test_unavailable"
    assert submit(client, tests="quality,depth3d").status_code == 202  # shipped now


def test_a_batch_takes_a_profile(profiled):
    app, owner = profiled
    client = app.test_client()
    data = {"images": [(io.BytesIO(jpeg_bytes()), "a.jpg")], "profile": "lobby"}
    response = client.post("/v1/batches", data=data, headers=auth(owner),
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["items"][0]["job_id"]
    assert _store(app).get_job(job_id)["profile"] == "lobby"
    data = {"images": [(io.BytesIO(jpeg_bytes()), "a.jpg")], "profile": "nope"}
    response = client.post("/v1/batches", data=data, headers=auth(owner),
                           content_type="multipart/form-data")
    assert response.status_code == 422


def test_the_stored_image_is_sealed_and_bound_to_its_job(app, client, db):
    """Issue 15.4: whatever Redis persists holds no image: the stored value is AES-GCM
    sealed under LIVENESS_IMAGE_KEYS and opens only for its own job."""
    image = jpeg_bytes()
    job_id = submit(client, body=image).get_json()["id"]
    other = submit(client, body=image).get_json()["id"]
    store = _store(app)
    raw = db.get(JobStore.image_key(job_id))
    assert raw.startswith(b"LVS1") and image[100:132] not in raw and image[:4] not in raw
    assert store.get_image(job_id) == image
    from common.sealing import UnsealError

    db.set(JobStore.image_key(other), raw)  # one job's sealed image under another's key
    with pytest.raises(UnsealError):
        store.get_image(other)


def test_an_explanation_sealed_under_a_retired_key_is_gone_not_a_500(app, client, db):
    """After the image key changes (rotated away, or `liveness serve` restarted with a new
    one) a stored explanation cannot be opened: 410 image_unreadable, never a 500."""
    job_id = submit(client, tests="quality,cnn", explain="true").get_json()["id"]
    store = _store(app)
    assert store.put_explanation(job_id, "cnn", b"\x89PNG\r\n\x1a\nx") is True
    other = JobStore(store.redis, make_settings(image_keys=new_image_key()))
    db.hset(JobStore.explanations_key(job_id), "cnn",
            other.sealer.seal(b"\x89PNG", f"{JobStore.explanations_key(job_id)}:cnn"))
    response = client.get(f"/v1/jobs/{job_id}/explanations/cnn", headers=auth())
    assert response.status_code == 410
    assert response.get_json()["error"]["code"] == "image_unreadable"
