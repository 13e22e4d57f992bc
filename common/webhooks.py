"""Signed webhook deliveries: the job result POSTed to the client's ``callback_url``.

Signature scheme (as Stripe and GitHub do it): the header ``X-Liveness-Timestamp``
carries the Unix time of sending, and ``X-Liveness-Signature`` is
``sha256=<hex HMAC-SHA256>`` of ``b"<timestamp>." + raw_body`` under the shared secret.
Signing the timestamp with the body lets receivers refuse replays older than a
tolerance; comparing in constant time (:func:`hmac.compare_digest`) avoids timing leaks.

Where a webhook may go is decided by :mod:`common.egress` (no loopback, private,
link-local … addresses unless allow-listed), at submission and at every delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import time
from collections.abc import Sequence

from common.egress import IPNetwork, Resolver, check_callback_url, system_resolver

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


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a checked address; the URL's host name is still sent as ``Host``."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, verifying the certificate of the URL's host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def deliver(url: str, body: bytes, secret: str, timeout_s: float,
            allowlist: Sequence[IPNetwork] = (), resolver: Resolver = system_resolver) -> int:
    """POST ``body`` (JSON) to ``url`` signed now; the HTTP status.

    The URL is resolved and checked first (:func:`common.egress.check_callback_url`):
    a refused target raises :class:`~common.egress.CallbackRefusedError` before any
    connection is made; the POST then goes to the first checked address. A network
    error or a non-2xx answer raises :class:`WebhookError` (the caller retries).
    Redirects are not followed.
    """
    target = check_callback_url(url, allowlist, resolver)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "face-liveness-webhook/1",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(body, secret, timestamp),
    }
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target.host, target.addresses[0], target.port, timeout_s)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        raise WebhookError(f"{target.host}:{target.port} unreachable: {exc}") from exc
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise WebhookError(f"{target.host}:{target.port} answered HTTP {status}")
    return int(status)
