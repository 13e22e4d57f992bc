"""``/healthz`` (the process is up) and ``/readyz`` (it can do work)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from gateway.context import gateway

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness probe.
    ---
    get:
      summary: The process is up (touches nothing else)
      tags: [operations]
      security: []
      responses:
        200:
          description: OK
          content:
            application/json:
              schema: Health
    """
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness probe.
    ---
    get:
      summary: Redis answers and every required queue has a consuming worker
      description: Cached for LIVENESS_READYZ_CACHE_S seconds.
      tags: [operations]
      security: []
      responses:
        200:
          description: OK
          content:
            application/json:
              schema: Ready
        503:
          description: not ready; `checks` says what is missing
          content:
            application/json:
              schema: Ready
    """
    ready, checks = gateway().readiness()
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), (
        200 if ready else 503)
