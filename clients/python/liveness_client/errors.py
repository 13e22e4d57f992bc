"""Errors the client raises."""

from __future__ import annotations


class LivenessError(Exception):
    """The service answered with an error: ``status`` (HTTP), ``code`` and ``message``
    from its JSON body (``{"error": {"code", "message"}}``), ``retry_after`` seconds
    when it said when to come back."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


class JobTimeoutError(TimeoutError):
    """A job or batch did not finish within the time the caller gave it; ``last`` is
    what the service said last (a ``Job`` or ``Batch``)."""

    def __init__(self, what: str, last: object) -> None:
        super().__init__(what)
        self.last = last


class WebhookVerificationError(ValueError):
    """A webhook's signature, timestamp or headers do not check out."""
