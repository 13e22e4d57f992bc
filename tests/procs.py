"""Start and stop the real service's processes for end-to-end tests and ``bench/e2e.py``.

The same commands ``liveness serve`` runs (gunicorn with the gateway's config, one
``celery worker -Q <pool>`` per pool), each in its own process group, with its output
kept in a log file under ``log_dir`` so that a failing test can show what happened.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from common.cli.serve import (
    ManagedProcess,
    celery_worker_argv,
    gateway_argv,
    key_hash_entry,
    wait_http_ok,
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LogSink:
    """Keeps a child's output lines (in memory and in a file) and lets a test wait for one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._file = path.open("a", buffering=1)

    def __call__(self, line: str) -> None:
        self._file.write(line + "\n")
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout_s: float, start: int = 0) -> bool:
        """True once a line (at index >= ``start``) contains ``text``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not any(text in line for line in self.lines[start:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])


class Stack:
    """Gateway + one worker per pool against a given Redis URL (all on 127.0.0.1)."""

    def __init__(self, redis_url: str, log_dir: Path, api_keys: dict[str, str] | None = None,
                 extra_env: dict[str, str] | None = None, gateway_workers: int = 2) -> None:
        self.redis_url = redis_url
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_keys = api_keys or {"dev": uuid.uuid4().hex}
        self.env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            LIVENESS_REDIS_URL=redis_url,
            LIVENESS_BROKER_URL=redis_url,
            LIVENESS_RESULT_BACKEND=redis_url,
            LIVENESS_API_KEY_HASHES=",".join(
                key_hash_entry(i, k) for i, k in self.api_keys.items()),
            LIVENESS_RATE_LIMIT="100000/minute",
            **(extra_env or {}),
        )
        self.gateway_workers = gateway_workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gateway: ManagedProcess | None = None
        self.workers: dict[str, list[ManagedProcess]] = {}
        self.sinks: dict[str, LogSink] = {}

    def _sink(self, name: str) -> LogSink:
        if name not in self.sinks:
            self.sinks[name] = LogSink(self.log_dir / f"{name}.log")
        return self.sinks[name]

    def start_gateway(self, timeout_s: float = 60) -> None:
        self.gateway = ManagedProcess(
            "gateway", gateway_argv("127.0.0.1", self.port, self.gateway_workers), self.env,
            sink=self._sink("gateway"))
        if not wait_http_ok(f"{self.url}/healthz", timeout_s, self.gateway.alive):
            raise RuntimeError(f"gateway did not come up:\n{self._sink('gateway').tail()}")

    def start_workers(self, pools: list[str], concurrency: int = 1,
                      timeout_s: float = 120) -> None:
        """Start one more worker per pool (in parallel); wait until Celery says ready."""
        started = []
        for pool in pools:
            sink = self._sink(pool)
            started.append((pool, sink, len(sink.lines)))
            self.workers.setdefault(pool, []).append(ManagedProcess(
                pool, celery_worker_argv(pool, concurrency), self.env, sink=sink))
        for pool, sink, start in started:
            if not sink.wait_for(" ready.", timeout_s, start):
                raise RuntimeError(f"{pool} worker did not become ready:\n{sink.tail()}")

    def stop_pool(self, pool: str) -> None:
        for worker in self.workers.pop(pool, []):
            worker.stop()

    def kill_pool(self, pool: str) -> None:
        for worker in self.workers.pop(pool, []):
            worker.kill()

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for pool in list(self.workers):
            self.stop_pool(pool)

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

    def wait_job(self, job_id: str, key: str = "dev", timeout_s: float = 60) -> dict[str, Any]:
        """Long-poll until the job is done/failed (or fail after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, _, body = self.request("GET", f"/v1/jobs/{job_id}?wait=5", key)
            assert status == 200, (status, body)
            job = json.loads(body)
            if job["status"] in ("done", "failed"):
                return job
        raise AssertionError(f"job {job_id} not finished after {timeout_s}s: {job}")


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
