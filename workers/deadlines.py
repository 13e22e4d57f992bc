"""The deadline sweeper: a fusion-pool boot step that finishes jobs whose deadline is due.

A job's deadline lives in the job store (a Redis sorted set, :mod:`common.jobstore`),
not in a message: submission + ``job_start_timeout_s`` until its first task starts,
then that start + ``job_deadline_s``. Every ``deadline_sweep_s`` seconds the worker of
the ``fusion`` queue claims the due ids (each leased for 30 s, so a claim whose task
never ran is claimed again) and sends one ``liveness.fusion.deadline`` task per job,
to run now (the same timer compacts Redis's append-only file: :mod:`common.aof`).
Nothing waits unacknowledged in a worker's memory, so a broker restart or
a dead fusion worker loses no deadline (Celery's ETA tasks did both). Several fusion
workers may sweep: the claim is atomic and finishing a job is idempotent.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from celery import bootsteps
from celery.result import denied_join_result

from common.aof import AofCompactor
from common.jobstore import JobStore
from common.queueing import DEADLINE_TASK
from common.registry import FUSION_QUEUE

log = logging.getLogger(__name__)

#: Seconds a claimed deadline stays with this sweep before another may claim it again.
LEASE_S = 30.0


def sweep(store: JobStore, send: Any, limit: int = 100) -> int:
    """Claim the due deadlines and send their tasks; how many were sent.

    A due job whose submission was never confirmed (a pending job past its grace
    deadline: the submission failed, :mod:`common.jobstore`) is erased silently
    instead — it never ran, and must neither fail as ``no_worker`` nor be kept.
    """
    sent = 0
    for job_id in store.claim_due(lease_s=LEASE_S, limit=limit):
        if store.erase_pending(job_id):
            log.info("job %s: submission never confirmed; erased", job_id)
            continue
        send(DEADLINE_TASK, args=(job_id,))
        sent += 1
    return sent


class DeadlineSweeper(bootsteps.StartStopStep):
    """Runs :func:`sweep` on the worker's timer, in a worker that consumes ``fusion``."""

    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        self.store: JobStore | None = None
        self.compactor: AofCompactor | None = None

    def start(self, worker: Any) -> None:
        app = worker.app
        if FUSION_QUEUE not in (app.amqp.queues.consume_from or {}):
            return
        settings = app.liveness_settings
        self.store = JobStore.from_settings(settings, patient=False)  # the next tick retries
        # The same timer compacts Redis's append-only file (common/aof.py).
        self.compactor = AofCompactor(self.store.redis, settings.aof_rewrite_s)
        self.tref = worker.timer.call_repeatedly(settings.deadline_sweep_s, self._tick,
                                                 (app,), priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def _tick(self, app: Any) -> None:
        try:
            assert self.store is not None
            # Sent, never waited for: no subscription to each deadline task's result
            # (the worker's main process would otherwise keep one per task sent).
            with denied_join_result():
                sweep(self.store, app.send_task)
        except Exception as exc:  # Redis or the broker away: the next tick tries again
            log.warning("deadline sweep skipped: %s", exc)
        try:
            if self.compactor is not None:
                self.compactor.tick()
        except Exception as exc:  # Redis away: the next tick tries again
            log.warning("append-only file compaction skipped: %s", exc)
