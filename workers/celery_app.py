"""The Celery application: one queue per pool, heavy-task settings, JSON only.

Start a pool with ``celery -A workers.celery_app worker -Q <queue> -c <n>`` where the
queue is ``quality``, ``cnn``, ``depth3d`` or ``fusion``. Each pool process loads its
model once (:mod:`workers.base`), never per task.

Why these settings (Celery "Tasks" and "Optimizing" guides): a liveness test is a
CPU-heavy task of about a second, so a worker takes one message at a time
(``worker_prefetch_multiplier=1``) and acknowledges it only after it ran
(``task_acks_late``); a process killed mid-task (OOM, SIGKILL) makes the message go
back to the queue (``task_reject_on_worker_lost``), and a whole worker that vanished
has its unacknowledged messages redelivered by the broker after
``visibility_timeout`` — which must exceed the longest task, or a slow task would run
twice. Soft and hard time limits bound a stuck task. The result backend only carries
the chord's bookkeeping (each test task returns a small summary), which expires after
an hour; job results themselves live in :mod:`common.jobstore`.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from common.config import get_settings

QUEUES = ("quality", "cnn", "depth3d", "fusion")
#: Pools that run a liveness test, named as the test they run.
TEST_POOLS = ("quality", "cnn", "depth3d")

TASK_MODULES = [
    "workers.quality.tasks",
    "workers.cnn.tasks",
    "workers.depth3d.tasks",
    "workers.fusion.tasks",
]


def make_app() -> Celery:
    """Build the app from ``LIVENESS_*`` settings (broker, limits, visibility timeout)."""
    s = get_settings()
    app = Celery("liveness", broker=s.broker_url, backend=s.result_backend, include=TASK_MODULES)
    # kombu's Redis transport sweeps unacknowledged messages back into their queue every
    # interval x throttle seconds (default 10 x 10); sweep at a quarter of the
    # visibility timeout (1-10 s) so a dead worker's task is redelivered promptly.
    transport = {
        "visibility_timeout": s.visibility_timeout_s,
        "unacked_restore_interval": max(1, min(10, s.visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Plain queues: on Redis, Celery then pushes straight onto the list named after
        # the queue, with no exchange binding to lose if Redis is flushed or restarted.
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="fusion",
        task_routes={f"liveness.{name}.*": {"queue": name} for name in QUEUES},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=s.task_soft_time_limit_s,
        task_time_limit=s.task_time_limit_s,
        result_expires=3600,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": s.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2,
                                   "interval_step": 0.5, "interval_max": 1},
        worker_max_tasks_per_child=None,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    return app


app = make_app()
