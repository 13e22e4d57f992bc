"""The real service for end-to-end tests and ``bench/e2e.py``, with an HTTP client.

Processes are started and stopped by :mod:`cli.processes` (the same commands
``liveness serve`` runs); this module adds loopback HTTP helpers on top.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.processes import ServiceStack


class Stack(ServiceStack):
    """:class:`cli.processes.ServiceStack` plus an HTTP client for its gateway."""

    def __init__(self, redis_url: str, log_dir: Path, api_keys: dict[str, str] | None = None,
                 extra_env: dict[str, str] | None = None, gateway_workers: int = 2) -> None:
        super().__init__(redis_url, log_dir, api_keys or {"dev": uuid.uuid4().hex},
                         extra_env, gateway_workers)

    # --- HTTP client -------------------------------------------------------------
    def request(self, method: str, path: str, key: str | None = "dev", body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 30,
                ) -> tuple[int, dict[str, str], bytes]:
        return http(method, self.url + path, self.api_keys.get(key) if key else None, body,
                    headers, timeout)

    def submit(self, image: bytes, key: str = "dev", **options: Any) -> dict[str, Any]:
        status, _, body = self.request("POST", "/v1/jobs", key,
                                       {"image": base64.b64encode(image).decode(), **options})
        assert status == 202, (status, body)
        return json.loads(body)

    def _poll(self, path: str, key: str, finished: Callable[[dict[str, Any]], bool],
              timeout_s: float, pause_s: float = 0.0) -> tuple[bool, dict[str, Any]]:
        """GET ``path`` until ``finished(body)`` or ``timeout_s``; (finished, last body)."""
        deadline = time.monotonic() + timeout_s
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, _, raw = self.request("GET", path, key)
            assert status == 200, (status, raw)
            body = json.loads(raw)
            if finished(body):
                return True, body
            time.sleep(pause_s)
        return False, body

    def wait_job(self, job_id: str, key: str = "dev", timeout_s: float = 60) -> dict[str, Any]:
        """Long-poll until the job is done/failed (or fail after ``timeout_s``)."""
        done, job = self._poll(f"/v1/jobs/{job_id}?wait=5", key,
                               lambda j: j["status"] in ("done", "failed"), timeout_s)
        if not done:
            raise AssertionError(f"job {job_id} not finished after {timeout_s}s: {job}")
        return job

    def wait_batch(self, batch_id: str, key: str = "dev",
                   timeout_s: float = 120) -> dict[str, Any]:
        """Poll until every image of the batch finished; the batch (status may be running)."""
        return self._poll(f"/v1/batches/{batch_id}", key, lambda b: b["status"] == "done",
                          timeout_s, pause_s=0.3)[1]


def http(method: str, url: str, api_key: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None, timeout: float = 30,
         ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with urllib; ``body`` dict → JSON, bytes sent as they are."""
    headers = dict(headers or {})
    data = None
    if isinstance(body, dict):
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif body is not None:
        data = body
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def multipart(files: list[tuple[str, str, bytes]],
              fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """``(body, content_type)`` of a multipart/form-data upload: (field, filename, bytes)."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    for field, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
