"""Load test: N clients submit jobs to a running service and poll them to the end.

Each client POSTs the 512×512 astronaut JPEG, long-polls its job until ``done`` or
``failed``, and starts the next; a refused submission (429/503) is retried after its
``Retry-After``. Bounded in count and time, and it only talks to loopback addresses.
At the end it waits (``--drain``) for every accepted job and reports:

- latency from POST to a terminal answer (p50 / p95 / p99) and throughput;
- HTTP answers by status, and 5xx in particular;
- jobs by outcome: ``done`` (with their decisions), ``failed`` (by error code), and
  **lost** — accepted (202) but never terminal.

It starts nothing: point it at ``liveness serve`` (``make run``) with the key it prints.

Usage: python bench/load.py --url http://127.0.0.1:8000 --api-key KEY [-c 8] [-n 200]
       [--duration 60] [--tests quality]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import threading
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import http as _http

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_JOBS = 5000


def sample_jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def http(method: str, url: str, api_key: str | None, body: dict[str, Any] | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One request (``tests.procs.http``); connection failures come back as status 0."""
    try:
        return _http(method, url, api_key, body, None, timeout)
    except (urllib.error.URLError, OSError):
        return 0, {}, b""


@dataclass
class LoadReport:
    """What a load run saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500 and status != 503)

    def lines(self) -> list[str]:
        done = self.outcomes.get("done", 0)
        out = [f"accepted {len(self.accepted)}, done {done}, "
               f"failed {sum(n for k, n in self.outcomes.items() if k.startswith('failed'))}, "
               f"lost {len(self.lost)}, 5xx other than 503: {self.server_errors}",
               f"HTTP answers: {dict(sorted(self.statuses.items()))}",
               f"outcomes: {dict(sorted(self.outcomes.items()))}"]
        if self.latencies:
            q = statistics.quantiles(self.latencies, n=100, method="inclusive") \
                if len(self.latencies) > 1 else [self.latencies[0]] * 99
            out.append(f"latency POST→terminal: p50 {q[49] * 1000:.0f} ms, p95 "
                       f"{q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms; throughput "
                       f"{len(self.latencies) / max(self.wall_s, 1e-9):.2f} jobs/s "
                       f"({self.wall_s:.1f} s)")
        return out


class LoadRun:
    """Clients submitting and polling until ``jobs`` were submitted or time is up."""

    def __init__(self, url: str, api_key: str, clients: int, jobs: int, duration_s: float,
                 tests: list[str] | None = None, image: bytes | None = None) -> None:
        if urlsplit(url).hostname not in LOOPBACK:
            raise ValueError("load runs go to loopback addresses only")
        self.url, self.api_key = url.rstrip("/"), api_key
        self.clients, self.jobs = clients, min(jobs, MAX_JOBS)
        self.duration_s = duration_s
        body: dict[str, Any] = {"image": base64.b64encode(image or sample_jpeg()).decode()}
        if tests:
            body["tests"] = tests
        self.body = body
        self.report = LoadReport()
        self._lock = threading.Lock()
        self._left = self.jobs
        self._open: set[str] = set()
        self._stop = threading.Event()

    def _count(self, status: int) -> None:
        with self._lock:
            self.report.statuses[status] += 1

    def _take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def _submit(self, end: float) -> str | None:
        while time.monotonic() < end and not self._stop.is_set():
            status, headers, raw = http("POST", f"{self.url}/v1/jobs", self.api_key, self.body)
            self._count(status)
            if status == 202:
                return str(json.loads(raw)["id"])
            if status in (429, 503):
                time.sleep(min(float(headers.get("Retry-After") or 1), 5))
            else:
                time.sleep(0.5)
        return None

    def poll(self, job_id: str, until: float) -> dict[str, Any] | None:
        """Long-poll one job until it is terminal or ``until`` passes."""
        while time.monotonic() < until:
            status, _, raw = http("GET", f"{self.url}/v1/jobs/{job_id}?wait=10",
                                  self.api_key, timeout=20)
            self._count(status)
            if status == 200:
                job = json.loads(raw)
                if job["status"] in ("done", "failed", "expired"):
                    return job
            else:
                time.sleep(0.5)
        return None

    def _record(self, job: dict[str, Any]) -> None:
        with self._lock:
            if job["status"] == "done":
                self.report.outcomes["done"] += 1
                self.report.outcomes[f"decision:{job['decision']}"] += 1
            else:
                code = (job.get("error") or "").split(":", 1)[0] or "?"
                self.report.outcomes[f"{job['status']}:{code}"] += 1

    def one_job(self, submit_until: float, poll_until: float) -> bool:
        """Submit one job (refusals retried until ``submit_until``) and long-poll it until
        ``poll_until``: accepted, latency and outcome recorded; a job not terminal by then
        stays open for :meth:`drain`. False when it could not be submitted."""
        start = time.monotonic()
        job_id = self._submit(submit_until)
        if job_id is None:
            return False
        with self._lock:
            self.report.accepted.append(job_id)
            self._open.add(job_id)
        job = self.poll(job_id, poll_until)
        if job is not None:
            with self._lock:
                self._open.discard(job_id)
                self.report.latencies.append(time.monotonic() - start)
            self._record(job)
        return True

    def _client(self, end: float) -> None:
        while time.monotonic() < end and self._take():
            if not self.one_job(end, end):
                return

    def drain(self, drain_s: float) -> None:
        """Wait up to ``drain_s`` for every job still open; the others are **lost**."""
        drain_end = time.monotonic() + drain_s
        for job_id in sorted(self._open):
            job = self.poll(job_id, drain_end)
            if job is None:
                self.report.lost.append(job_id)
            else:
                self._record(job)

    def run(self, drain_s: float = 180) -> LoadReport:
        """Run the clients, then wait up to ``drain_s`` for every accepted job."""
        start = time.monotonic()
        end = start + self.duration_s
        threads = [threading.Thread(target=self._client, args=(end,), daemon=True)
                   for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.report.wall_s = time.monotonic() - start
        self.drain(drain_s)
        return self.report

    def stop(self) -> None:
        self._stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a running service on this machine")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("-c", "--clients", type=int, default=8)
    parser.add_argument("-n", "--jobs", type=int, default=200, help=f"at most {MAX_JOBS}")
    parser.add_argument("--duration", type=float, default=120, help="seconds, at most")
    parser.add_argument("--drain", type=float, default=180,
                        help="seconds to wait for accepted jobs after the run")
    parser.add_argument("--tests", help="comma-separated tests per job (default: server's)")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("--url must be a loopback address")
    tests = [t for t in (args.tests or "").split(",") if t] or None
    run = LoadRun(args.url, args.api_key, args.clients, args.jobs, args.duration, tests)
    report = run.run(args.drain)
    print(f"load: {args.clients} clients, up to {args.jobs} jobs in {args.duration:.0f} s, "
          f"tests={tests or 'default'}")
    for line in report.lines():
        print("  " + line)
    sys.exit(1 if report.lost or report.server_errors else 0)


if __name__ == "__main__":
    main()
