"""``POST /v1/challenges`` and answering one with ``POST /v1/jobs``: bound to one job of
one key, in time, with one readable frame per colour — every misuse a clear 4xx."""

from __future__ import annotations

import base64
import io
import time

import pytest

from common.challenge import PALETTE, parse_hex
from common.challenge.store import PREFIX
from common.jobstore import JobStore
from tests.gateway.support import auth, build_app, jpeg_bytes, make_settings

LENGTH, STEP_MS = 4, 100
SHORTEST_S = 0.8 * LENGTH * STEP_MS / 1000


@pytest.fixture
def app(db):
    return build_app(make_settings(challenge_length=LENGTH, challenge_step_ms=STEP_MS,
                                   challenge_frame_max_bytes=200_000))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def frame() -> bytes:
    return jpeg_bytes()


def issue(client, owner: str = "alice", wait: bool = True) -> dict:
    response = client.post("/v1/challenges", headers=auth(owner))
    assert response.status_code == 201, response.get_json()
    if wait:
        time.sleep(SHORTEST_S + 0.05)
    return response.get_json()


def answer(client, challenge_id: str | None, frames: list[bytes], owner: str = "alice",
           headers: dict | None = None):
    payload: dict = {"image": (io.BytesIO(jpeg_bytes()), "face.jpg"), "tests": "quality"}
    if challenge_id is not None:
        payload["challenge"] = challenge_id
    payload["frames"] = [(io.BytesIO(f), f"frame{n}.jpg") for n, f in enumerate(frames)]
    return client.post("/v1/jobs", data=payload, headers={**auth(owner), **(headers or {})},
                       content_type="multipart/form-data")


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def test_a_challenge_is_a_nonce_and_random_palette_colours(client) -> None:
    body = issue(client, wait=False)
    assert set(body) == {"id", "colours", "step_ms", "frames", "expires_at", "links"}
    assert len(body["colours"]) == body["frames"] == LENGTH and body["step_ms"] == STEP_MS
    assert all(parse_hex(c) in PALETTE.values() for c in body["colours"])
    assert len(body["id"]) >= 20 and body["expires_at"].endswith("Z")
    assert body["links"] == {"jobs": "/v1/jobs"}
    assert issue(client, wait=False)["id"] != body["id"]
    assert client.post("/v1/challenges").status_code == 401


def test_an_answer_stores_the_frames_with_the_job_and_is_accepted_once(client, app, frame
                                                                         ) -> None:
    challenge = issue(client)
    response = answer(client, challenge["id"], [frame] * LENGTH)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    store = JobStore(app.extensions["liveness"].jobs.store.redis, make_settings())
    assert store.get_frames(job_id) == [frame] * LENGTH
    record = store.get_job(job_id)
    assert record["challenge"]["id"] == challenge["id"]
    assert record["challenge"]["colours"] == challenge["colours"]
    again = answer(client, challenge["id"], [frame] * LENGTH)
    assert again.status_code == 409 and error_code(again) == "challenge_used"
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth()).status_code == 204
    assert store.get_frames(job_id) is None


def test_a_retried_submission_with_its_idempotency_key_is_the_same_job(client, frame) -> None:
    challenge = issue(client)
    first = answer(client, challenge["id"], [frame] * LENGTH, headers={"Idempotency-Key": "k1"})
    second = answer(client, challenge["id"], [frame] * LENGTH, headers={"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 202
    assert first.get_json()["id"] == second.get_json()["id"]


def test_an_answer_faster_than_the_colours_can_be_shown_is_refused(client, frame) -> None:
    challenge = issue(client, wait=False)
    response = answer(client, challenge["id"], [frame] * LENGTH)
    assert response.status_code == 422 and error_code(response) == "challenge_answered_too_soon"
    assert f"less than {SHORTEST_S:.2f} s" in response.get_json()["error"]["message"]
    time.sleep(SHORTEST_S + 0.05)  # not used up by the refused answer
    assert answer(client, challenge["id"], [frame] * LENGTH).status_code == 202


def test_another_keys_or_an_unknown_challenge_is_unknown(client, db, frame) -> None:
    challenge = issue(client, owner="bob")
    response = answer(client, challenge["id"], [frame] * LENGTH, owner="alice")
    assert response.status_code == 422 and error_code(response) == "unknown_challenge"
    assert answer(client, "nope" * 4, [frame] * LENGTH).status_code == 422
    assert answer(client, challenge["id"], [frame] * LENGTH, owner="bob").status_code == 202
    bad = answer(client, "x" * 65, [frame] * LENGTH)
    assert bad.status_code == 422 and error_code(bad) == "unknown_challenge"
    expired = issue(client)
    db.delete(PREFIX + expired["id"])  # what its TTL does
    gone = answer(client, expired["id"], [frame] * LENGTH)
    assert gone.status_code == 422 and "expired" in gone.get_json()["error"]["message"]


def test_the_frames_must_match_the_colours_and_be_images(client, frame) -> None:
    challenge = issue(client)
    short = answer(client, challenge["id"], [frame] * (LENGTH - 1))
    assert short.status_code == 422 and error_code(short) == "invalid_challenge"
    assert f"{LENGTH} colours" in short.get_json()["error"]["message"]
    broken = answer(client, challenge["id"], [frame, b"not an image", frame, frame])
    assert broken.status_code == 415 and error_code(broken) == "not_an_image"
    assert "challenge frame 2" in broken.get_json()["error"]["message"]
    big = answer(client, challenge["id"], [*[frame] * (LENGTH - 1), b"\xff" * 300_000])
    assert big.status_code == 413 and error_code(big) == "frame_too_large"
    assert "challenge frame 4 is larger than the limit of 200000 bytes" in (
        big.get_json()["error"]["message"])
    too_many = answer(client, challenge["id"], [frame] * (LENGTH + 1))
    assert too_many.status_code == 422 and error_code(too_many) == "invalid_challenge"
    # none of these used the challenge up
    assert answer(client, challenge["id"], [frame] * LENGTH).status_code == 202


def test_frames_and_challenge_come_together(client, frame) -> None:
    alone = answer(client, None, [frame] * LENGTH)
    assert alone.status_code == 422 and error_code(alone) == "invalid_challenge"
    challenge = issue(client)
    bare = answer(client, challenge["id"], [])
    assert bare.status_code == 422 and error_code(bare) == "invalid_challenge"


def test_a_json_answer_is_accepted_and_bad_base64_names_the_frame(client, frame) -> None:
    challenge = issue(client)
    encoded = base64.b64encode(frame).decode()
    body = {"image": base64.b64encode(jpeg_bytes()).decode(), "tests": ["quality"],
            "challenge": challenge["id"], "frames": [encoded, "!!", encoded, encoded]}
    bad = client.post("/v1/jobs", json=body, headers=auth())
    assert bad.status_code == 400 and "challenge frame 2" in bad.get_json()["error"]["message"]
    body["frames"] = [encoded] * LENGTH
    assert client.post("/v1/jobs", json=body, headers=auth()).status_code == 202
    body["frames"] = "not a list"
    assert client.post("/v1/jobs", json=body, headers=auth()).status_code == 400
