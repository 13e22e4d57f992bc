"""Celery task of the ``cnn`` pool: a thin wrapper over :func:`workers.base.execute_test`."""

from __future__ import annotations

from typing import Any

from workers.base import PoolTask, execute_test
from workers.celery_app import app


@app.task(name="liveness.cnn.score", base=PoolTask, bind=True)
def score(self: PoolTask, job_id: str) -> dict[str, Any]:
    """Score job ``job_id``'s image with the cnn test and record the outcome."""
    return execute_test(self.store, self.settings, "cnn", job_id)
