"""Signed webhook deliveries: the job result POSTed to the client's ``callback_url``.

Signature scheme (as Stripe and GitHub do it): the header ``X-Liveness-Timestamp``
carries the Unix time of sending, and ``X-Liveness-Signature`` is
``sha256=<hex HMAC-SHA256>`` of ``b"<timestamp>." + raw_body`` under the shared secret.
Signing the timestamp with the body lets receivers refuse replays older than a
tolerance; comparing in constant time (:func:`hmac.compare_digest`) avoids timing leaks.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request

SIGNATURE_HEADER = "X-Liveness-Signature"
TIMESTAMP_HEADER = "X-Liveness-Timestamp"
_PREFIX = "sha256="


def sign(body: bytes, secret: str, timestamp: int | str) -> str:
    """The ``X-Liveness-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{int(timestamp)}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(
    body: bytes,
    secret: str,
    timestamp: int | str | None,
    signature: str | None,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` matches ``body`` and ``timestamp`` is within tolerance."""
    if not signature or timestamp is None:
        return False
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, secret, ts), signature)


class WebhookError(Exception):
    """A delivery failed (network error or non-2xx answer); the caller retries."""


def deliver(url: str, body: bytes, secret: str, timeout_s: float) -> int:
    """POST ``body`` (JSON) to ``url`` signed now; the HTTP status, or :class:`WebhookError`."""
    if not url.lower().startswith(("http://", "https://")):
        raise WebhookError(f"callback URLs must be http(s); got {url[:40]!r}")
    timestamp = int(time.time())
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "face-liveness-webhook/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(body, secret, timestamp),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"{url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise WebhookError(f"{url} unreachable: {exc}") from exc
