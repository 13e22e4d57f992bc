"""Celery task of the ``quality`` pool: a thin wrapper over :func:`workers.base.execute_test`."""

from __future__ import annotations

from typing import Any

from workers.base import PoolTask, execute_test
from workers.celery_app import app


@app.task(name="liveness.quality.score", base=PoolTask, bind=True)
def score(self: PoolTask, job_id: str) -> dict[str, Any]:
    """Score job ``job_id``'s image with the quality test and record the outcome."""
    return execute_test(self.store, self.settings, "quality", job_id)
