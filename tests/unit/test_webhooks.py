"""Webhook signatures: HMAC-SHA256 over timestamp and raw body, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac

from common.webhooks import sign, verify

BODY = b'{"id":"abc","status":"done"}'


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, "s3cret", 1700000000) == "sha256=" + expected
    assert sign(BODY, "s3cret", "1700000000") == sign(BODY, "s3cret", 1700000000)


def test_verify_accepts_only_the_signed_body_secret_and_fresh_timestamp() -> None:
    sig = sign(BODY, "s3cret", 1700000000)
    assert verify(BODY, "s3cret", "1700000000", sig, now=1700000010)
    assert not verify(BODY + b" ", "s3cret", "1700000000", sig, now=1700000010)
    assert not verify(BODY, "other", "1700000000", sig, now=1700000010)
    assert not verify(BODY, "s3cret", "1700000001", sig, now=1700000010)
    assert not verify(BODY, "s3cret", "1700000000", sig, now=1700000000 + 301)
    assert not verify(BODY, "s3cret", None, sig)
    assert not verify(BODY, "s3cret", "soon", sig)
    assert not verify(BODY, "s3cret", "1700000000", None, now=1700000010)
