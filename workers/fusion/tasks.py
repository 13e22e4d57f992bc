"""The fusion pool's task bodies: the job's fan-in, its deadline, and the webhook.

``finalize`` (the chord callback) and ``deadline`` (sent by the fusion pool's sweeper
when a job's deadline in the job store is due: :mod:`workers.deadlines`) both call
:func:`finalize_job`, which is idempotent: whichever comes first reads the outcomes
hash, fuses with :func:`common.pipeline.combine` and the process's fusion — the same
code ``liveness score`` runs, so both give the same answer for the same image — and
writes the result; the other one finds the job finished and does nothing. At the
deadline, stages that never answered because of the infrastructure fail the job
(``no_worker`` / ``worker_lost``) instead of producing a liveness decision.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from common.config import Settings
from common.egress import Resolver, parse_allowlist, system_resolver
from common.errors import LivenessError
from common.explanations import add_decision_caption
from common.fusion import Fusion
from common.imageio import decode_image
from common.jobs import job_view
from common.jobstore import TERMINAL, JobStore
from common.pipeline import combine, profiles_for, run_face_stage
from common.profiles import Profile, ProfileMismatchError
from common.result import ChallengeCheck, FaceBox, FaceDetection, LivenessResult, TestOutcome
from common.webhooks import deliver, tenant_secret
from workers.base import FACE_DETECTIONS, FACE_STAGE, IMAGE_MISSING

log = logging.getLogger(__name__)

NO_WORKER_OR_TIMEOUT = "no_worker_or_timeout"
#: Infrastructure failure codes of a job (``status: failed``): a stage no worker took,
#: or whose worker vanished and whose redelivery did not finish before the deadline.
NO_WORKER = "no_worker"
WORKER_LOST = "worker_lost"


def _fallback_face(store: JobStore, settings: Settings, job_id: str) -> FaceDetection:
    """The face stage never stored a face (its pool was down): locate it here if possible."""
    try:
        data = store.get_image(job_id)
        if data is not None:
            image = decode_image(data, settings)
            store.count_stage(FACE_DETECTIONS)
            return run_face_stage(image, settings)
    except LivenessError:
        pass
    except Exception:  # a bug must not stop the job from finishing: no face, then
        log.exception("fallback face stage failed on job %s", job_id)
    return FaceDetection(FaceBox(0, 0, 0, 0), False, "whole_image", 0, ("no_face",),
                         capture_ok=False)


def infrastructure_failures(job: dict[str, Any], arrived: dict[str, Any],
                            started: set[str]) -> dict[str, str]:
    """Stages that never answered because of the infrastructure, with their code.

    A stage (the face stage or a test) with no result at the deadline either never
    started — no worker consumed its queue: ``no_worker`` — or started and vanished —
    its worker died and the redelivered task did not finish in time: ``worker_lost``.
    """
    failures: dict[str, str] = {}
    if job.get("face") is None and job.get("face_error") is None:
        failures[FACE_STAGE] = WORKER_LOST if FACE_STAGE in started else NO_WORKER
    for name in job["tests"]:
        if name not in arrived:
            failures[name] = WORKER_LOST if name in started else NO_WORKER
    return failures


def challenge_check(job: dict[str, Any]) -> ChallengeCheck | None:
    """The job's stored challenge check; ``unreadable`` / ``not_checked`` for a job that
    answered a challenge the face stage never checked (it failed, or timed out): such a
    job must not be ``live``. ``None`` for a job without a challenge."""
    if not job.get("challenge"):
        return None
    if job.get("challenge_result"):
        return ChallengeCheck.from_dict(job["challenge_result"])
    return ChallengeCheck(outcome="unreadable", why="not_checked",
                          challenge_id=job["challenge"].get("id"))


def _profile(settings: Settings, name: str) -> tuple[Profile | None, tuple[str, ...]]:
    """The job's calibration profile; a profile removed since submission is reported
    (``profile_unavailable:<name>``): the job then answers ``retry`` — it is decided
    neither without the calibration it asked for nor with another one."""
    if not name:
        return None, ()
    try:
        profile = profiles_for(settings).get(name)
    except LivenessError:
        log.exception("calibration profiles unreadable")
        profile = None
    return (profile, ()) if profile is not None else (None, (f"profile_unavailable:{name}",))


def finalize_job(store: JobStore, settings: Settings, fusion: Fusion, job_id: str,
                 trigger: str, on_finished: Callable[[str], None] | None = None,
                 resend: Callable[[str, list[str]], None] | None = None) -> bool:
    """Fuse what arrived and finish the job once; True if this call finished it.

    From the chord (every stage's task returned) the result is always fused. At the
    deadline, a stage that never answered because of the infrastructure
    (:func:`infrastructure_failures`) is re-run once — ``resend(job_id, stages)`` sends
    its task again and the deadline moves back by ``deadline_s`` (a message kombu lost,
    a pool stopped for a while); at the second deadline, or when nothing can re-send, it
    fails the job with that code and **no** liveness decision: an outage must never read
    as ``spoof`` or ``retry``. ``trigger="resent"`` (a re-run stage answered) finishes
    the job only when every stage has answered. A job whose image
    expired before any test read it fails ``image_missing``. ``on_finished(job_id)``
    runs after the job is stored when it has a ``callback_url``.
    """
    job = store.get_job(job_id)
    # A pending job's submission never completed (common.jobstore): nothing to finish.
    if job is None or job["status"] in TERMINAL or job.get("pending"):
        return False
    if not store.claim_finalize(job_id, hold_s=max(settings.task_time_limit_s, 30)):
        return False
    arrived = store.get_outcomes(job_id)
    failures = (infrastructure_failures(job, arrived, store.started_stages(job_id))
                if trigger != "chord" else {})
    if failures and trigger == "resent":
        store.release_finalize(job_id)  # other re-run stages are still coming
        return False
    # Re-run only in a job whose work started: its missing messages may have been lost
    # (a worker killed as it took one); in a job nothing started, they are still queued.
    if (failures and resend is not None and job.get("started_ts")
            and store.mark_resent(job_id, list(failures))):
        store.release_finalize(job_id)
        resend(job_id, list(failures))
        log.warning("job %s: no answer from %s at its deadline; re-running them once",
                    job_id, ", ".join(failures))
        return False
    if failures:
        code = WORKER_LOST if WORKER_LOST in failures.values() else NO_WORKER
        stages = ", ".join(f"{stage} ({why})" for stage, why in failures.items())
        store.finish(job_id, "failed", None, error=f"{code}: no answer from {stages}; "
                     "an infrastructure fault, not a liveness result: submit again")
        store.count_finished({n: "missing" for n in failures if n != FACE_STAGE}, "failed",
                             None)
        _notify(job, job_id, on_finished)
        log.warning("job %s failed at its deadline: %s", job_id, stages)
        return True
    outcomes: dict[str, TestOutcome] = {}
    missing: dict[str, str] = {}
    for name in job["tests"]:
        record = arrived.get(name)
        if record is None:  # the chord fired, but the outcome came too late to be kept
            outcomes[name] = TestOutcome(score=None, error=NO_WORKER_OR_TIMEOUT)
            missing[name] = NO_WORKER_OR_TIMEOUT
            continue
        outcomes[name] = TestOutcome.from_dict(record)
        if outcomes[name].score is None:
            missing[name] = outcomes[name].error or "no_score"
    stored_face = job.get("face")
    face = (FaceDetection.from_dict(stored_face) if stored_face
            else _fallback_face(store, settings, job_id))
    created = float(job["created_ts"])
    now = time.time()
    started = float(job["started_ts"]) if job.get("started_ts") else None
    timings = {
        "queued_s": round(started - created, 4) if started else None,
        "tests_s": {n: o.seconds for n, o in outcomes.items()},
        "total_s": round(now - created, 4),
        "finalized_by": trigger,
    }
    # seconds: processing time, from the first task's start (as `liveness score` reports
    # it); the time spent waiting in the queue is timings.queued_s.
    profile, reasons = _profile(settings, job.get("profile") or "")
    try:
        result = combine(face, outcomes, now - (started or created), fusion, profile,
                         challenge_check(job))
    except ProfileMismatchError as exc:
        # The job's profile was fitted on other models (one was upgraded since, or the
        # profile file was replaced): no decision from a calibration that does not apply.
        store.finish(job_id, "failed", None, error=f"{exc.code}: {exc.message}")
        store.count_finished({n: "ok" if o.score is not None else "error"
                              for n, o in outcomes.items()}, "failed", None)
        _notify(job, job_id, on_finished)
        log.error("job %s failed: %s", job_id, exc.message)
        return True
    if reasons:  # its profile is gone: no decision at a threshold the job did not ask for
        result = dataclasses.replace(result, decision="retry",
                                     reasons=(*result.reasons, *reasons))
    result = dataclasses.replace(result, missing_tests=missing, timings=timings)
    errors = [o.error or "" for o in outcomes.values()]
    status = "failed" if errors and all(e.startswith(IMAGE_MISSING) for e in errors) else "done"
    if status == "done":
        _caption_explanations(store, job_id, result)
    store.finish(job_id, status, result.to_dict(),
                 error=IMAGE_MISSING if status == "failed" else None)
    states = {
        name: "missing" if missing.get(name) == NO_WORKER_OR_TIMEOUT
        else ("ok" if o.score is not None else "error")
        for name, o in outcomes.items()
    }
    store.count_finished(states, status, result.decision if status == "done" else None)
    _notify(job, job_id, on_finished)
    log.info("job %s finished by %s (missing: %s)", job_id, trigger, sorted(missing))
    return True


def _caption_explanations(store: JobStore, job_id: str, result: LivenessResult) -> None:
    """Add the job's decision under each stored explanation (the test drew only its own
    verdict); a failure is logged and leaves the explanation as the test stored it."""
    job = store.get_job(job_id)
    for test in (job or {}).get("explanations", []):
        try:
            png = store.get_explanation(job_id, test)
            if png is not None:
                store.put_explanation(job_id, test, add_decision_caption(png, result))
        except (LivenessError, ValueError):
            log.exception("job %s: the %s explanation keeps its own caption only", job_id,
                          test)


def _notify(job: dict[str, Any], job_id: str, on_finished: Callable[[str], None] | None) -> None:
    if job.get("callback_url") and on_finished is not None:
        on_finished(job_id)


def webhook_body(store: JobStore, job_id: str) -> tuple[str, bytes, str] | None:
    """``(callback_url, body, owner)`` of a finished job's webhook; None when there is none.

    The body is the same JSON ``GET /v1/jobs/<id>`` returns; ``owner`` is the API-key id
    that submitted the job (whose webhook secret signs it).
    """
    job = store.get_job(job_id)
    if job is None or not job.get("callback_url"):
        return None
    body = json.dumps(job_view(job_id, job), separators=(",", ":")).encode()
    return job["callback_url"], body, str(job["owner"])


def deliver_webhook(store: JobStore, settings: Settings, job_id: str,
                    resolver: Resolver = system_resolver) -> int | None:
    """POST the finished job, signed; the HTTP status, None when the job has no callback.

    The signature uses the job owner's secret (:func:`common.webhooks.tenant_secret` of
    ``settings.webhook_secret`` and the owner's key id), so a tenant can verify its own
    webhooks and cannot forge another's. The target is checked again now
    (:mod:`common.egress`): a refused one raises :class:`CallbackRefusedError` before any
    connection (not retried). Raises :class:`WebhookError` when the attempt failed (the
    task retries).
    """
    found = webhook_body(store, job_id)
    if found is None:
        return None
    url, body, owner = found
    return deliver(url, body, tenant_secret(settings.webhook_secret, owner),
                   settings.webhook_timeout_s, parse_allowlist(settings.webhook_allowlist),
                   resolver, message_id=f"msg_{job_id}")
