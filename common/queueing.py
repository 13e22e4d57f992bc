"""The Celery app factory — the twin of the gateway's Flask ``create_app``.

:func:`make_celery` builds a configured app from explicit :class:`Settings` and a
:class:`~common.registry.TestRegistry`: one queue per pipeline stage (``face``, one per
test, ``fusion``) and routes by task name. It registers no task, so the gateway (a
producer) uses it as it is; :func:`workers.tasks.register_tasks` adds the tasks for a
worker. Nothing is read from the environment here: ``workers/worker.py`` (the
``celery -A workers.worker`` entry point) reads the settings once and calls the factory.

Why these settings (Celery "Tasks" and "Optimizing" guides): a liveness test is a
CPU-heavy task of about a second, so a worker takes one message at a time
(``worker_prefetch_multiplier=1``) and acknowledges it only after it ran
(``task_acks_late``); a process killed mid-task (OOM, SIGKILL) makes the message go
back to the queue (``task_reject_on_worker_lost``), and a whole worker that vanished
has its unacknowledged messages redelivered by the broker after ``visibility_timeout``
— which must exceed the longest task, or a slow task would run twice. Soft and hard
time limits bound a stuck task. The result backend only carries the chord's
bookkeeping, which expires after an hour; job results live in :mod:`common.jobstore`.

Redis up but refusing writes (``MISCONF`` on a full disk, ``NOREPLICAS``, ``OOM``:
:mod:`common.outages`) must not stop a worker: the consumer treats such "channel
errors" like a lost connection and reconnects with kombu's backoff (2 s, growing by
2 s, at most 30 s: ``broker_channel_error_retry``), and refused result writes are
retried like connection errors (``additional_connection_errors``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from common.config import Settings
from common.registry import FACE_QUEUE, FUSION_QUEUE, TestRegistry, default_registry

#: Task names of the pipeline's own stages (tests are ``liveness.<test>.score``).
FACE_TASK = "liveness.face.locate"
FINALIZE_TASK = "liveness.fusion.finalize"
DEADLINE_TASK = "liveness.fusion.deadline"
CALLBACK_TASK = "liveness.fusion.callback"


class LivenessCelery(Celery):
    """A Celery app that carries the settings and test registry it was built from."""

    liveness_settings: Settings
    test_registry: TestRegistry


def celery_config(settings: Settings, registry: TestRegistry) -> dict[str, Any]:
    """The Celery configuration (``app.conf``) for these settings and tests."""
    s = settings
    routes: dict[str, dict[str, str]] = {
        "liveness.face.*": {"queue": FACE_QUEUE},
        "liveness.fusion.*": {"queue": FUSION_QUEUE},
    }
    routes.update({spec.task_name: {"queue": spec.queue} for spec in registry})
    # kombu's Redis transport sweeps unacknowledged messages back into their queue every
    # interval x throttle seconds (default 10 x 10); sweep at a quarter of the
    # visibility timeout (1-10 s) so a dead worker's task is redelivered promptly.
    transport = {
        "visibility_timeout": s.visibility_timeout_s,
        "unacked_restore_interval": max(1, min(10, s.visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
        "health_check_interval": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
    }
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Plain queues: on Redis, Celery then pushes straight onto the list named after
        # the queue, with no exchange binding to lose if Redis is flushed or restarted.
        "task_queues": [Queue(name) for name in registry.queues],
        "task_default_queue": FUSION_QUEUE,
        "task_routes": routes,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": s.task_soft_time_limit_s,
        "task_time_limit": s.task_time_limit_s,
        "result_expires": 3600,
        # One result backend (and Redis connection pool) per process, not one per thread:
        # the gateway's gevent workers run each request in a new greenlet, and a backend
        # per greenlet left two Redis connections behind per submission.
        "result_backend_thread_safe": True,
        "broker_transport_options": transport,
        # Result writes refused by Redis (the same outages) are retried like a lost
        # connection instead of failing the task's bookkeeping.
        "result_backend_transport_options": {
            "visibility_timeout": s.visibility_timeout_s,
            "additional_connection_errors": ("redis.exceptions.ResponseError",),
        },
        # A broker or backend restart is waited out, never fatal (Celery's "Broker
        # Settings" and "Redis backend settings"): reconnect forever with backoff, retry
        # result writes, notice dead connections by health checks.
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # Redis up but refusing writes (MISCONF on a full disk, NOREPLICAS, OOM …) makes
        # the consumer's BRPOP fail with a "channel error", which stops the worker
        # ("Unrecoverable error") unless channel errors reconnect like lost connections.
        "broker_channel_error_retry": True,
        "broker_connection_timeout": 4,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "redis_backend_health_check_interval": 10,
        "redis_retry_on_timeout": True,
        "redis_socket_keepalive": True,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.2,
                                      "interval_step": 0.5, "interval_max": 1},
        "worker_max_tasks_per_child": None,
        "worker_send_task_events": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


def make_celery(settings: Settings, registry: TestRegistry | None = None) -> LivenessCelery:
    """A configured Celery app (no tasks) for ``settings`` and ``registry``.

    ``registry`` defaults to the installed tests (:func:`default_registry`).
    """
    registry = registry or default_registry()
    app = LivenessCelery("liveness", broker=settings.broker_url,
                         backend=settings.result_backend, set_as_current=False)
    app.conf.update(celery_config(settings, registry))
    app.liveness_settings = settings
    app.test_registry = registry
    return app
