"""Every task of the job pipeline, registered on an app from its test registry.

:func:`register_tasks` adds to a :func:`common.queueing.make_celery` app:

- ``liveness.face.locate`` (``face`` queue): the face stage, once per job;
- ``liveness.<test>.score`` (the test's queue), one per registered test — the same
  generic body (:func:`workers.base.execute_test`) with the test's own time limits;
- ``liveness.fusion.finalize`` / ``.deadline`` / ``.callback`` (``fusion`` queue).

A pool is a worker consuming some of these queues (``celery -A workers.worker worker
-Q <queue>``). Models load once per pool process: when a pool process starts it loads
the tests of the queues its worker consumes (and the fusion for the ``fusion`` queue),
so the first request pays for neither. Before that, the worker's main process checks
the SHA-256 of those model folders: a corrupt or swapped weight file stops the worker
with an error naming the file, while a test whose model is simply not installed still
runs and answers ``model_unavailable`` (:class:`VerifyModels`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps, signals

from common.config import Settings
from common.egress import CallbackRefusedError
from common.errors import LivenessError, ModelError
from common.faces.detectors import check_detector
from common.fusion import load_fusion
from common.modelfolder import MANIFEST, read_model_folder
from common.pipeline import fusion_for
from common.queueing import (
    CALLBACK_TASK,
    DEADLINE_TASK,
    FACE_TASK,
    FINALIZE_TASK,
    make_celery,
)
from common.registry import FACE_QUEUE, FUSION_QUEUE, TestSpec
from common.webhooks import WebhookError, check_master_secret
from workers.base import FACE_STAGE, PoolTask, execute_face_stage, execute_test
from workers.deadlines import DeadlineSweeper
from workers.fusion.tasks import deliver_webhook, finalize_job

log = logging.getLogger(__name__)


def register_tasks(app: Celery) -> Celery:
    """Register the face, test and fusion tasks on ``app`` (from its registry); return it."""
    app.task(name=FACE_TASK, base=PoolTask, bind=True)(locate)
    for spec in app.test_registry:  # type: ignore[attr-defined]
        _register_test(app, spec)
    app.task(name=FINALIZE_TASK, base=PoolTask, bind=True)(finalize)
    app.task(name=DEADLINE_TASK, base=PoolTask, bind=True)(deadline)
    app.task(name=CALLBACK_TASK, base=PoolTask, bind=True, max_retries=None)(callback)
    app.steps["worker"].add(VerifyModels)
    app.steps["worker"].add(DeadlineSweeper)
    return app


def build_worker_app(settings: Settings) -> Celery:
    """The worker pools' app (``workers.worker``): :func:`register_tasks` on
    :func:`common.queueing.make_celery` of ``settings``.

    Raises :class:`common.config.SettingsError` when ``LIVENESS_WEBHOOK_SECRET`` is
    unusable (:func:`common.webhooks.check_master_secret`): a pool does not start with a
    secret anyone could guess.
    """
    check_master_secret(settings.webhook_secret)
    return register_tasks(make_celery(settings))


def _register_test(app: Celery, spec: TestSpec) -> None:
    limits: dict[str, Any] = {}
    if spec.soft_time_limit_s is not None:
        limits["soft_time_limit"] = spec.soft_time_limit_s
    if spec.time_limit_s is not None:
        limits["time_limit"] = spec.time_limit_s
    app.task(name=spec.task_name, base=PoolTask, bind=True, test_name=spec.name,
             **limits)(score)


# --- task bodies (bound: ``self`` is the task) ----------------------------------------
def locate(self: PoolTask, job_id: str, resent: bool = False) -> dict[str, Any]:
    """The face stage: locate job ``job_id``'s face once and store it in the job."""
    summary = execute_face_stage(self.store, self.settings, job_id)
    if resent:
        _finish_if_complete(self, job_id)
    return summary


def score(self: PoolTask, job_id: str, resent: bool = False) -> dict[str, Any]:
    """Score job ``job_id`` with this task's test and record the outcome."""
    name: str = self.test_name  # type: ignore[attr-defined]
    summary = execute_test(self.store, self.settings, self.registry, name, job_id)
    if resent:
        _finish_if_complete(self, job_id)
    return summary


def _finish_if_complete(task: PoolTask, job_id: str) -> None:
    """A re-run stage answered: let fusion finish the job if nothing else is missing."""
    task.app.send_task(FINALIZE_TASK, kwargs={"job_id": job_id, "trigger": "resent"})


def finalize(self: PoolTask, job_id: str, trigger: str = "chord") -> bool:
    """Chord callback: every stage's task returned (its outcome is in the store).

    Also sent with ``trigger="resent"`` by a re-run stage once it answered.
    """
    return finalize_job(self.store, self.settings, fusion_for(self.settings), job_id, trigger,
                        on_finished=lambda jid: _enqueue_callback(self, jid))


def deadline(self: PoolTask, job_id: str) -> bool:
    """Sent by the deadline sweeper (:mod:`workers.deadlines`): finish the job now, or
    re-run once the stages that never answered."""
    return finalize_job(self.store, self.settings, fusion_for(self.settings), job_id,
                        "deadline", on_finished=lambda jid: _enqueue_callback(self, jid),
                        resend=lambda jid, stages: _resend(self, jid, stages))


def _resend(task: PoolTask, job_id: str, stages: list[str]) -> None:
    """Send the tasks of ``stages`` again (``face`` or test names), outside the chord."""
    for stage in stages:
        name = FACE_TASK if stage == FACE_STAGE else task.registry.get(stage).task_name
        task.app.send_task(name, args=(job_id,), kwargs={"resent": True})


def callback(self: PoolTask, job_id: str) -> int | None:
    """POST the finished job (signed) to its ``callback_url``; retry with backoff."""
    try:
        return deliver_webhook(self.store, self.settings, job_id)
    except CallbackRefusedError as exc:  # the target became refused (e.g. DNS changed)
        log.warning("webhook for job %s refused: %s", job_id, exc.message)
        return None
    except WebhookError as exc:
        if self.request.retries + 1 >= self.settings.webhook_attempts:
            log.warning("webhook for job %s abandoned: %s", job_id, exc)
            return None
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60)) from exc


def _enqueue_callback(task: PoolTask, job_id: str) -> None:
    task.app.signature(CALLBACK_TASK, args=(job_id,)).apply_async()


# --- worker start-up: verify, then preload, the models of the consumed queues ----------
#: (app, queues) of this worker, set in the main process before the pool forks.
_WORKER: dict[str, Any] = {}


def verify_models(app: Celery, queues: list[str]) -> None:
    """Check the SHA-256 of the model folders this worker's queues need.

    A test whose model folder has no ``model.json`` is not installed (its tasks answer
    ``model_unavailable``); one whose files fail the check raises :class:`ModelError`, as
    does a face pool whose detector or Face Mesh model files are missing.
    """
    settings = app.liveness_settings  # type: ignore[attr-defined]
    for spec in app.test_registry:  # type: ignore[attr-defined]
        folder = spec.model_dir(settings.models_dir)
        if spec.queue in queues and spec.scorer is not None and (folder / MANIFEST).is_file():
            read_model_folder(folder)
    if FUSION_QUEUE in queues:
        # read and checked now (not a cached copy), at the configured operating point
        load_fusion(settings.models_dir, settings.operating_point)
    if FACE_QUEUE in queues:
        check_detector(settings.face_detector)


class VerifyModels(bootsteps.StartStopStep):
    """Worker boot step: a corrupt model stops the worker before it takes any task.

    An exception in a boot step's ``start`` is Celery's "Unrecoverable error": the
    worker logs it and exits with status 1, so a supervisor or orchestrator sees the
    failure instead of a pool that answers every job with an error.
    """

    def start(self, worker: Any) -> None:
        queues = list(worker.app.amqp.queues.consume_from or [])
        try:
            verify_models(worker.app, queues)
        except ModelError as exc:
            log.critical("refusing to start: %s", exc.message)
            raise


@signals.celeryd_after_setup.connect
def _remember_queues(sender: str, instance: Any, **_: Any) -> None:
    """Main process: remember the app and its consumed queues for the pool processes."""
    app = instance.app
    _WORKER.update(app=app, queues=list(app.amqp.queues.consume_from or []))


@signals.worker_process_init.connect
def _preload_models(**_: Any) -> None:
    """Each pool process: load its tests (and the face detector) once, up front."""
    app, queues = _WORKER.get("app"), _WORKER.get("queues", [])
    if app is None or not hasattr(app, "test_registry"):
        return
    settings, registry = app.liveness_settings, app.test_registry
    for spec in registry:
        if spec.queue not in queues:
            continue
        try:
            test = registry.load_scorer(spec.name, settings.models_dir)
            log.info("pool %s: loaded %s %s", spec.queue, test.info.name, test.info.version)
        except ModelError as exc:
            log.warning("pool %s: model unavailable (%s); tasks will say so", spec.queue, exc)
        except LivenessError as exc:
            log.warning("pool %s: %s", spec.queue, exc)
    if FACE_QUEUE in queues:
        import numpy as np

        from common.challenge.check import preload
        from common.pipeline import run_face_stage

        run_face_stage(np.zeros((64, 64, 3), np.uint8), settings)
        preload()  # the challenge check's face_recognition models
