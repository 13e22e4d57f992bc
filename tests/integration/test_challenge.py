"""A colour-flash challenge answered through real Redis and real Celery pools: the face
pool checks the frames, fusion decides on the check (frames simulated from the
astronaut: see common/challenge/simulate.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis
import skimage.data

from common.challenge import parse_hex
from common.challenge.simulate import Conditions, simulate_capture
from common.config import Settings
from common.faces.detectors import get_detector
from common.imageio import decode_image
from common.jobs import JobService
from common.jobstore import JobStore
from common.pipeline import load_tests, score_image
from tests.integration.support import WorkerPools, jpeg, with_settings

pytestmark = pytest.mark.integration

STEP_MS = 100


@pytest.fixture
def jobs(pools: WorkerPools, settings: Settings, celery_app) -> JobService:
    s = with_settings(settings, challenge_step_ms=STEP_MS)
    return JobService(JobStore.from_settings(s), celery_app, s)


def answer(jobs: JobService, complement: bool = False, screen_ratio: float = 0.1
           ) -> tuple[dict, list]:
    """Issue a challenge, film the astronaut lit by its colours (``complement``: by their
    complements, a recording of another session that moved every channel the other way),
    submit, and wait for the finished job."""
    image = skimage.data.astronaut()
    challenge = jobs.issue_challenge("owner-c")
    colours = [parse_hex(c) for c in challenge["colours"]]
    box = get_detector(jobs.settings.face_detector).detect(image)[0].box
    shown = [tuple(255 - v for v in c) for c in colours] if complement else colours
    frames = simulate_capture(image, box, shown, Conditions(screen_ratio),
                              np.random.default_rng(0))
    time.sleep(0.8 * len(colours) * STEP_MS / 1000 + 0.05)
    job = jobs.submit("owner-c", jpeg(image), tests=["quality"], challenge_id=challenge["id"],
                      frames=[jpeg(f) for f in frames])
    view = jobs.wait("owner-c", job["id"], 60)
    assert view is not None and view["status"] == "done", view
    return view, colours


def test_a_live_answer_passes_and_leaves_the_decision_to_the_tests(
        jobs: JobService, redis_db: redis.Redis) -> None:
    view, _ = answer(jobs)
    check = view["challenge"]
    assert check["outcome"] == "passed", check
    assert check["correlation"] > 0.9 and check["identity_distance"] < 0.6
    astronaut_jpeg = decode_image(jpeg(skimage.data.astronaut()))
    alone = score_image(astronaut_jpeg, load_tests(["quality"]))
    assert view["decision"] == alone.decision
    assert not any(r.startswith("challenge_") for r in view["reasons"])
    assert not redis_db.exists(JobStore.frames_key(view["id"]))  # erased with the image


def test_a_replay_lit_by_another_sequence_is_spoof(jobs: JobService) -> None:
    view, _ = answer(jobs, complement=True)
    assert view["challenge"]["correlation"] < -0.9
    assert view["decision"] == "spoof", view
    assert "challenge_failed:wrong_sequence" in view["reasons"]


def test_a_stream_not_lit_by_the_screen_is_not_live(jobs: JobService) -> None:
    view, _ = answer(jobs, screen_ratio=0.0)
    assert view["challenge"]["outcome"] == "no_response"
    assert view["decision"] == "retry" and "challenge_no_response" in view["reasons"]
