"""Benchmark: jobs through the whole service (HTTP → Redis queues → workers → fusion).

N images are submitted by C concurrent clients (threads); each client POSTs a job and
long-polls it until done. Prints the latency from submission to a done result (p50,
p95, max), the throughput in jobs per second over the whole run, and how many face
detections the service ran per job (``liveness_stage_runs_total{stage="face_detections"}``
of ``/metrics``, before and after; the face stage runs once per job, so it must be 1).

By default it starts its own stack on 127.0.0.1 (gunicorn gateway + one worker per
pool of the test registry — face, each test, fusion — with ``--quality-concurrency``
processes for the quality pool; Redis DB 12 of the local Redis, flushed before and
after); ``--url`` and ``--api-key`` target a running service instead (``liveness
serve``), which must be on this machine: only loopback addresses are accepted. Bounded
in count and time.

Usage: python bench/e2e.py [-n 60] [-c 4] [--quality-concurrency 2]
       python bench/e2e.py --url http://127.0.0.1:8000 --api-key KEY
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image
from skimage import data

from common.registry import default_registry
from tests.procs import Stack, http

MAX_IMAGES = 2000
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def sample_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def run_clients(url: str, api_key: str, n: int, clients: int, time_limit_s: float,
                tests: list[str] | None) -> tuple[list[float], dict[str, int], float]:
    """Latencies (s) of finished jobs, counts per final status, wall time of the run."""
    body = {"image": base64.b64encode(sample_jpeg()).decode()}
    if tests:
        body["tests"] = tests
    counter = iter(range(n))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    stop_at = time.monotonic() + time_limit_s

    def client() -> None:
        while time.monotonic() < stop_at:
            with lock:
                if next(counter, None) is None:
                    return
            start = time.perf_counter()
            status, _, raw = http("POST", f"{url}/v1/jobs", api_key, body)
            final = f"http_{status}"
            if status == 202:
                job_id = json.loads(raw)["id"]
                while time.monotonic() < stop_at:
                    status, _, raw = http("GET", f"{url}/v1/jobs/{job_id}?wait=10", api_key)
                    job = json.loads(raw) if status == 200 else {"status": f"http_{status}"}
                    if job["status"] not in ("queued", "running"):
                        final = job["status"]
                        break
                else:
                    final = "time_limit"
            with lock:
                statuses[final] = statuses.get(final, 0) + 1
                if final == "done":
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def face_detections(url: str) -> float:
    """The service's face-detection counter (0 before the first job)."""
    status, _, raw = http("GET", f"{url}/metrics")
    if status != 200:
        return float("nan")
    for line in raw.decode().splitlines():
        if line.startswith('liveness_stage_runs_total{stage="face_detections"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--images", type=int, default=60)
    parser.add_argument("-c", "--clients", type=int, default=4)
    parser.add_argument("--url", help="a running service on this machine")
    parser.add_argument("--api-key", help="its API key (with --url)")
    parser.add_argument("--tests", help="comma-separated tests per job (default: the server's)")
    parser.add_argument("--quality-concurrency", type=int, default=2,
                        help="quality worker processes of the stack this script starts")
    parser.add_argument("--face-concurrency", type=int, default=2,
                        help="face-stage worker processes of the stack this script starts")
    parser.add_argument("--time-limit", type=float, default=300, help="seconds, at most")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    if not 1 <= args.images <= MAX_IMAGES:
        parser.error(f"--images must be within 1..{MAX_IMAGES}")
    tests = [t for t in (args.tests or "").split(",") if t] or None

    stack = None
    if args.url:
        if urlsplit(args.url).hostname not in LOOPBACK or not args.api_key:
            parser.error("--url must be a loopback address and needs --api-key")
        url, api_key = args.url.rstrip("/"), args.api_key
    else:
        import redis

        from cli.processes import redis_answers

        if not redis_answers(args.redis_url):
            parser.error(f"no Redis at {args.redis_url} (run: bash deploy/ensure-redis.sh)")
        redis.Redis.from_url(args.redis_url).flushdb()
        api_key = "bench-" + uuid.uuid4().hex
        stack = Stack(args.redis_url, Path(tempfile.mkdtemp(prefix="liveness-bench-")),
                      api_keys={"bench": api_key})
        print(f"starting the stack (logs in {stack.log_dir}) …", file=sys.stderr)
        pools = default_registry().queues
        stack.start_workers(["quality"], concurrency=args.quality_concurrency)
        stack.start_workers(["face"], concurrency=args.face_concurrency)
        stack.start_workers([p for p in pools if p not in ("quality", "face")])
        stack.start_gateway()
        url = stack.url
    try:
        # Warm-up: one job, so model loading and connection set-up are not measured.
        run_clients(url, api_key, 1, 1, 60, tests)
        detections_before = face_detections(url)
        latencies, statuses, wall = run_clients(url, api_key, args.images, args.clients,
                                                args.time_limit, tests)
        detections = face_detections(url) - detections_before
    finally:
        if stack is not None:
            stack.stop()
            import redis

            redis.Redis.from_url(args.redis_url).flushdb()
    cpus = os.cpu_count()
    print(f"e2e: {args.images} jobs (astronaut 512x512 JPEG, tests={tests or 'default'}), "
          f"{args.clients} concurrent clients, {cpus} CPUs"
          + ("" if args.url else f", worker processes: quality={args.quality_concurrency} "
                                 f"face={args.face_concurrency}, 1 per other pool"))
    print(f"  statuses: {statuses}")
    if latencies:
        print(f"  latency submit→done: p50 {percentile(latencies, 50) * 1000:.0f} ms, "
              f"p95 {percentile(latencies, 95) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
        print(f"  throughput: {len(latencies) / wall:.2f} jobs/s ({wall:.1f} s wall)")
    submitted = sum(statuses.values())
    print(f"  face detections per job: {detections / max(submitted, 1):.2f} "
          f"({detections:.0f} for {submitted} jobs)")
    if statuses.get("done", 0) != args.images:
        sys.exit(1)


if __name__ == "__main__":
    main()
