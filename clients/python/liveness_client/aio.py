"""The asyncio client (``httpx.AsyncClient``): :class:`~liveness_client.client.LivenessClient`'s
methods as coroutines, with the same arguments, retries and results."""

from __future__ import annotations

import asyncio
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


class AsyncLivenessClient:
    """asyncio twin of :class:`liveness_client.LivenessClient` (``async with`` or
    ``await client.aclose()``)."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"),
                                       headers=auth_headers(api_key), timeout=timeout,
                                       transport=transport)

    async def __aenter__(self) -> AsyncLivenessClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, *, retry_connect: bool = True,
                    expect: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError:
                if last or not retry_connect:
                    raise
                await asyncio.sleep(self.retry.delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                await asyncio.sleep(self.retry.delay(attempt, retry_after(response)))
                continue
            if response.status_code not in expect:
                raise error_of(response)
            return response
        raise AssertionError("unreachable")

    async def challenge(self) -> Challenge:
        response = await self._send("POST", "/v1/challenges", expect=(201,))
        return Challenge.from_dict(response.json())

    async def submit(self, image: ImageInput, *, tests: Iterable[str] | None = None,
                     callback_url: str | None = None, profile: str | None = None,
                     explain: bool = False, idempotency_key: str | None = None,
                     challenge: str | None = None, frames: Sequence[ImageInput] = ()) -> Job:
        kwargs = submit_request(image, tests, callback_url, profile, explain, idempotency_key,
                                challenge, frames)
        response = await self._send("POST", "/v1/jobs", expect=(202,), **kwargs)
        return Job.from_dict(response.json())

    async def get(self, job_id: str, *, wait: float | None = None) -> Job:
        params = {"wait": f"{wait:g}"} if wait else None
        response = await self._send("GET", f"/v1/jobs/{job_id}", params=params,
                                    timeout=self.timeout + (wait or 0))
        return Job.from_dict(response.json())

    async def wait(self, job_id: str, *, timeout: float = 120.0, poll_s: float = 25.0) -> Job:
        deadline = time.monotonic() + timeout
        job = await self.get(job_id)
        while not job.finished:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeoutError(f"job {job_id} still {job.status} after {timeout:g} s", job)
            job = await self.get(job_id, wait=max(1.0, min(poll_s, left)))
        return job

    async def score(self, image: ImageInput, *, timeout: float = 120.0,
                    **options: Any) -> Job:
        return await self.wait((await self.submit(image, **options)).id, timeout=timeout)

    async def delete(self, job_id: str) -> None:
        await self._send("DELETE", f"/v1/jobs/{job_id}", expect=(204,))

    async def explanation(self, job_id: str, test: str) -> bytes:
        return (await self._send("GET", f"/v1/jobs/{job_id}/explanations/{test}")).content

    async def submit_batch(self, images: Iterable[ImageInput | tuple[str, ImageInput]], *,
                           tests: Iterable[str] | None = None,
                           callback_url: str | None = None,
                           profile: str | None = None) -> Batch:
        kwargs = batch_request(images, tests, callback_url, profile)
        response = await self._send("POST", "/v1/batches", retry_connect=False,
                                    expect=(202,), **kwargs)
        return Batch.from_dict(response.json())

    async def batch_results(self, batch_id: str) -> Batch:
        return Batch.from_dict((await self._send("GET", f"/v1/batches/{batch_id}")).json())

    async def wait_batch(self, batch_id: str, *, timeout: float = 600.0,
                         poll_s: float = 2.0) -> Batch:
        deadline = time.monotonic() + timeout
        while True:
            batch = await self.batch_results(batch_id)
            if batch.finished:
                return batch
            if time.monotonic() >= deadline:
                raise JobTimeoutError(f"batch {batch_id} unfinished after {timeout:g} s", batch)
            await asyncio.sleep(poll_s)

    async def delete_batch(self, batch_id: str) -> None:
        await self._send("DELETE", f"/v1/batches/{batch_id}", expect=(204,))
