"""Images sealed at rest (common.sealing): AES-256-GCM, bound to their Redis key, keys
from LIVENESS_IMAGE_KEYS only, rotation."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from common.config import Settings, SettingsError
from common.sealing import (
    MAGIC,
    ImageSealer,
    SealingKeyError,
    UnsealError,
    new_key,
    parse_keys,
)

IMAGE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # a JPEG-like payload


def test_a_sealed_image_holds_none_of_its_bytes_and_opens_only_for_its_key() -> None:
    sealer = ImageSealer.from_setting(new_key())
    sealed = sealer.seal(IMAGE, "liveness:image:a")
    assert sealed.startswith(MAGIC) and len(sealed) == len(IMAGE) + 4 + 4 + 12 + 16
    for start in range(0, len(IMAGE) - 16, 97):  # no 16-byte window of the image survives
        assert IMAGE[start:start + 16] not in sealed
    assert sealer.seal(IMAGE, "liveness:image:a") != sealed  # a fresh nonce every time
    assert sealer.open(sealed, "liveness:image:a") == IMAGE
    with pytest.raises(UnsealError, match="another job"):
        sealer.open(sealed, "liveness:image:b")  # moved to another job's key
    tampered = bytearray(sealed)
    tampered[-20] ^= 1
    with pytest.raises(UnsealError, match="integrity"):
        sealer.open(bytes(tampered), "liveness:image:a")
    with pytest.raises(UnsealError, match="not sealed"):
        sealer.open(IMAGE, "liveness:image:a")
    with pytest.raises(UnsealError, match="not in LIVENESS_IMAGE_KEYS"):
        ImageSealer.from_setting(new_key()).open(sealed, "liveness:image:a")


def test_keys_rotate_new_first_old_still_opens() -> None:
    old, new = new_key(), new_key()
    by_old = ImageSealer.from_setting(old).seal(IMAGE, "k")
    rotated = ImageSealer.from_setting(f"{new},{old}")
    assert rotated.open(by_old, "k") == IMAGE
    by_new = rotated.seal(IMAGE, "k")
    assert ImageSealer.from_setting(new).open(by_new, "k") == IMAGE
    with pytest.raises(UnsealError):
        ImageSealer.from_setting(old).open(by_new, "k")


def test_missing_or_malformed_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(SealingKeyError, match="LIVENESS_IMAGE_KEYS is not set"):
        parse_keys("")
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(SealingKeyError, match="entry 2 is not the base64 of 32 bytes") as info:
        parse_keys(f"{new_key()},{short}")
    assert short not in str(info.value)
    assert len(parse_keys(base64.b64encode(b"k" * 32).decode())) == 1  # standard base64 too
    assert isinstance(SealingKeyError("x"), SettingsError)


def test_settings_refuse_a_malformed_key_and_the_store_refuses_none(monkeypatch) -> None:
    monkeypatch.setenv("LIVENESS_IMAGE_KEYS", "not-a-key")
    with pytest.raises(SettingsError, match="LIVENESS_IMAGE_KEYS"):
        Settings.from_env()
    monkeypatch.setenv("LIVENESS_IMAGE_KEYS", new_key())
    assert Settings.from_env().image_keys
    import redis

    from common.jobstore import JobStore

    client = redis.Redis.from_url("redis://127.0.0.1:1/0")  # never contacted
    with pytest.raises(SettingsError, match="LIVENESS_IMAGE_KEYS is not set"):
        JobStore(client, dataclasses.replace(Settings(), image_keys=""))
