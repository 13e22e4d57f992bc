"""Every error leaves the gateway as ``{"error": {"code", "message"}}`` with a 4xx/5xx.

Core :class:`~common.errors.LivenessError` s carry their own ``http_status``; werkzeug's
HTTP errors (404, 405, 413, 429 …) are re-rendered as JSON keeping their headers
(``Allow``, ``Retry-After``); a Redis or broker outage is a quick 503 ``unavailable``;
anything else is a bug: logged with its traceback, answered 500 ``internal_error``.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from common.errors import LivenessError

log = logging.getLogger(__name__)

#: Machine-readable codes for werkzeug's HTTP errors.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(LivenessError):
    """An error of the HTTP layer itself (bad JSON, missing field, unknown id …)."""

    def __init__(self, http_status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.headers = headers or {}


def _outage_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the job store or the broker cannot be reached"."""
    # InvalidResponse: something that is not Redis answers on the configured address.
    types: list[type[BaseException]] = [redis.exceptions.ConnectionError,
                                        redis.exceptions.TimeoutError,
                                        redis.exceptions.InvalidResponse]
    try:  # the broker client (RabbitMQ or Redis through kombu)
        from kombu.exceptions import OperationalError

        types.append(OperationalError)
    except ImportError:  # pragma: no cover - kombu ships with celery
        pass
    return tuple(types)


OUTAGE_ERRORS = _outage_types()


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers on ``app``."""

    def on_liveness_error(exc: LivenessError) -> Response:
        response = error_response(exc.http_status, exc.code, exc.message)
        response.headers.update(getattr(exc, "headers", {}))
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
        log.warning("job store or broker unreachable: %s", exc.__class__.__name__)
        return error_response(503, "unavailable",
                              "the job store or queue is unreachable; retry later")

    def on_bug(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; it has been logged")

    app.register_error_handler(LivenessError, on_liveness_error)
    app.register_error_handler(HTTPException, on_http_error)
    for exc_type in OUTAGE_ERRORS:
        app.register_error_handler(exc_type, on_outage)
    app.register_error_handler(Exception, on_bug)
