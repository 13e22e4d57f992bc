"""``/v1/challenges``: issue a colour-flash challenge a job then answers."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, url_for

from gateway.context import gateway

bp = Blueprint("challenges", __name__, url_prefix="/v1/challenges")


@bp.before_request
def _authenticate() -> None:
    gateway().keyring.require_owner()


@bp.post("")
def issue_challenge() -> tuple[Response, int]:
    """Issue a challenge.
    ---
    post:
      summary: A random colour sequence to flash on the screen while capturing frames
      description: |
        Fill the screen with each colour of `colours` in turn for `step_ms`, grab one
        camera frame at the end of each, then submit the job (POST /v1/jobs) with the
        image, `challenge` = this id and the frames in order, before `expires_at`. The
        face stage checks that the light reflected on the face followed the sequence
        (the result's `challenge`); a job whose check did not pass is never `live`. A
        challenge is answered once, by one job of the key that asked for it.
      tags: [jobs]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      responses:
        201:
          description: the challenge
          content:
            application/json:
              schema: Challenge
        401: Unauthorized
        429: RateLimited
        503: Unavailable
    """
    body = gateway().jobs.issue_challenge(g.owner)
    body["links"] = {"jobs": url_for("jobs.submit_job")}
    return jsonify(body), 201
