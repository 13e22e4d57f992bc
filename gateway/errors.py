"""Every error leaves the gateway as ``{"error": {"code", "message"}}`` with a 4xx/5xx.

Core :class:`~common.errors.LivenessError` s carry their own ``http_status``; werkzeug's
HTTP errors (404, 405, 413, 429 …) are re-rendered as JSON keeping their headers
(``Allow``, ``Retry-After``); a Redis or broker outage — unreachable, or refusing
writes — is a quick 503 ``unavailable`` with ``Retry-After``;
anything else is a bug: logged with its traceback, answered 500 ``internal_error``.

Requests too large to reach the app: the gateway enforces its own limits first
(:data:`MAX_URI_BYTES` → 414, :data:`MAX_HEADER_FIELD_BYTES` → 431, in JSON), below
gunicorn's (``gateway/gunicorn.conf.py``); what gunicorn itself refuses (beyond its
limits, malformed requests) is written by :func:`gunicorn_error_response` in the same
JSON form.
"""

from __future__ import annotations

import json
import logging

import redis
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from common.errors import LivenessError, without_object_reprs
from common.outages import refusal_code

log = logging.getLogger(__name__)

#: Machine-readable codes for HTTP errors (werkzeug's and gunicorn's).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    429: "rate_limited",
    431: "header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}
#: The gateway's own request limits (below gunicorn's, so these answer in JSON):
#: the request target (path + query) in bytes, and one header field (name + value).
MAX_URI_BYTES = 4096
MAX_HEADER_FIELD_BYTES = 8192


def check_request_limits(uri: str, headers: list[tuple[str, str]]) -> None:
    """Raise :class:`ApiError` 414 / 431 when the request exceeds the gateway's limits."""
    if len(uri.encode("latin-1", "replace")) > MAX_URI_BYTES:
        raise ApiError(414, "uri_too_long",
                       f"the request target is longer than {MAX_URI_BYTES} bytes")
    for name, value in headers:
        if len(name) + len(value) > MAX_HEADER_FIELD_BYTES:
            raise ApiError(431, "header_fields_too_large",
                           f"header {name[:40]!r} is longer than {MAX_HEADER_FIELD_BYTES} "
                           "bytes")


class ApiError(LivenessError):
    """An error of the HTTP layer itself (bad JSON, missing field, unknown id …)."""

    def __init__(self, http_status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.headers = headers or {}


def _outage_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the job store or the broker cannot serve this request"."""
    # Every Redis error: unreachable, timing out, something that is not Redis answering
    # (InvalidResponse), or Redis up but refusing writes (MISCONF, NOREPLICAS, OOM …:
    # common.outages) — none of them is the request's fault or one the app can act on.
    types: list[type[BaseException]] = [redis.exceptions.RedisError]
    try:  # the broker client (RabbitMQ or Redis through kombu)
        from kombu.exceptions import OperationalError

        types.append(OperationalError)
    except ImportError:  # pragma: no cover - kombu ships with celery
        pass
    return tuple(types)


OUTAGE_ERRORS = _outage_types()


def error_response(status: int, code: str, message: str) -> Response:
    """The JSON error answer. A safety net: a Python object repr that slipped into
    ``message`` (``<… object at 0x…>``, a bug at the message's source) is replaced by
    ``the data`` and logged, never sent."""
    cleaned = without_object_reprs(message)
    if cleaned != message:
        log.error("an error message (%s) contained a Python object repr; fix its source: %s",
                  code, message)
    response = jsonify({"error": {"code": code, "message": cleaned}})
    response.status_code = status
    return response


def gunicorn_error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 JSON error response, for errors gunicorn answers itself."""
    body = json.dumps({"error": {"code": HTTP_CODES.get(status, "http_error"),
                                 "message": message or reason}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on ``app``."""

    def on_liveness_error(exc: LivenessError) -> Response:
        response = error_response(exc.http_status, exc.code, exc.message)
        response.headers.update(getattr(exc, "headers", {}))
        if "Retry-After" in response.headers:
            g.retry_after = response.headers["Retry-After"]
        return response

    def on_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 429:
            message = f"rate limit exceeded ({exc.description}); retry after the Retry-After delay"
        response = error_response(status, code, message)
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    def on_outage(exc: Exception) -> Response:
        refused = refusal_code(exc)
        log.warning("job store or broker %s: %s: %s",
                    f"refuses writes ({refused})" if refused else "unavailable",
                    exc.__class__.__name__, exc)
        what = "refuses writes" if refused else "is unreachable"
        response = error_response(503, "unavailable",
                                  f"the job store or queue {what}; retry later")
        response.headers["Retry-After"] = g.retry_after = "2"
        return response

    def on_bug(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; it has been logged")

    @app.before_request
    def _limits() -> None:
        environ = request.environ
        uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        check_request_limits(uri, list(request.headers.items()))

    app.register_error_handler(LivenessError, on_liveness_error)
    app.register_error_handler(HTTPException, on_http_error)
    for exc_type in OUTAGE_ERRORS:
        app.register_error_handler(exc_type, on_outage)
    app.register_error_handler(Exception, on_bug)
