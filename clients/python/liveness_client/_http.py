"""What the sync and asyncio clients share: request building, retries, answers.

Retries (:class:`RetryPolicy`): a 429 or 503 answer, or a connection that failed before
an answer, is retried with exponential backoff and full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter", 2015), waiting at least what ``Retry-After`` says.
Every submission carries an ``Idempotency-Key`` generated once per call and reused by
its retries, so a retried submission never makes two jobs.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import httpx

from liveness_client.errors import LivenessError

#: What an image argument may be: a path, the file's bytes, or an open binary file.
ImageInput = Union[str, os.PathLike, bytes, IO[bytes]]  # noqa: UP007 (3.10 runtime alias)
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1: no retry); waits ``base_s`` × 2^n with full jitter, capped
    at ``max_s``, never less than the answer's ``Retry-After``."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0)."""
        cap = min(self.max_s, self.base_s * (2 ** attempt))
        jitter = (rng or random).uniform(0, cap)
        return max(jitter, retry_after or 0.0)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delta form; dates are not sent by the service)."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_of(response: httpx.Response) -> LivenessError:
    """The service's error answer as a :class:`LivenessError`."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200] or response.reason_phrase
    return LivenessError(response.status_code, code, message, retry_after(response))


def image_part(image: ImageInput, name: str | None = None) -> tuple[str, bytes]:
    """(file name, bytes) of an image argument."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        return name or path.name, path.read_bytes()
    if isinstance(image, (bytes, bytearray)):
        return name or "image", bytes(image)
    data = image.read()
    return name or Path(getattr(image, "name", "image")).name, data


def new_idempotency_key() -> str:
    return f"py-{uuid.uuid4().hex}"


def submit_request(image: ImageInput, tests: Iterable[str] | None, callback_url: str | None,
                   profile: str | None, explain: bool, idempotency_key: str | None,
                   challenge: str | None = None, frames: Sequence[ImageInput] = ()
                   ) -> dict[str, Any]:
    """The keyword arguments of ``POST /v1/jobs`` (multipart): the image, the options,
    and a challenge's id with its frames (one per colour, in order)."""
    name, data = image_part(image)
    form = _options(tests, callback_url, profile)
    if explain:
        form["explain"] = "true"
    if bool(challenge) != bool(frames):
        raise ValueError("a challenge is answered with its id and its frames, both or neither")
    files = [("image", (name, data, "application/octet-stream"))]
    if challenge:
        form["challenge"] = challenge
        files += [("frames", (*image_part(frame, f"frame{n}.jpg"), "image/jpeg"))
                  for n, frame in enumerate(frames)]
    return {"files": files, "data": form,
            "headers": {"Idempotency-Key": idempotency_key or new_idempotency_key()}}


def batch_request(images: Iterable[ImageInput | tuple[str, ImageInput]],
                  tests: Iterable[str] | None, callback_url: str | None,
                  profile: str | None) -> dict[str, Any]:
    """The keyword arguments of ``POST /v1/batches`` (multipart ``images``)."""
    files = []
    for item in images:
        name, image = item if isinstance(item, tuple) else (None, item)
        file_name, data = image_part(image, name)
        files.append(("images", (file_name, data, "application/octet-stream")))
    if not files:
        raise ValueError("a batch needs at least one image")
    return {"files": files, "data": _options(tests, callback_url, profile)}


def _options(tests: Iterable[str] | None, callback_url: str | None,
             profile: str | None) -> dict[str, str]:
    """The form fields a job and a batch share (only those given)."""
    form: dict[str, str] = {}
    if tests is not None:
        form["tests"] = ",".join(tests)
    if callback_url:
        form["callback_url"] = callback_url
    if profile:
        form["profile"] = profile
    return form


def auth_headers(api_key: str) -> Mapping[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "face-liveness-client/0.1"}
