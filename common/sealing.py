"""Images at rest: sealed with AES-256-GCM under a key that is not kept beside the data.

The job store keeps each uploaded image (and each explanation image, which shows the
face) in Redis until its job ends. With Redis persistence on, whatever Redis holds is
written to its append-only file; so the service stores only **sealed** bytes: AES-256-GCM
(NIST SP 800-38D, through the ``cryptography`` package's ``AESGCM``) with a random 96-bit
nonce per image and the Redis key name as associated data — a sealed image moved to
another job's key does not open. The keys come from ``LIVENESS_IMAGE_KEYS`` (the
environment, a secret store), never from the Redis data directory: a copy of that
directory, or of its disk, holds no image anyone can read.

Format of a sealed value::

    b"LVS1" | key id (4 bytes: SHA-256(key)[:4]) | nonce (12) | ciphertext ‖ tag (16)

``LIVENESS_IMAGE_KEYS`` is a comma-separated list of base64 (standard or URL-safe) keys
of 32 bytes (``liveness image-key`` prints a new one): the first seals, every one opens, so a
key is rotated by putting the new one first and dropping the old one once the images it
sealed are gone (uploaded images at most ``LIVENESS_IMAGE_TTL_S`` later, explanation
PNGs ``LIVENESS_RESULT_TTL_S``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.config import SettingsError
from common.errors import LivenessError

MAGIC = b"LVS1"
KEY_BYTES = 32
NONCE_BYTES = 12
_ID_BYTES = 4
_HEADER = len(MAGIC) + _ID_BYTES + NONCE_BYTES


class SealingKeyError(SettingsError):
    """``LIVENESS_IMAGE_KEYS`` is missing or malformed (the message says how to fix it)."""


class UnsealError(LivenessError):
    """A stored value that does not open with the configured keys: sealed under a key no
    longer configured, tampered with, or moved from another job's key."""

    code = "image_unreadable"
    #: What ``GET …/explanations/<test>`` answers for one: the stored image can no longer
    #: be read (its key was rotated away, or ``liveness serve`` restarted with a new one).
    http_status = 410


def new_key() -> str:
    """A fresh random key, URL-safe base64 (43 characters), for ``LIVENESS_IMAGE_KEYS``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def parse_keys(spec: str) -> list[bytes]:
    """``LIVENESS_IMAGE_KEYS`` → the keys (32 bytes each), the sealing one first.

    Raises :class:`SealingKeyError` when it is empty or an entry is not the base64 of
    32 bytes. The message never repeats a key.
    """
    keys = []
    for n, raw in enumerate((p.strip() for p in spec.split(",")), 1):
        if not raw:
            continue
        text = raw.replace("-", "+").replace("_", "/")
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise SealingKeyError(f"LIVENESS_IMAGE_KEYS: entry {n} is not the base64 of "
                                  f"{KEY_BYTES} bytes (make one with `liveness image-key`)")
        keys.append(key)
    if not keys:
        raise SealingKeyError(
            "LIVENESS_IMAGE_KEYS is not set: uploaded images are stored sealed (AES-256-GCM) "
            "under this key, which must not live on the Redis host's disk. Make one with "
            "`liveness image-key` and give the same value to the gateway and every worker pool "
            "(`liveness serve` makes one per run)")
    return keys


class ImageSealer:
    """Seals and opens stored images (module docstring). ``keys``: the sealing key first."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SealingKeyError("at least one key is needed")
        self._sealing_id = self._key_id(keys[0])
        self._ciphers = {self._key_id(k): AESGCM(bytes(k)) for k in reversed(keys)}

    @classmethod
    def from_setting(cls, spec: str) -> ImageSealer:
        """From ``LIVENESS_IMAGE_KEYS``; :class:`SealingKeyError` when unusable."""
        return cls(parse_keys(spec))

    @staticmethod
    def _key_id(key: bytes) -> bytes:
        return hashlib.sha256(key).digest()[:_ID_BYTES]

    def seal(self, data: bytes, context: str) -> bytes:
        """``data`` sealed for the Redis key ``context`` (associated data)."""
        nonce = os.urandom(NONCE_BYTES)
        cipher = self._ciphers[self._sealing_id]
        return (MAGIC + self._sealing_id + nonce
                + cipher.encrypt(nonce, bytes(data), context.encode()))

    def open(self, blob: bytes, context: str) -> bytes:
        """The bytes sealed by :meth:`seal` for ``context``; :class:`UnsealError` else."""
        if len(blob) < _HEADER + 16 or not blob.startswith(MAGIC):
            raise UnsealError("a stored image is not sealed (written by an older version "
                              "or by something else); it cannot be used")
        key_id = blob[len(MAGIC):len(MAGIC) + _ID_BYTES]
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnsealError("a stored image was sealed under a key that is not in "
                              "LIVENESS_IMAGE_KEYS (rotated away, or another deployment's)")
        nonce = blob[len(MAGIC) + _ID_BYTES:_HEADER]
        try:
            return cipher.decrypt(nonce, blob[_HEADER:], context.encode())
        except InvalidTag:
            raise UnsealError("a stored image failed its integrity check (tampered with, "
                              "or moved from another job)") from None
