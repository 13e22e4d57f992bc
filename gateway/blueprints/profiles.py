"""``/v1/profiles``: the calibration profiles jobs may name (``liveness calibrate``)."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from gateway.context import gateway

bp = Blueprint("profiles", __name__, url_prefix="/v1/profiles")


@bp.get("")
def list_profiles() -> Response:
    """List the calibration profiles.
    ---
    get:
      summary: Calibration profiles a job may name with `profile=`
      tags: [jobs]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      responses:
        200:
          description: the profiles and this key's default
          content:
            application/json:
              schema: Profiles
        401: Unauthorized
        429: RateLimited
    """
    gw = gateway()
    gw.keyring.require_owner()
    jobs = gw.jobs
    default = jobs.key_profiles.get(g.owner) or gw.settings.default_profile or None
    return jsonify({"default": default,
                    "profiles": [p.summary() for _, p in sorted(jobs.profiles.all().items())]})
