"""API-key authentication: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Only SHA-256 hashes of keys are configured (``LIVENESS_API_KEY_HASHES="id:hex,…"``), so
a leaked configuration does not leak keys. A key is random with ≥ 256 bits (see
``liveness apikey``), so an unsalted fast hash is enough: there is nothing to guess.
The key's id is the *owner* of every job and batch it creates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask import g, request

from gateway.errors import ApiError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="liveness"'}


def hash_key(key: str) -> str:
    """The configured form of a key: lower-case hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(key_id: str) -> tuple[str, str]:
    """A fresh random key and its ``id:sha256hex`` configuration line."""
    key = "lk_" + secrets.token_urlsafe(32)
    return key, f"{key_id}:{hash_key(key)}"


def parse_key_hashes(spec: str) -> dict[str, str]:
    """``"id1:hex1,id2:hex2"`` → ``{hex: id}``; malformed entries raise ``ValueError``."""
    table: dict[str, str] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key_id, sep, digest = entry.partition(":")
        key_id, digest = key_id.strip(), digest.strip().lower()
        if not sep or not key_id or not _HEX64.match(digest):
            raise ValueError(
                f"bad LIVENESS_API_KEY_HASHES entry {entry[:20]!r}…: expected id:<64 hex digits>"
            )
        table[digest] = key_id
    return table


def presented_key() -> str | None:
    """The key the request carries, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


class KeyRing:
    """Resolves presented keys to owner ids."""

    def __init__(self, spec: str) -> None:
        self._by_hash = parse_key_hashes(spec)

    def __len__(self) -> int:
        return len(self._by_hash)

    def owner_of(self, key: str | None) -> str | None:
        """The key's id, or ``None`` for no or an unknown key (constant-time compare)."""
        if not key:
            return None
        digest = hash_key(key)
        found = None
        for known, key_id in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                found = key_id
        return found

    def rate_limit_key(self) -> str:
        """Rate-limit bucket of this request: the key id, or the client address."""
        owner = self.owner_of(presented_key())
        return f"key:{owner}" if owner else f"addr:{request.remote_addr or 'unknown'}"

    def require_owner(self) -> str:
        """The authenticated owner (also kept in ``g.owner``); 401 otherwise."""
        key = presented_key()
        if key is None:
            raise ApiError(401, "unauthorized",
                           "send an API key: 'Authorization: Bearer <key>' or 'X-API-Key'",
                           headers=_CHALLENGE)
        owner = self.owner_of(key)
        if owner is None:
            raise ApiError(401, "unauthorized", "the API key is not valid", headers=_CHALLENGE)
        g.owner = owner
        return owner
