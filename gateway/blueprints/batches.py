"""``/v1/batches``: many images at once (multipart files or one zip), each a job."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from common.result import LivenessResult, csv_columns, csv_row
from gateway.context import gateway
from gateway.errors import ApiError
from gateway.intake import parse_batch_request
from gateway.metrics import SUBMITTED

bp = Blueprint("batches", __name__, url_prefix="/v1/batches")


@bp.before_request
def _authenticate() -> None:
    gw = gateway()
    gw.keyring.require_owner()
    request.max_content_length = gw.settings.max_batch_bytes


def _with_links(batch: dict) -> dict:
    return {**batch, "links": {"self": url_for("batches.get_batch", batch_id=batch["id"])}}


@bp.post("")
def submit_batch() -> tuple[Response, int, dict[str, str]]:
    """Submit a batch.
    ---
    post:
      summary: Submit many images; each becomes a job
      description: |
        Multipart with one `images` file per image (or one zip in `archive` or as the
        only `images` file), or an `application/zip` body. Zips are bounded in entry
        count, per-entry and total uncompressed size; an image that cannot be used is
        reported in its item (`status: error`), not fatal to the batch.
      tags: [batches]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema: BatchMultipart
          application/zip:
            schema: {type: string, format: binary}
      responses:
        202:
          description: accepted; per-image jobs are queued
          headers:
            Location: {schema: {type: string}}
          content:
            application/json:
              schema: Batch
        400: BadRequest
        401: Unauthorized
        414: UriTooLong
        431: HeaderTooLarge
        413: TooLarge
        415: UnsupportedMedia
        422: Unprocessable
        429: RateLimited
        503: Unavailable
    """
    gw = gateway()
    batch_req = parse_batch_request(gw.settings)
    batch = gw.jobs.create_batch(g.owner, batch_req.items, tests=batch_req.tests,
                                 callback_url=batch_req.callback_url, profile=batch_req.profile)
    SUBMITTED.labels("batch_item").inc(sum(1 for i in batch["items"] if i.get("job_id")))
    body = _with_links(batch)
    return jsonify(body), 202, {"Location": body["links"]["self"]}


@bp.get("/<batch_id>")
def get_batch(batch_id: str) -> Response:
    """Read a batch.
    ---
    get:
      summary: Progress counts and per-image results of a batch
      description: "`?format=csv` answers CSV with the columns of `liveness score --out`."
      tags: [batches]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      parameters:
        - in: path
          name: batch_id
          required: true
          schema: {type: string}
        - in: query
          name: format
          required: false
          schema: {type: string, enum: [json, csv]}
      responses:
        200:
          description: OK
          content:
            application/json:
              schema: Batch
            text/csv:
              schema: {type: string}
        400: BadRequest
        401: Unauthorized
        414: UriTooLong
        431: HeaderTooLarge
        404: NotFound
        429: RateLimited
        503: Unavailable
    """
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, "invalid_request", "'format' must be 'json' or 'csv'")
    batch = gateway().jobs.get_batch(g.owner, batch_id)
    if batch is None:
        raise ApiError(404, "not_found", f"no batch {batch_id!r} for this API key")
    if fmt == "json":
        return jsonify(_with_links(batch))
    return Response(batch_csv(batch), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="batch-{batch_id}.csv"'})


@bp.delete("/<batch_id>")
def delete_batch(batch_id: str) -> tuple[str, int]:
    """Erase a batch.
    ---
    delete:
      summary: Erase a batch and every job of it now (images, results, outcomes)
      tags: [batches]
      security: [{bearerAuth: []}, {apiKeyHeader: []}]
      parameters:
        - in: path
          name: batch_id
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
    if not gateway().jobs.delete_batch(g.owner, batch_id):
        raise ApiError(404, "not_found", f"no batch {batch_id!r} for this API key")
    current_app.logger.info("batch %s erased on request", batch_id)
    return "", 204


def batch_csv(batch: dict) -> str:
    """The batch as ``liveness score --out`` CSV: one row per image, same columns.

    Unfinished images have an empty score and their status (``queued``/``running``) as
    the decision; refused or failed ones the decision ``error`` and the cause.
    """
    tests: list[str] = []
    for item in batch["items"]:
        for name in (item.get("result") or {}).get("tests", {}):
            if name not in tests:
                tests.append(name)
    rows = []
    for item in batch["items"]:
        raw = item.get("result") if item["status"] == "done" else None
        result = LivenessResult.from_dict(raw) if raw else None
        error = item.get("error")
        seconds = result.seconds if result is not None else 0.0
        queued = float((result.timings or {}).get("queued_s") or 0.0) if result else 0.0
        row = csv_row(item["name"], result, error, seconds, tests, queued)
        if result is None and item["status"] in ("queued", "running"):
            row["decision"] = item["status"]
        elif result is None and not error:
            row["error"] = item["status"]
        rows.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_columns(tests))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
