"""What every pool shares: the task base class and the bodies of the stage tasks.

A job is a pipeline of tasks that carry only the job id (:mod:`common.jobs`):

1. **face stage** (:func:`execute_face_stage`, ``face`` queue): reads the image from the
   job store, locates the face once and stores it in the job record;
2. **tests** (:func:`execute_test`, one queue per test, sent with the face stage): read
   the image, wait for the stored face when the test needs it (a whole-image test does
   not, so it runs alongside the face stage), run the test through
   :func:`common.pipeline.run_test` and record the outcome in the job's outcomes hash —
   no test detects the face again;
3. **fusion** (:mod:`workers.fusion.tasks`), once every task above returned.

Every failure — an expired image, a missing model, a soft time limit, a bug — becomes
a recorded outcome with ``error``, so the chord's callback always fires and the job is
never lost.

:class:`PoolTask` gives tasks the app's settings and registry, one job-store connection
per process and the process's loaded tests (loaded once, lazily, and preloaded when a
pool process starts: :mod:`workers.tasks`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from common.config import Settings
from common.errors import LivenessError
from common.imageio import decode_image
from common.jobstore import TERMINAL, JobStore
from common.liveness_test import needs_face
from common.pipeline import run_challenge_check, run_face_stage, run_test
from common.registry import TestRegistry
from common.result import ChallengeCheck, FaceDetection, TestOutcome

log = logging.getLogger(__name__)

IMAGE_MISSING = "image_missing"
MODEL_UNAVAILABLE = "model_unavailable"
FACE_UNAVAILABLE = "face_unavailable"
TIMEOUT = "timeout"
INTERNAL_ERROR = "internal_error"
#: ``count_stage`` name of one face detection run by the service.
FACE_DETECTIONS = "face_detections"
#: The face stage's name in a job's started stages.
FACE_STAGE = "face"


class PoolTask(Task):
    """Task base: the app's settings and registry, one job store per process."""

    _store: JobStore | None = None

    @property
    def settings(self) -> Settings:
        return self.app.liveness_settings  # type: ignore[attr-defined, no-any-return]

    @property
    def registry(self) -> TestRegistry:
        return self.app.test_registry  # type: ignore[attr-defined, no-any-return]

    @property
    def store(self) -> JobStore:
        if self._store is None:
            type(self)._store = JobStore.from_settings(self.settings, patient=True)
        return self._store  # type: ignore[return-value]


def confirmed_job(store: JobStore, settings: Settings, job_id: str) -> dict[str, Any] | None:
    """Job ``job_id``'s record once its submission is confirmed; ``None`` when it is
    unknown, or was never confirmed (a submission that failed: the deadline sweep erases
    it). A task can arrive a moment before the gateway confirms the job it just
    enqueued, so a pending job is waited for, up to ``submit_grace_s``."""
    job = store.get_job(job_id)
    if job is not None and job.get("pending"):
        job = store.wait_confirmed(job_id, settings.submit_grace_s)
        if job is None:
            log.warning("job %s: submission never confirmed; its task is skipped", job_id)
    return job


def execute_face_stage(store: JobStore, settings: Settings, job_id: str) -> dict[str, Any]:
    """Locate job ``job_id``'s face once and store it in the job record; never raises.

    Returns a small summary. When the image is gone (expired, erased) nothing is
    stored: the tests then record ``image_missing`` themselves. A job answering a
    colour-flash challenge also gets its check (:func:`common.pipeline.run_challenge_check`)
    stored, before the face.
    """
    job = confirmed_job(store, settings, job_id)
    if job is None or job["status"] in TERMINAL:
        return {"stage": "face", "skipped": True}
    store.mark_running(job_id, FACE_STAGE)
    try:
        data = store.get_image(job_id)
    except LivenessError as exc:  # sealed under a key this pool does not have
        log.error("face stage of job %s: %s", job_id, exc.message)
        store.put_face_error(job_id, exc.code)
        return {"stage": "face", "error": exc.code}
    if data is None:
        store.put_face_error(job_id, IMAGE_MISSING)
        return {"stage": "face", "error": IMAGE_MISSING}
    try:
        image = decode_image(data, settings)
        del data
        store.count_stage(FACE_DETECTIONS)
        face = run_face_stage(image, settings)
    except SoftTimeLimitExceeded:
        log.warning("face stage of job %s exceeded its soft time limit", job_id)
        store.put_face_error(job_id, TIMEOUT)
        return {"stage": "face", "error": TIMEOUT}
    except LivenessError as exc:
        store.put_face_error(job_id, exc.code)
        return {"stage": "face", "error": exc.code}
    except Exception as exc:  # a bug must not lose the job; log it without the image
        log.exception("face stage failed on job %s", job_id)
        store.put_face_error(job_id, f"{INTERNAL_ERROR}: {type(exc).__name__}")
        return {"stage": "face", "error": f"{INTERNAL_ERROR}: {type(exc).__name__}"}
    if job.get("challenge"):
        _check_challenge(store, settings, job_id, job["challenge"], image, face)
    store.put_face(job_id, face.to_dict())
    return {"stage": "face", "found": face.found}


def _check_challenge(store: JobStore, settings: Settings, job_id: str,
                     challenge: dict[str, Any], image: Any, face: FaceDetection) -> None:
    """Check the job's colour-flash frames and store the verdict (before the face, which
    wakes the tests). A failure of the check itself is stored as ``unreadable`` /
    ``not_checked``: the job can then never be ``live``."""
    try:
        check = run_challenge_check(image, face, store.get_frames(job_id), challenge,
                                    settings)
    except Exception:  # a bug, a sealing error or the soft time limit: not passed
        log.exception("challenge check failed on job %s", job_id)
        check = ChallengeCheck(outcome="unreadable", why="not_checked",
                               challenge_id=challenge.get("id"))
    store.put_challenge_result(job_id, check.to_dict())


def execute_test(store: JobStore, settings: Settings, registry: TestRegistry, name: str,
                 job_id: str) -> dict[str, Any]:
    """Run test ``name`` on job ``job_id`` with the stored face; record the outcome.

    Never raises. Returns a small summary (the chord header's result); the outcome
    itself lives in the job store so the chord callback and the deadline task read the
    same data.
    """
    job = confirmed_job(store, settings, job_id)
    if job is None or job["status"] in TERMINAL:
        return {"test": name, "skipped": True}
    store.mark_running(job_id, name)
    try:
        outcome = _score(store, settings, registry, name, job_id, bool(job.get("explain")))
    except SoftTimeLimitExceeded:
        outcome = TestOutcome(score=None, error=f"{TIMEOUT}: the test exceeded its soft "
                                                "time limit")
    except Exception as exc:  # a bug must not lose the job; log it without the image
        log.exception("test %s failed on job %s", name, job_id)
        outcome = TestOutcome(score=None, error=f"{INTERNAL_ERROR}: {type(exc).__name__}")
    store.put_outcome(job_id, name, outcome.to_dict())
    return {"test": name, "score": outcome.score, "error": outcome.error}


def _score(store: JobStore, settings: Settings, registry: TestRegistry, name: str,
           job_id: str, explain: bool = False) -> TestOutcome:
    try:
        test = registry.load_scorer(name, settings.models_dir)
    except LivenessError as exc:
        return TestOutcome(score=None, error=f"{MODEL_UNAVAILABLE}: {exc.message}")
    try:
        data = store.get_image(job_id)
        if data is None:
            return TestOutcome(score=None, error=f"{IMAGE_MISSING}: the image expired or "
                                                 "was deleted before the test ran")
        image = decode_image(data, settings)
    except LivenessError as exc:
        return TestOutcome(score=None, error=f"{exc.code}: {exc.message}")
    del data
    face = None
    if needs_face(test):
        stored = store.wait_face(job_id, settings.face_stage_wait_s)
        if stored is None:
            return TestOutcome(score=None, error=f"{FACE_UNAVAILABLE}: the face stage stored "
                                                 f"no face within {settings.face_stage_wait_s} s")
        face = FaceDetection.from_dict(stored)
    outcome = run_test(test, image, face)
    if explain and outcome.score is not None and hasattr(test, "explain"):
        _store_explanation(store, test, name, job_id, image, face)
    return outcome


def _store_explanation(store: JobStore, test: object, name: str, job_id: str,
                       image: object, face: FaceDetection | None) -> None:
    """Store the test's explanation PNG; a failure is logged, never fails the test."""
    try:
        png = test.explain(image, face)  # type: ignore[attr-defined]
    except Exception:  # an explanation is optional: log without the image
        log.exception("test %s could not explain job %s", name, job_id)
        return
    store.put_explanation(job_id, name, png)
