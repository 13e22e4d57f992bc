"""The Python client against the real service (gateway + worker pools over HTTP)."""

from __future__ import annotations

import json

import pytest
from liveness_client import LivenessClient, LivenessError

from tests.procs import Stack


@pytest.fixture
def client(stack: Stack):
    with LivenessClient(stack.url, stack.api_keys["dev"], timeout=30) as c:
        yield c


def test_score_returns_the_job_the_service_stores(client: LivenessClient, stack: Stack,
                                                  face_jpeg: bytes, tmp_path) -> None:
    path = tmp_path / "face.jpg"
    path.write_bytes(face_jpeg)
    job = client.score(path, tests=["fasnet"], timeout=120)
    assert job.status == "done" and job.decision in ("live", "spoof", "retry")
    status, _, body = stack.request("GET", f"/v1/jobs/{job.id}")
    stored = json.loads(body)
    assert status == 200 and stored["score"] == job.score and stored["decision"] == job.decision
    assert job.tests_detail["fasnet"].score == stored["tests_detail"]["fasnet"]["score"]
    assert job.face.box.top == stored["face"]["box"]["top"]
    client.delete(job.id)
    with pytest.raises(LivenessError) as gone:
        client.get(job.id)
    assert gone.value.status == 404 and gone.value.code == "not_found"


def test_a_repeated_idempotency_key_gives_the_same_job(client: LivenessClient,
                                                       face_jpeg: bytes) -> None:
    first = client.submit(face_jpeg, tests=["quality"], idempotency_key="e2e-same-key-1")
    again = client.submit(face_jpeg, tests=["quality"], idempotency_key="e2e-same-key-1")
    other = client.submit(face_jpeg, tests=["quality"])
    assert first.id == again.id != other.id
    assert client.wait(first.id, timeout=120).finished


def test_a_batch_through_the_client(client: LivenessClient, face_jpeg: bytes) -> None:
    batch = client.submit_batch([("a.jpg", face_jpeg), ("b.jpg", face_jpeg),
                                 ("bad.jpg", b"not an image")], tests=["quality"])
    assert batch.total == 3
    done = client.wait_batch(batch.id, timeout=180, poll_s=0.5)
    by_name = {item.name: item for item in done.items}
    assert by_name["a.jpg"].status == "done" and by_name["a.jpg"].result["decision"]
    assert by_name["bad.jpg"].status == "error" and by_name["bad.jpg"].error
    assert client.batch_csv(batch.id).splitlines()[0].startswith("path,")
    client.delete_batch(batch.id)


def test_the_services_refusals_are_errors_with_its_codes(stack: Stack,
                                                        face_jpeg: bytes) -> None:
    with LivenessClient(stack.url, "k-not-a-key") as stranger, \
            pytest.raises(LivenessError) as refused:
        stranger.submit(face_jpeg)
    assert refused.value.status == 401
    with LivenessClient(stack.url, stack.api_keys["dev"]) as client:
        with pytest.raises(LivenessError) as unknown:
            client.submit(face_jpeg, tests=["nope"])
        assert unknown.value.status == 422 and "nope" in unknown.value.message
        assert client.ready()


def test_liveness_batch_scores_a_folder_and_resumes(stack: Stack, face_jpeg: bytes,
                                                    tmp_path) -> None:
    """`liveness batch DIR --server --api-key --out`: the columns of `liveness score`,
    a second run skips what the CSV already holds, a closing summary."""
    import csv

    from click.testing import CliRunner

    from cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(face_jpeg)
    (folder / "b.jpg").write_bytes(face_jpeg)
    (folder / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "results.csv"
    args = ["batch", str(folder), "--server", stack.url, "--api-key", stack.api_keys["dev"],
            "--out", str(out), "--tests", "quality", "--concurrency", "2"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 1, first.output  # the broken image is an error row
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == ["a.jpg", "b.jpg",
                                                                  "broken.jpg"]
    assert list(rows[0])[:8] == ["path", "score_live", "decision", "face_found", "reasons",
                                 "seconds", "queued_seconds", "error"]
    assert list(rows[0])[-1] == "quality_score"
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["a.jpg"]["decision"] in ("live", "spoof", "retry")
    assert float(by_name["a.jpg"]["quality_score"]) >= 0
    assert by_name["broken.jpg"]["decision"] == "error" and by_name["broken.jpg"]["error"]
    assert "3 images scored (0 already in the CSV)" in first.stderr
    assert "latency, submission to result: p50" in first.stderr
    (folder / "c.jpg").write_bytes(face_jpeg)
    second = CliRunner().invoke(main, args)  # the error row is dropped and tried again
    assert "2 images scored (2 already in the CSV)" in second.stderr, second.output
    assert second.exit_code == 1  # broken.jpg is still not an image
    again = {r["path"].rsplit("/", 1)[-1]: r["decision"] for r in csv.DictReader(out.open())}
    assert sorted(again) == ["a.jpg", "b.jpg", "broken.jpg", "c.jpg"]
    assert again["broken.jpg"] == "error" and again["c.jpg"] != "error"


def test_a_colour_flash_challenge_answered_through_the_client(client: LivenessClient,
                                                              face_jpeg: bytes) -> None:
    """Issue a challenge, answer it with frames lit by its colours (simulated on the
    test image: no screen can be filmed here) and read the check on the job."""
    import time

    import numpy as np
    from liveness_client import ChallengeCheck

    from common.challenge import parse_hex
    from common.challenge.simulate import Conditions, simulate_capture
    from common.faces.detectors import get_detector
    from common.imageio import decode_image
    from tests.integration.support import jpeg

    challenge = client.challenge()
    assert len(challenge.colours) == challenge.frames == 8
    image = decode_image(face_jpeg)
    box = get_detector("blazeface").detect(image)[0].box
    frames = simulate_capture(image, box, [parse_hex(c) for c in challenge.colours],
                              Conditions(screen_ratio=0.1), np.random.default_rng(0))
    time.sleep(0.8 * challenge.frames * challenge.step_ms / 1000 + 0.1)
    job = client.submit(face_jpeg, tests=["quality"], challenge=challenge.id,
                        frames=[jpeg(f) for f in frames])
    done = client.wait(job.id, timeout=120)
    assert isinstance(done.challenge, ChallengeCheck) and done.challenge.passed, done.challenge
    with pytest.raises(LivenessError) as used:
        client.submit(face_jpeg, tests=["quality"], challenge=challenge.id,
                      frames=[jpeg(f) for f in frames])
    assert used.value.status == 409 and used.value.code == "challenge_used"
