"""The synchronous client (``httpx.Client``); :mod:`liveness_client.aio` mirrors it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from liveness_client._http import (
    RETRY_STATUSES,
    ImageInput,
    RetryPolicy,
    auth_headers,
    batch_request,
    error_of,
    retry_after,
    submit_request,
)
from liveness_client.errors import JobTimeoutError
from liveness_client.models import Batch, Challenge, Job


class LivenessClient:
    """A client of one liveness service.

    ``base_url`` e.g. ``http://127.0.0.1:8000``; ``api_key`` the key ``liveness apikey``
    made. ``timeout`` (seconds) bounds each HTTP request (a long-poll adds its wait);
    ``retry`` says how 429/503 answers and failed connections are retried. Errors the
    service answers raise :class:`~liveness_client.errors.LivenessError`; ``transport``
    is passed to ``httpx.Client`` (tests use it). Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=auth_headers(api_key),
                                  timeout=timeout, transport=transport)

    def __enter__(self) -> LivenessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -------------------------------------------------------------------
    def _send(self, method: str, url: str, *, retry_connect: bool = True,
              expect: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError:
                if last or not retry_connect:
                    raise
                time.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self.retry.delay(attempt, retry_after(response)))
                continue
            if response.status_code not in expect:
                raise error_of(response)
            return response
        raise AssertionError("unreachable")

    # --- jobs -----------------------------------------------------------------------
    def challenge(self) -> Challenge:
        """A new colour-flash :class:`Challenge` (answer it with :meth:`submit`'s
        ``challenge`` and ``frames``)."""
        return Challenge.from_dict(self._send("POST", "/v1/challenges", expect=(201,)).json())

    def submit(self, image: ImageInput, *, tests: Iterable[str] | None = None,
               callback_url: str | None = None, profile: str | None = None,
               explain: bool = False, idempotency_key: str | None = None,
               challenge: str | None = None, frames: Sequence[ImageInput] = ()) -> Job:
        """Submit one image (a path, bytes or a binary file); the queued :class:`Job`.
        ``tests=None`` runs the service's default tests. One ``Idempotency-Key`` per call
        (``idempotency_key`` or a new one) makes retries safe. ``challenge`` (an id from
        :meth:`challenge`) and ``frames`` (one per colour, in order) answer a challenge."""
        kwargs = submit_request(image, tests, callback_url, profile, explain, idempotency_key,
                                challenge, frames)
        return Job.from_dict(self._send("POST", "/v1/jobs", expect=(202,), **kwargs).json())

    def get(self, job_id: str, *, wait: float | None = None) -> Job:
        """The job now, or after up to ``wait`` seconds of long-polling for its end."""
        params = {"wait": f"{wait:g}"} if wait else None
        timeout = self.timeout + (wait or 0)
        return Job.from_dict(self._send("GET", f"/v1/jobs/{job_id}", params=params,
                                        timeout=timeout).json())

    def wait(self, job_id: str, *, timeout: float = 120.0, poll_s: float = 25.0) -> Job:
        """Long-poll until the job is done, failed or expired; :class:`JobTimeoutError` after
        ``timeout`` seconds (the job keeps running: call again)."""
        deadline = time.monotonic() + timeout
        job = self.get(job_id)
        while not job.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeoutError(f"job {job_id} still {job.status} after {timeout:g} s", job)
            job = self.get(job_id, wait=max(1.0, min(poll_s, left)))
        return job

    def score(self, image: ImageInput, *, timeout: float = 120.0, **options: Any) -> Job:
        """:meth:`submit` then :meth:`wait`: the finished job."""
        return self.wait(self.submit(image, **options).id, timeout=timeout)

    def delete(self, job_id: str) -> None:
        """Erase the job and everything about it now."""
        self._send("DELETE", f"/v1/jobs/{job_id}", expect=(204,))

    def explanation(self, job_id: str, test: str) -> bytes:
        """The PNG a test stored for a job submitted with ``explain=True``."""
        return self._send("GET", f"/v1/jobs/{job_id}/explanations/{test}").content

    # --- batches --------------------------------------------------------------------
    def submit_batch(self, images: Iterable[ImageInput | tuple[str, ImageInput]], *,
                     tests: Iterable[str] | None = None, callback_url: str | None = None,
                     profile: str | None = None) -> Batch:
        """Submit many images (paths, bytes, or ``(name, image)`` pairs) as one batch.
        Retried only on 429/503 answers (which leave nothing behind), never after a lost
        connection: a batch has no idempotency key."""
        kwargs = batch_request(images, tests, callback_url, profile)
        response = self._send("POST", "/v1/batches", retry_connect=False, expect=(202,),
                              **kwargs)
        return Batch.from_dict(response.json())

    def batch_results(self, batch_id: str) -> Batch:
        """Progress counts and per-image results."""
        return Batch.from_dict(self._send("GET", f"/v1/batches/{batch_id}").json())

    def batch_csv(self, batch_id: str) -> str:
        """The batch's results as CSV (the columns of ``liveness score --out``)."""
        return self._send("GET", f"/v1/batches/{batch_id}",
                          params={"format": "csv"}).text

    def wait_batch(self, batch_id: str, *, timeout: float = 600.0,
                   poll_s: float = 2.0) -> Batch:
        """Poll until every image of the batch is finished; :class:`JobTimeoutError` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            batch = self.batch_results(batch_id)
            if batch.finished:
                return batch
            if time.monotonic() >= deadline:
                raise JobTimeoutError(f"batch {batch_id} unfinished after {timeout:g} s", batch)
            time.sleep(poll_s)

    def delete_batch(self, batch_id: str) -> None:
        self._send("DELETE", f"/v1/batches/{batch_id}", expect=(204,))

    # --- service --------------------------------------------------------------------
    def profiles(self) -> dict[str, Any]:
        """The calibration profiles jobs may name, and this key's default."""
        return dict(self._send("GET", "/v1/profiles").json())

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (every required pool consumes its queue)."""
        return self._http.get("/readyz").status_code == 200
