"""The fusion pool: the job's fan-in, its deadline, and the webhook.

``finalize`` (the chord callback) and ``deadline`` (scheduled at submission with
``countdown = job_deadline_s``) both call :func:`finalize_job`, which is idempotent:
whichever comes first reads the outcomes hash, fuses with
:func:`workers.pipeline.combine` — the same code ``liveness score`` runs, so both give
the same answer for the same image — and writes the result; the other one finds the
job finished and does nothing. Tests without an outcome at that moment are recorded
as missing with ``no_worker_or_timeout``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from common.config import Settings
from common.errors import LivenessError
from common.faces import FaceBox, FaceDetection, locate_face, whole_image_box
from common.imageio import decode_image
from common.jobstore import JobStore
from common.webhooks import WebhookError, deliver
from workers.base import IMAGE_MISSING, PoolTask
from workers.celery_app import app
from workers.pipeline import TestOutcome, combine

log = logging.getLogger(__name__)

NO_WORKER_OR_TIMEOUT = "no_worker_or_timeout"
_OUTCOME_FIELDS = ("score", "model", "version", "threshold", "seconds", "error")


def _face_from_dict(data: dict[str, Any]) -> FaceDetection:
    return FaceDetection(
        box=FaceBox(**data["box"]),
        found=bool(data["found"]),
        method=str(data["method"]),
        n_faces=int(data["n_faces"]),
        reasons=tuple(data.get("reasons", ())),
    )


def _fallback_face(store: JobStore, settings: Settings, job_id: str) -> FaceDetection:
    """No test reported a face: locate it here if the image is still there."""
    data = store.get_image(job_id)
    if data is not None:
        try:
            return locate_face(decode_image(data, settings), settings)
        except LivenessError:
            pass
    empty = np.zeros((0, 0, 3), np.uint8)
    return FaceDetection(whole_image_box(empty.shape), False, "whole_image", 0, ("no_face",))


def finalize_job(store: JobStore, settings: Settings, job_id: str, trigger: str) -> bool:
    """Fuse what arrived and finish the job once; True if this call finished it."""
    job = store.get_job(job_id)
    if job is None or job["status"] in ("done", "failed"):
        return False
    if not store.claim_finalize(job_id, hold_s=max(settings.task_time_limit_s, 30)):
        return False
    arrived = store.get_outcomes(job_id)
    outcomes: dict[str, TestOutcome] = {}
    missing: dict[str, str] = {}
    face = None
    for name in job["tests"]:
        record = arrived.get(name)
        if record is None:
            outcomes[name] = TestOutcome(score=None, error=NO_WORKER_OR_TIMEOUT)
            missing[name] = NO_WORKER_OR_TIMEOUT
            continue
        outcomes[name] = TestOutcome(**{k: record.get(k) for k in _OUTCOME_FIELDS})
        if record.get("score") is None:
            missing[name] = record.get("error") or "no_score"
        if face is None and record.get("face"):
            face = _face_from_dict(record["face"])
    if face is None:
        face = _fallback_face(store, settings, job_id)
    created = float(job["created_ts"])
    now = time.time()
    result = combine(face, outcomes, now - created).to_dict()
    result["missing_tests"] = missing
    started = float(job["started_ts"]) if job.get("started_ts") else None
    result["timings"] = {
        "queued_s": round(started - created, 4) if started else None,
        "tests_s": {n: o.seconds for n, o in outcomes.items()},
        "total_s": round(now - created, 4),
        "finalized_by": trigger,
    }
    errors = [o.error or "" for o in outcomes.values()]
    status = "failed" if errors and all(e.startswith(IMAGE_MISSING) for e in errors) else "done"
    store.finish(job_id, status, result, error=IMAGE_MISSING if status == "failed" else None)
    states = {
        name: "missing" if missing.get(name) == NO_WORKER_OR_TIMEOUT
        else ("ok" if o.score is not None else "error")
        for name, o in outcomes.items()
    }
    store.count_finished(states, status, result.get("decision") if status == "done" else None)
    if job.get("callback_url"):
        app.signature("liveness.fusion.callback", args=(job_id,)).apply_async()
    log.info("job %s finished by %s (missing: %s)", job_id, trigger, sorted(missing))
    return True


@app.task(name="liveness.fusion.finalize", base=PoolTask, bind=True)
def finalize(self: PoolTask, results: list[Any] | None, job_id: str) -> bool:
    """Chord callback: every test task returned (its outcome is in the store)."""
    return finalize_job(self.store, self.settings, job_id, "chord")


@app.task(name="liveness.fusion.deadline", base=PoolTask, bind=True)
def deadline(self: PoolTask, job_id: str) -> bool:
    """Scheduled at submission: finish with whatever arrived if the chord has not."""
    return finalize_job(self.store, self.settings, job_id, "deadline")


@app.task(name="liveness.fusion.callback", base=PoolTask, bind=True, max_retries=None)
def callback(self: PoolTask, job_id: str) -> int | None:
    """POST the finished job (signed) to its ``callback_url``; retry with backoff."""
    from workers.jobs import job_view  # the same JSON GET /v1/jobs/<id> returns

    job = self.store.get_job(job_id)
    if job is None or not job.get("callback_url"):
        return None
    body = json.dumps(job_view(job_id, job), separators=(",", ":")).encode()
    s = self.settings
    try:
        return deliver(job["callback_url"], body, s.webhook_secret, s.webhook_timeout_s)
    except WebhookError as exc:
        if self.request.retries + 1 >= s.webhook_attempts:
            log.warning("webhook for job %s abandoned: %s", job_id, exc)
            return None
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60)) from exc
