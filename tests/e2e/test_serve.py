"""``liveness serve`` (what ``make run`` runs): up, a real job through it, Ctrl-C, no orphans."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from cli.processes import LogSink, ManagedProcess, free_port, key_hash_entry
from gateway.auth import parse_key_hashes
from tests.procs import http, multipart

pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children in other sessions included)."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True,
                           check=True).stdout.split()
    children: dict[int, list[int]] = {}
    for child, parent in zip(table[::2], table[1::2], strict=True):
        children.setdefault(int(parent), []).append(int(child))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is already dead; it only waits for its parent to reap it.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


def test_serve_runs_a_job_and_ctrl_c_leaves_no_process(tmp_path: Path):
    redis_port, port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"      # nothing answers: serve starts one
    env = dict(os.environ, LIVENESS_REDIS_URL=redis_url, LIVENESS_BROKER_URL=redis_url,
               LIVENESS_RESULT_BACKEND=redis_url, LIVENESS_DEV_API_KEY="dev-key-e2e",
               LIVENESS_READYZ_CACHE_S="0", PYTHONUNBUFFERED="1")
    sink = LogSink(tmp_path / "serve.log")
    serve = ManagedProcess("serve", [sys.executable, "-c", "from cli import main; main()",
                                     "serve", "--port", str(port), "--data-dir", str(tmp_path),
                                     "--pools", "face,quality,cnn,fasnet,fusion"], env, sink=sink)
    try:
        assert sink.wait_for("Ctrl-C stops everything", 120), sink.tail()
        banner = "\n".join(sink.lines)
        assert f"http://127.0.0.1:{port}" in banner and "dev-key-e2e" in banner
        image = Path(re.search(r"-F image=@(\S+)", banner).group(1)).read_bytes()
        processes = descendants(serve.pid)
        assert len(processes) >= 5      # redis, gunicorn (+ workers), 2 celery (+ children)

        body, content_type = multipart([("image", "face.jpg", image)])
        status, _, raw = http("POST", f"http://127.0.0.1:{port}/v1/jobs", "dev-key-e2e", body,
                              {"Content-Type": content_type})
        assert status == 202, raw
        job_url = f"http://127.0.0.1:{port}/v1/jobs/{json.loads(raw)['id']}?wait=20"
        status, _, raw = http("GET", job_url, "dev-key-e2e", timeout=30)
        job = json.loads(raw)
        assert job["status"] == "done" and job["face_found"] is True, job

        # Supervision: SIGKILL the cnn pool's (a default test's) main process; the
        # supervisor says so, restarts it, /readyz answers 503 meanwhile, and a new job
        # still completes.
        ready = f"http://127.0.0.1:{port}/readyz"
        assert http("GET", ready)[0] == 200
        killed = [pid for pid in descendants(serve.pid) if "-Q cnn " in cmdline(pid)
                   and "-Q cnn " not in cmdline(parent(pid))]
        assert len(killed) == 1, killed
        start = len(sink.lines)
        os.kill(killed[0], signal.SIGKILL)
        assert sink.wait_for("exited: cnn (terminated by SIGKILL", 20, start), sink.tail()
        went_down = came_back = False
        end = time.monotonic() + 90
        while time.monotonic() < end and not came_back:
            status = http("GET", ready)[0]
            went_down = went_down or status == 503
            came_back = went_down and status == 200
            time.sleep(0.2)
        assert went_down and came_back, (went_down, came_back)
        assert sink.wait_for("spawned: 'cnn'", 5, start)
        status, _, raw = http("POST", f"http://127.0.0.1:{port}/v1/jobs", "dev-key-e2e", body,
                              {"Content-Type": content_type})
        again = json.loads(http("GET", f"http://127.0.0.1:{port}/v1/jobs/"
                                f"{json.loads(raw)['id']}?wait=20", "dev-key-e2e",
                                timeout=30)[2])
        assert again["status"] == "done", again
        processes = descendants(serve.pid)

        serve.proc.send_signal(signal.SIGINT)                 # Ctrl-C
        assert serve.proc.wait(40) == 0, sink.tail()
        time.sleep(0.5)
        assert [pid for pid in processes if alive(pid)] == []
        assert sink.wait_for("stopped.", 5)
    finally:
        serve.stop()


def test_serve_is_ready_when_it_says_so_and_keeps_no_image_on_disk(tmp_path: Path):
    """``make run``: the banner comes once /readyz says every pool is ready, after a quiet
    start (issue 15.19); an uploaded image never reaches the disk readable and, once its
    job is finished or deleted, not even sealed after the compaction interval (15.4)."""
    redis_port, port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = dict(os.environ, LIVENESS_REDIS_URL=redis_url, LIVENESS_BROKER_URL=redis_url,
               LIVENESS_RESULT_BACKEND=redis_url, LIVENESS_DEV_API_KEY="dev-key-disk",
               LIVENESS_READYZ_CACHE_S="0", LIVENESS_AOF_REWRITE_S="2",
               PYTHONUNBUFFERED="1")
    env.pop("LIVENESS_IMAGE_KEYS", None)  # serve makes one for the run
    sink = LogSink(tmp_path / "serve.log")
    serve = ManagedProcess("serve", [sys.executable, "-c", "from cli import main; main()",
                                     "serve", "--port", str(port), "--data-dir",
                                     str(tmp_path / "data"), "--pools",
                                     "face,quality,cnn,fasnet,fusion"],
                           env, sink=sink)
    base = f"http://127.0.0.1:{port}"
    try:
        assert sink.wait_for("Ctrl-C stops everything", 180), sink.tail()
        assert http("GET", f"{base}/readyz")[0] == 200     # ready when it says so
        before_banner = sink.lines[:next(i for i, line in enumerate(sink.lines)
                                         if "Liveness service on" in line)]
        assert len(before_banner) < 40, "\n".join(before_banner)  # no start-up banners
        assert not any("celery@" in line or "[tasks]" in line for line in before_banner)

        rng = np.random.default_rng(7)
        face = data.astronaut()
        face[:40, :40] = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)  # this test's own
        image = cv2.imencode(".png", face[:, :, ::-1])[1].tobytes()       # lossless bytes
        body, content_type = multipart([("image", "face.png", image)])
        ids = []
        for _ in range(3):
            status, _, raw = http("POST", f"{base}/v1/jobs", "dev-key-disk", body,
                                  {"Content-Type": content_type})
            assert status == 202, raw
            ids.append(json.loads(raw)["id"])
        assert http("DELETE", f"{base}/v1/jobs/{ids[0]}", "dev-key-disk")[0] == 204
        for job_id in ids[1:]:
            job = json.loads(http("GET", f"{base}/v1/jobs/{job_id}?wait=20", "dev-key-disk",
                                  timeout=30)[2])
            assert job["status"] == "done", job
        assert http("DELETE", f"{base}/v1/jobs/{ids[1]}", "dev-key-disk")[0] == 204

        redis_dir = tmp_path / "data" / f"redis-{redis_port}"
        assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
        windows = [image[i:i + 32] for i in range(0, len(image) - 32, 509)]

        def on_disk() -> tuple[bool, bool]:
            blobs = [f.read_bytes() for f in (tmp_path / "data").rglob("*") if f.is_file()]
            clear = any(w in b for b in blobs for w in windows)
            return clear, any(b"LVS1" in b for b in blobs)

        # The documented bound: LIVENESS_AOF_REWRITE_S (2 s here) plus the rewrite itself.
        end = time.monotonic() + 2 + 10
        while on_disk() != (False, False) and time.monotonic() < end:
            time.sleep(0.5)
        assert on_disk() == (False, False)  # neither readable nor sealed image bytes
        for f in redis_dir.rglob("*"):
            assert not stat.S_IMODE(f.stat().st_mode) & 0o077, f  # the service user's only
    finally:
        serve.proc.send_signal(signal.SIGINT)
        try:
            serve.proc.wait(40)
        finally:
            serve.stop()


def test_serve_stops_at_once_and_says_why_when_a_process_cannot_start(tmp_path: Path):
    """A gateway that refuses to start (a default profile that does not exist) makes
    serve stop with the gateway's own error as soon as supervisord gives up on it — not
    after the readiness timeout with a message blaming a pool."""
    redis_port, port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = dict(os.environ, LIVENESS_REDIS_URL=redis_url, LIVENESS_BROKER_URL=redis_url,
               LIVENESS_RESULT_BACKEND=redis_url, LIVENESS_DEFAULT_PROFILE="no-such-profile",
               PYTHONUNBUFFERED="1")
    sink = LogSink(tmp_path / "serve.log")
    start = time.monotonic()
    serve = ManagedProcess("serve", [sys.executable, "-c", "from cli import main; main()",
                                     "serve", "--port", str(port), "--data-dir",
                                     str(tmp_path / "data"), "--pools", "fusion",
                                     "--start-retries", "1"], env, sink=sink)
    try:
        assert serve.proc.wait(120) != 0
        assert time.monotonic() - start < 100
        output = "\n".join(sink.lines)
        assert "gateway could not start" in output and "no-such-profile" in output, output
        assert "Ctrl-C stops everything" not in output
    finally:
        serve.stop()


def test_dev_key_entry_is_what_the_gateway_parses():
    entry = key_hash_entry("dev", "secret-key")
    assert parse_key_hashes(entry) == {entry.split(":")[1]: "dev"}


def test_stop_ends_the_whole_process_group(tmp_path: Path):
    child = ManagedProcess("sleepers", ["sh", "-c", "sleep 60 & sleep 60 & wait"],
                           sink=LogSink(tmp_path / "sleep.log"))
    deadline = time.monotonic() + 5
    while len(descendants(child.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchildren = descendants(child.pid)
    assert len(grandchildren) == 2
    child.stop(timeout_s=5)
    time.sleep(0.2)
    assert not child.alive()
    assert [pid for pid in grandchildren if alive(pid)] == []
