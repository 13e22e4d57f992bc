"""Signed webhook deliveries: the job result POSTed to the client's ``callback_url``.

Signature scheme (as Stripe and GitHub do it): the header ``X-Liveness-Timestamp``
carries the Unix time of sending, and ``X-Liveness-Signature`` is
``sha256=<hex HMAC-SHA256>`` of ``b"<timestamp>." + raw_body`` under the shared secret.
Signing the timestamp with the body lets receivers refuse replays older than a
tolerance; comparing in constant time (:func:`hmac.compare_digest`) avoids timing leaks.

Every delivery also carries the **Standard Webhooks** headers (standardwebhooks.com,
v1): ``webhook-id`` (the message id, the same on every retry of one job's webhook, so a
receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` = ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>." + body>`` under
the tenant secret's 32 bytes, which Standard Webhooks libraries take as
``whsec_<base64 of those bytes>`` (:func:`standard_secret`), so receivers can use an
existing verification library.

Each tenant (API-key id) has its own signing secret, derived from the master secret
``LIVENESS_WEBHOOK_SECRET`` (:func:`tenant_secret`), so one tenant's secret lets it verify
its own webhooks but neither forge another tenant's nor recover the master secret. The
gateway and the worker pools refuse to start without a usable master secret
(:func:`check_master_secret`).

Where a webhook may go is decided by :mod:`common.egress` (no loopback, private,
link-local … addresses unless allow-listed), at submission and at every delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import ssl
import time
from collections.abc import Sequence

from common.config import SettingsError
from common.egress import IPNetwork, Resolver, check_callback_url, system_resolver

SIGNATURE_HEADER = "X-Liveness-Signature"
TIMESTAMP_HEADER = "X-Liveness-Timestamp"
#: Standard Webhooks' headers (module docstring).
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STANDARD_SECRET_PREFIX = "whsec_"
_PREFIX = "sha256="

#: The variable holding the master secret every tenant's webhook secret is derived from.
MASTER_SECRET_VARIABLE = "LIVENESS_WEBHOOK_SECRET"
#: Shortest master secret accepted, in characters (``secrets.token_urlsafe(32)`` gives 43:
#: 256 random bits).
MIN_MASTER_SECRET_CHARS = 32
#: Placeholders shipped in examples over time; refused whatever their length.
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "replace-me",
                                 "replace-with-a-long-random-secret", "secret"})
#: Domain-separation label of the derivation (a new version gets a new label).
_DERIVATION_LABEL = "liveness-webhook-v1:"
_HOW_TO_MAKE = ("set it to a random string of at least "
                f"{MIN_MASTER_SECRET_CHARS} characters, e.g. the output of "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")


def check_master_secret(secret: str) -> None:
    """Refuse a master secret anyone could guess: empty, a placeholder or too short.

    Raises :class:`~common.config.SettingsError` naming ``LIVENESS_WEBHOOK_SECRET`` and
    how to make one. Called when the gateway and the worker pools start.
    """
    if not secret:
        problem = "is not set"
    elif secret.strip().lower() in PLACEHOLDER_SECRETS:
        problem = f"is the placeholder {secret.strip()!r}"
    elif len(secret) < MIN_MASTER_SECRET_CHARS:
        problem = f"has {len(secret)} characters, fewer than {MIN_MASTER_SECRET_CHARS}"
    else:
        return
    raise SettingsError(f"{MASTER_SECRET_VARIABLE} {problem}: every tenant's webhook "
                        f"signatures are derived from it; {_HOW_TO_MAKE}")


def tenant_secret(master_secret: str, key_id: str) -> str:
    """The webhook signing secret of the tenant (API-key id) ``key_id``: 64 hex digits.

    ``HMAC-SHA256(master_secret, "liveness-webhook-v1:" + key_id)``, HMAC used as a
    pseudo-random function to derive one key per context (NIST SP 800-108r1, KDF with a
    PRF; RFC 2104 for HMAC): as long as HMAC-SHA256 is a PRF, one tenant's secret says
    nothing about the master secret or any other tenant's. Both strings are UTF-8
    encoded. ``liveness apikey ID`` prints it; the fusion pool signs with it.
    """
    label = (_DERIVATION_LABEL + key_id).encode("utf-8")
    return hmac.new(master_secret.encode("utf-8"), label, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | str) -> str:
    """The ``X-Liveness-Signature`` value for ``body`` sent at ``timestamp``."""
    message = f"{int(timestamp)}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def standard_secret(secret: str) -> str:
    """The tenant secret (64 hex digits, :func:`tenant_secret`) as Standard Webhooks
    libraries take it: ``whsec_`` + base64 of its 32 bytes. ``ValueError`` for a secret
    that is not hex."""
    return STANDARD_SECRET_PREFIX + base64.b64encode(bytes.fromhex(secret)).decode()


def standard_sign(body: bytes, secret: str, message_id: str, timestamp: int | str) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>`` of
    ``"<id>.<timestamp>." + body`` keyed with the secret's bytes; ``secret`` is the hex
    tenant secret or its ``whsec_`` form."""
    key = (base64.b64decode(secret[len(STANDARD_SECRET_PREFIX):])
           if secret.startswith(STANDARD_SECRET_PREFIX) else bytes.fromhex(secret))
    message = f"{message_id}.{int(timestamp)}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


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
            allowlist: Sequence[IPNetwork] = (), resolver: Resolver = system_resolver,
            message_id: str | None = None) -> int:
    """POST ``body`` (JSON) to ``url`` signed now, both ways (module docstring); the
    HTTP status. ``message_id`` is the ``webhook-id`` (default: a hash of the body);
    the Standard Webhooks signature needs ``secret`` in hex (a tenant secret) and is
    left out otherwise.

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
    message_id = message_id or "msg_" + hashlib.sha256(body).hexdigest()[:32]
    try:
        standard = standard_sign(body, secret, message_id, timestamp)
    except ValueError:  # not a hex tenant secret: the X-Liveness signature only
        standard = None
    if standard is not None:
        headers.update({STANDARD_ID_HEADER: message_id,
                        STANDARD_TIMESTAMP_HEADER: str(timestamp),
                        STANDARD_SIGNATURE_HEADER: standard})
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
