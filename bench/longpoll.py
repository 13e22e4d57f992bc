"""Idle connections: many long-polls and slow uploads must not stall the gateway.

Starts a Redis of its own and the gateway alone (``cli.processes.ServiceStack``: the
same gunicorn command as ``liveness serve``, 2 processes) on free loopback ports; no
worker pool runs, so every job stays ``queued`` and every long-poll is held for its
whole wait. Then, from one asyncio loop:

- ``--long-polls`` (1000) concurrent ``GET /v1/jobs/<id>?wait=<--wait>`` on queued jobs
  (spread over ``--jobs`` jobs), each on its own connection;
- ``--slow-uploads`` (50) multipart ``POST /v1/jobs`` whose body is trickled a few bytes
  per second (``--trickle-bps``) and never completes while measured;

and while all of them are held, two probe threads measure for ``--probe-seconds``:
``GET /healthz`` and a new submission (``POST /v1/jobs``, a small JPEG), each on a new
connection. It prints the probes' latencies (p50 / p95 / max), how many long-polls were
answered 200 after their full wait, and the Redis connections (``INFO clients``) the
gateway held meanwhile; it exits 1 when a probe failed or took more than ``--limit-s``
(1 s), or a long-poll was not answered. Loopback only; the open-files limit is raised
to its hard limit for the gateway and this process.

Usage: python bench/longpoll.py [--long-polls 1000] [--slow-uploads 50] [--worker-class gevent]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import skimage.data
from PIL import Image

from cli.processes import LogSink, ManagedProcess, ServiceStack, free_port, redis_server_argv

API_KEY = "longpoll-" + uuid.uuid4().hex
#: The first unexpected long-poll answer (status line, time, body's end), for the report.
ERRORS: list[str] = []


def small_jpeg(side: int = 160) -> bytes:
    """A small JPEG of scikit-image's astronaut (the probes' submissions)."""
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).resize((side, side)).save(buffer, "JPEG")
    return buffer.getvalue()


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="face.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
    body += image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def request(url: str, method: str = "GET", body: bytes | None = None,
            content_type: str | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {API_KEY}", "Connection": "close"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- the idle connections --------------------------------------------------------------
async def long_poll(port: int, job_id: str, wait_s: int, answers: list[tuple[int, float]],
                    opened: list[int]) -> None:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"GET /v1/jobs/{job_id}?wait={wait_s} HTTP/1.1\r\nHost: bench\r\n"
                      f"Authorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        opened.append(1)
        status_line = await asyncio.wait_for(reader.readline(), wait_s + 30)
        status = int(status_line.split()[1]) if status_line else 0
        rest = await reader.read()
        writer.close()
        if status != 200 and not ERRORS:
            ERRORS.append(f"{status_line.decode(errors='replace').strip()} after "
                          f"{time.monotonic() - started:.1f} s: "
                          f"{rest.decode(errors='replace')[-300:]}")
    except (TimeoutError, OSError, ValueError, IndexError):
        status = 0
    answers.append((status, time.monotonic() - started))


async def slow_upload(port: int, body: bytes, content_type: str, bytes_per_s: int,
                      stop: asyncio.Event, alive: list[int]) -> None:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"POST /v1/jobs HTTP/1.1\r\nHost: bench\r\n"
                      f"Authorization: Bearer {API_KEY}\r\nContent-Type: {content_type}\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode())
        sent = 0
        alive.append(1)
        while not stop.is_set() and sent < len(body):
            writer.write(body[sent:sent + bytes_per_s])
            await writer.drain()
            sent += bytes_per_s
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        writer.close()
    except OSError:
        pass


# --- the probes ------------------------------------------------------------------------
class Probe(threading.Thread):
    """Repeats one request on new connections; keeps (latency s, status) per call."""

    def __init__(self, call: Any, interval_s: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.call, self.interval_s, self.stop_event = call, interval_s, stop
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                status = self.call()
            except (OSError, urllib.error.URLError):
                status = 0
            self.samples.append((time.monotonic() - started, status))
            self.stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - started)))


def summary(samples: list[tuple[float, int]], ok: tuple[int, ...]) -> dict[str, Any]:
    times = sorted(t for t, _ in samples)
    return {"n": len(samples), "failed": sum(1 for _, s in samples if s not in ok),
            "p50_ms": round(1000 * statistics.median(times), 1),
            "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
            "max_ms": round(1000 * times[-1], 1)}


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long-polls", type=int, default=1000)
    parser.add_argument("--slow-uploads", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=50, help="queued jobs the long-polls wait on")
    parser.add_argument("--wait", type=int, default=30, help="?wait=N of the long-polls (s)")
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--probe-interval", type=float, default=0.25)
    parser.add_argument("--trickle-bps", type=int, default=4, help="slow uploads' bytes/s")
    parser.add_argument("--gateway-workers", type=int, default=2)
    parser.add_argument("--worker-class", default=None,
                        help="LIVENESS_GATEWAY_WORKER_CLASS for the gateway (default: its own)")
    parser.add_argument("--limit-s", type=float, default=1.0)
    args = parser.parse_args()
    if args.probe_seconds + 5 >= args.wait:
        parser.error("--wait must exceed --probe-seconds + 5 (the long-polls must outlast "
                     "the measurement)")
    nofile = raise_open_files_limit()

    with tempfile.TemporaryDirectory(prefix="liveness-longpoll-") as tmp:
        url = f"redis://127.0.0.1:{free_port()}/0"
        sink = LogSink(Path(tmp) / "redis.log")
        redis_process = ManagedProcess("redis", [*redis_server_argv(url), "--maxclients",
                                                 "20000"], sink=sink)
        if not sink.wait_for("Ready to accept connections", 15):
            raise SystemExit(f"redis-server did not start:\n{sink.tail()}")
        env = {"LIVENESS_READ_RATE_LIMIT": "100000000/minute",
               "LIVENESS_RATE_LIMIT": "100000000/minute",
               "LIVENESS_LONG_POLL_MAX_S": str(max(30, args.wait))}
        if args.worker_class:
            env["LIVENESS_GATEWAY_WORKER_CLASS"] = args.worker_class
        stack = ServiceStack(url, Path(tmp) / "logs", {"bench": API_KEY}, extra_env=env,
                             gateway_workers=args.gateway_workers)
        try:
            stack.start_gateway()
            return run(args, stack, redis.Redis.from_url(url), nofile)
        finally:
            stack.stop()
            redis_process.stop()


def run(args: argparse.Namespace, stack: ServiceStack, store: redis.Redis, nofile: int) -> int:
    base = stack.url
    image = small_jpeg()
    body, content_type = multipart(image)
    payload = json.dumps({"image": base64.b64encode(image).decode()}).encode()
    jobs = []
    for _ in range(args.jobs):
        status, raw = request(f"{base}/v1/jobs", "POST", payload, "application/json")
        if status != 202:
            raise SystemExit(f"setup submission answered {status}: {raw[:300]!r}")
        jobs.append(json.loads(raw)["id"])
    baseline_clients = int(store.info("clients")["connected_clients"])

    answers: list[tuple[int, float]] = []
    opened: list[int] = []
    uploads_alive: list[int] = []
    stop_probes = threading.Event()
    probes = {
        "GET /healthz": Probe(lambda: request(f"{base}/healthz", timeout=10)[0],
                              args.probe_interval, stop_probes),
        "POST /v1/jobs": Probe(lambda: request(f"{base}/v1/jobs", "POST", payload,
                                               "application/json", timeout=10)[0],
                               args.probe_interval, stop_probes),
    }
    clients_seen: list[int] = []

    async def scenario() -> None:
        stop_uploads = asyncio.Event()
        polls = [asyncio.create_task(long_poll(stack.port, jobs[i % len(jobs)], args.wait,
                                               answers, opened))
                 for i in range(args.long_polls)]
        uploads = [asyncio.create_task(slow_upload(stack.port, body, content_type,
                                                   args.trickle_bps, stop_uploads,
                                                   uploads_alive))
                   for _ in range(args.slow_uploads)]
        held_at = time.monotonic()
        while len(opened) < args.long_polls and time.monotonic() - held_at < 20:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # let the gateway take them all
        for probe in probes.values():
            probe.start()
        end = time.monotonic() + args.probe_seconds
        while time.monotonic() < end:
            clients_seen.append(int(store.info("clients")["connected_clients"]))
            await asyncio.sleep(1.0)
        stop_probes.set()
        for probe in probes.values():
            await asyncio.to_thread(probe.join)
        stop_uploads.set()
        await asyncio.gather(*uploads)
        await asyncio.gather(*polls)

    started = time.monotonic()
    asyncio.run(scenario())
    figures = {name: summary(p.samples, (200, 202)) for name, p in probes.items()}
    statuses: dict[int, int] = {}
    for status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    held = sorted(t for s, t in answers if s == 200)
    print(f"gateway: {args.gateway_workers} gunicorn processes, worker class "
          f"{args.worker_class or '(gunicorn.conf.py default)'}; open-files limit {nofile}; "
          f"{args.long_polls} long-polls (?wait={args.wait}) on {len(jobs)} queued jobs, "
          f"{args.slow_uploads} slow uploads ({args.trickle_bps} B/s); "
          f"{time.monotonic() - started:.0f} s")
    print(f"{'probe':<16} {'n':>4} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, f in figures.items():
        print(f"{name:<16} {f['n']:>4} {f['failed']:>6} {f['p50_ms']:>8} {f['p95_ms']:>8} "
              f"{f['max_ms']:>8}")
    print(f"long-polls answered: {statuses} (status: count; 0 = no answer); 200 after "
          f"median {statistics.median(held):.1f} s" if held else
          f"long-polls answered: {statuses} (status: count; 0 = no answer)")
    print(f"slow uploads held: {len(uploads_alive)}; Redis connections while held: "
          f"max {max(clients_seen, default=0)} (before: {baseline_clients})")
    bad = [name for name, f in figures.items()
           if f["failed"] or f["max_ms"] > 1000 * args.limit_s or not f["n"]]
    if statuses.get(200, 0) != args.long_polls:
        bad.append("long-polls")
    if bad:
        print(f"FAIL: {', '.join(bad)} (limit {args.limit_s} s per probe, every long-poll "
              "answered 200)")
        print("\n".join(ERRORS))
        problems = [line for line in stack.sinks["gateway"].lines
                    if "WARNING" in line or "ERROR" in line or "Traceback" in line]
        print("\n".join(["gateway log (warnings and errors, last 10):", *problems[-10:]]))
        return 1
    print(f"OK: every probe under {args.limit_s} s, every long-poll answered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
