"""``/metrics``: Prometheus text exposition."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.context import gateway
from gateway.metrics import exposition_registry, render

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics.
    ---
    get:
      summary: Prometheus metrics (requests, latencies, queue depths, test outcomes)
      tags: [operations]
      security: []
      responses:
        200:
          description: Prometheus text format
          content:
            text/plain:
              schema: {type: string}
    """
    return render(exposition_registry(gateway().metrics))
