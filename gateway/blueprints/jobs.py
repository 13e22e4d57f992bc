"""``/v1/jobs``: submit one image, read (long-poll) and erase a job."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from gateway.context import gateway
from gateway.errors import ApiError
from gateway.intake import job_body_limit, parse_job_request, validate_idempotency_key
from gateway.metrics import SUBMITTED

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


@bp.before_request
def _authenticate() -> None:
    gw = gateway()
    gw.keyring.require_owner()
    request.max_content_length = job_body_limit(gw.settings)


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id!r} for this API key")


def _with_links(job: dict) -> dict:
    links: dict = {"self": url_for("jobs.get_job", job_id=job["id"])}
    if job.get("explanations"):
        links["explanations"] = {
            test: url_for("jobs.get_explanation", job_id=job["id"], test=test)
            for test in job["explanations"]}
    return {**job, "links": links}


@bp.post("")
def submit_job() -> tuple[Response, int, dict[str, str]]:
    """Submit one image.
    ---
    post:
      summary: Submit one image for a liveness check
      description: |
        Multipart (`image` file, optional `tests` comma list, `callback_url` and
        `explain`) or JSON (`image` base64, `tests` list, `callback_url`, `explain`).
        With `explain=true` each test that can explain its score (the cnn test: Grad-CAM)
        stores a PNG, listed in the job's `links.explanations` and kept no longer than
        the result. `profile` names a calibration profile (GET /v1/profiles; default: the
        API key's, else LIVENESS_DEFAULT_PROFILE): the decision is then taken on its
        calibrated probability at its threshold; unknown → 422 unknown_profile. The
        same `Idempotency-Key` from the same key returns the first job instead of a new
        one; reused for a
        different image, tests or callback_url it answers 409. A `callback_url` must
        resolve to public addresses only (unless LIVENESS_WEBHOOK_ALLOWLIST names the
        network): loopback, private, link-local and metadata addresses are refused.
        `challenge` and `frames` answer a colour-flash challenge (POST /v1/challenges):
        one frame per colour, in order; the result's `challenge` says whether the light
        on the face followed it (unknown/expired/another key's challenge → 422
        unknown_challenge, already answered → 409 challenge_used, answered faster than
        its colours can be shown → 422 challenge_answered_too_soon, a frame count other
        than its colours → 422 invalid_challenge, a frame over
        LIVENESS_CHALLENGE_FRAME_MAX_BYTES → 413 frame_too_large).
      tags: [jobs]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      parameters:
        - in: header
          name: Idempotency-Key
          schema: {type: string, maxLength: 255}
          required: false
      requestBody:
        required: true
        content:
          application/json:
            schema: JobSubmitJson
          multipart/form-data:
            schema: JobSubmitMultipart
      responses:
        202:
          description: accepted; poll `links.self` (also in `Location`)
          headers:
            Location: {schema: {type: string}}
          content:
            application/json:
              schema: JobAccepted
        400: BadRequest
        401: Unauthorized
        414: UriTooLong
        431: HeaderTooLarge
        409: Conflict
        413: TooLarge
        415: UnsupportedMedia
        422: Unprocessable
        429: RateLimited
        503: Unavailable
    """
    gw = gateway()
    idem = validate_idempotency_key(request.headers.get("Idempotency-Key"))
    sub = parse_job_request(gw.settings)
    job = gw.jobs.submit(g.owner, sub.image, tests=sub.tests, callback_url=sub.callback_url,
                         idempotency_key=idem, explain=sub.explain, profile=sub.profile,
                         challenge_id=sub.challenge, frames=sub.frames)
    SUBMITTED.labels("job").inc()
    body = {"id": job["id"], "status": job["status"],
            "links": {"self": url_for("jobs.get_job", job_id=job["id"])}}
    return jsonify(body), 202, {"Location": body["links"]["self"]}


@bp.get("/<job_id>")
def get_job(job_id: str) -> Response:
    """Read a job.
    ---
    get:
      summary: A job's status and, when done, its result
      tags: [jobs]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      parameters:
        - in: path
          name: job_id
          required: true
          schema: {type: string}
        - in: query
          name: wait
          required: false
          description: long-poll up to this many seconds (capped by LIVENESS_LONG_POLL_MAX_S)
          schema: {type: number, minimum: 0}
      responses:
        200:
          description: OK
          content:
            application/json:
              schema: Job
        400: BadRequest
        401: Unauthorized
        414: UriTooLong
        431: HeaderTooLarge
        404: NotFound
        429: RateLimited
        503: Unavailable
    """
    gw = gateway()
    wait = _wait_seconds(request.args.get("wait"), gw.settings.long_poll_max_s)
    job = gw.jobs.wait(g.owner, job_id, wait) if wait > 0 else gw.jobs.get(g.owner, job_id)
    if job is None:
        raise _not_found(job_id)
    return jsonify(_with_links(job))


@bp.get("/<job_id>/explanations/<test>")
def get_explanation(job_id: str, test: str) -> Response:
    """A test's explanation image of a job.
    ---
    get:
      summary: The Grad-CAM PNG a test stored for a job submitted with explain=true
      description: |
        The image shows, over the test's input crops, where the evidence for the test's
        own decision (live or spoof at its threshold) lies. It expires with the result.
      tags: [jobs]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      parameters:
        - in: path
          name: job_id
          required: true
          schema: {type: string}
        - in: path
          name: test
          required: true
          schema: {type: string}
      responses:
        200:
          description: the PNG
          content:
            image/png:
              schema: {type: string, format: binary}
        401: Unauthorized
        404: NotFound
        410: Gone
        429: RateLimited
        503: Unavailable
    """
    png = gateway().jobs.get_explanation(g.owner, job_id, test)
    if png is None:
        raise ApiError(404, "not_found", f"no explanation of test {test[:40]!r} for job "
                       f"{job_id!r}: the job is not this API key's, was not submitted with "
                       "explain=true, the test has none yet, or the result expired")
    return Response(png, mimetype="image/png",
                    headers={"Cache-Control": "private, no-store"})


@bp.delete("/<job_id>")
def delete_job(job_id: str) -> tuple[str, int]:
    """Erase a job.
    ---
    delete:
      summary: Erase everything about a job now (image, result, outcomes)
      tags: [jobs]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      parameters:
        - in: path
          name: job_id
          required: true
          schema: {type: string}
      responses:
        204: {description: erased}
        401: Unauthorized
        414: UriTooLong
        431: HeaderTooLarge
        404: NotFound
        429: RateLimited
        503: Unavailable
    """
    if not gateway().jobs.delete(g.owner, job_id):
        raise _not_found(job_id)
    current_app.logger.info("job %s erased on request", job_id)
    return "", 204


def _wait_seconds(raw: str | None, cap: float) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_request", "'wait' must be a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ApiError(400, "invalid_request", "'wait' must be a number of seconds >= 0")
    return min(value, float(cap))
