"""What every test pool shares: the per-process model cache and the test task body.

A test task takes only the job id, reads the image from the job store, locates the
face once, runs its pool's test through :func:`workers.pipeline.run_test` and records
the outcome (plus the face) in the job's outcomes hash. Every failure — bad image,
missing model, soft time limit, a bug — becomes an outcome with ``error``, so the
chord's callback always fires and the job is never lost.

Models load once per worker process: :class:`PoolTask` caches them, and
``worker_process_init`` preloads the models of the queues the worker consumes, so the
first request does not pay for loading either.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
from celery import Task, signals
from celery.exceptions import SoftTimeLimitExceeded

from common.config import Settings, get_settings
from common.errors import LivenessError
from common.faces import locate_face
from common.imageio import decode_image
from common.jobstore import JobStore
from common.liveness_test import LivenessTest
from workers.pipeline import TestOutcome, load_tests, run_test

log = logging.getLogger(__name__)

IMAGE_MISSING = "image_missing"
MODEL_UNAVAILABLE = "model_unavailable"
TIMEOUT = "timeout"
INTERNAL_ERROR = "internal_error"

#: Queues this worker consumes (set in the main process before the pool forks).
_CONSUMED: list[str] = []


def load_pool_test(name: str, settings: Settings) -> LivenessTest:
    """The loaded test (cached per process by the pipeline); ModelError when absent."""
    return load_tests([name], settings)[name]


def execute_test(store: JobStore, settings: Settings, name: str, job_id: str) -> dict[str, Any]:
    """Run test ``name`` on job ``job_id`` and record the outcome; never raises.

    Returns a small summary (the chord header's result); the outcome itself lives in
    the job store so the chord callback and the deadline task read the same data.
    """
    job = store.get_job(job_id)
    if job is None or job["status"] in ("done", "failed"):
        return {"test": name, "skipped": True}
    store.mark_running(job_id)
    face = None
    try:
        try:
            test = load_pool_test(name, settings)
        except LivenessError as exc:
            raise _UnavailableError(exc.message) from exc
        data = store.get_image(job_id)
        if data is None:
            outcome = TestOutcome(score=None, error=f"{IMAGE_MISSING}: the image expired or "
                                                   "was deleted before the test ran")
        else:
            image = decode_image(data, settings)
            del data
            face = locate_face(image, settings)
            outcome = run_test(test, image, face)
    except _UnavailableError as exc:
        outcome = TestOutcome(score=None, error=f"{MODEL_UNAVAILABLE}: {exc}")
    except SoftTimeLimitExceeded:
        outcome = TestOutcome(score=None, error=f"{TIMEOUT}: the test exceeded "
                                               f"{settings.task_soft_time_limit_s} s")
    except LivenessError as exc:
        outcome = TestOutcome(score=None, error=f"{exc.code}: {exc.message}")
    except Exception as exc:  # a bug must not lose the job; log it without the image
        log.exception("test %s failed on job %s", name, job_id)
        outcome = TestOutcome(score=None, error=f"{INTERNAL_ERROR}: {type(exc).__name__}")
    record = asdict(outcome)
    record["face"] = face.to_dict() if face is not None else None
    store.put_outcome(job_id, name, record)
    return {"test": name, "score": outcome.score, "error": outcome.error}


class _UnavailableError(Exception):
    """The pool's model cannot be loaded (files absent or unknown test)."""


class PoolTask(Task):
    """Task base: one settings object and one job-store connection per process."""

    _settings: Settings | None = None
    _store: JobStore | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            type(self)._settings = get_settings()
        return self._settings  # type: ignore[return-value]

    @property
    def store(self) -> JobStore:
        if self._store is None:
            type(self)._store = JobStore.from_settings(self.settings)
        return self._store  # type: ignore[return-value]


@signals.celeryd_after_setup.connect
def _remember_queues(sender: str, instance: Any, **_: Any) -> None:
    _CONSUMED[:] = list(instance.app.amqp.queues.consume_from or [])


@signals.worker_process_init.connect
def _preload_models(**_: Any) -> None:
    """Load this worker's models and the face detector once, in each pool process."""
    settings = get_settings()
    for name in _CONSUMED:
        if name in ("quality", "cnn", "depth3d"):
            try:
                test = load_pool_test(name, settings)
                log.info("pool %s: loaded %s %s", name, test.info.name, test.info.version)
            except LivenessError as exc:
                log.warning("pool %s: model unavailable (%s); tasks will say so", name, exc)
    if any(name != "fusion" for name in _CONSUMED):
        locate_face(np.zeros((64, 64, 3), np.uint8), settings)
