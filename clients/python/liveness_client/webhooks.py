"""Verifying the service's webhooks: both signatures it sends.

* ``X-Liveness-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>`` with
  ``X-Liveness-Timestamp``, keyed with the tenant's webhook secret (64 hex digits, as
  ``liveness apikey`` prints it, used as UTF-8 text);
* the Standard Webhooks headers (standardwebhooks.com, v1): ``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of
  "<id>.<timestamp>." + body>`` keyed with the secret's bytes (``whsec_<base64>`` or the
  same 64 hex digits).

:func:`verify_webhook` checks the Standard Webhooks signature when its headers are
there, else the other one, refuses timestamps outside ``tolerance_s``, compares in
constant time, and returns the parsed job.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from liveness_client.errors import WebhookVerificationError
from liveness_client.models import Job

WHSEC = "whsec_"


def _key_bytes(secret: str) -> bytes:
    if secret.startswith(WHSEC):
        return base64.b64decode(secret[len(WHSEC):])
    try:
        return bytes.fromhex(secret)
    except ValueError as exc:
        raise WebhookVerificationError("the secret is neither whsec_… nor hex") from exc


def _hex_secret(secret: str) -> str:
    return _key_bytes(secret).hex() if secret.startswith(WHSEC) else secret


def _fresh(timestamp: str | None, tolerance_s: float, now: float | None) -> int:
    try:
        ts = int(timestamp or "")
    except ValueError as exc:
        raise WebhookVerificationError("missing or malformed timestamp") from exc
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        raise WebhookVerificationError("timestamp outside the tolerance (a replay?)")
    return ts


def verify_webhook(body: bytes, headers: Mapping[str, str], secret: str, *,
                   tolerance_s: float = 300.0, now: float | None = None) -> Job:
    """The webhook's :class:`~liveness_client.models.Job` when ``body`` (the raw bytes
    received) is signed with ``secret`` and fresh; :class:`WebhookVerificationError`
    otherwise. ``headers`` any mapping (looked up case-insensitively)."""
    h = {k.lower(): v for k, v in headers.items()}
    if "webhook-signature" in h:
        ts = _fresh(h.get("webhook-timestamp"), tolerance_s, now)
        message = f"{h.get('webhook-id', '')}.{ts}.".encode() + body
        expected = base64.b64encode(hmac.new(_key_bytes(secret), message,
                                             hashlib.sha256).digest()).decode()
        offered = [s.split(",", 1)[1] for s in h["webhook-signature"].split()
                   if s.startswith("v1,")]
        if not any(hmac.compare_digest(expected, s) for s in offered):
            raise WebhookVerificationError("webhook-signature does not match")
    elif "x-liveness-signature" in h:
        ts = _fresh(h.get("x-liveness-timestamp"), tolerance_s, now)
        digest = hmac.new(_hex_secret(secret).encode(), f"{ts}.".encode() + body,
                          hashlib.sha256).hexdigest()
        if not hmac.compare_digest("sha256=" + digest, h["x-liveness-signature"]):
            raise WebhookVerificationError("X-Liveness-Signature does not match")
    else:
        raise WebhookVerificationError("no signature header")
    try:
        data: Any = json.loads(body)
        return Job.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError(f"the body is not a job: {exc}") from exc
