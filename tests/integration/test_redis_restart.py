"""A Redis restart loses no job and decides nothing: real Redis (append-only), real workers.

A Redis of its own on a free loopback port, with append-only persistence in a temporary
folder, and real face/quality/fusion workers on it. Jobs are in flight when Redis is
shut down (``SHUTDOWN``, as ``redis-cli shutdown`` does) and started again on the same
folder: every job ends ``done`` with its quality score, a job finished before the
restart is still there, and every worker is still running.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import skimage.data

from cli.processes import LogSink, ManagedProcess, free_port, redis_server_argv
from common.jobs import JobService
from common.jobstore import JobStore
from common.queueing import make_celery
from tests.e2e.support import jpeg
from tests.integration.support import integration_settings
from tests.procs import Stack

pytestmark = pytest.mark.integration


class RestartableRedis:
    """``redis-server`` with an append-only file in ``folder``; stop and start it again."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        self.process: ManagedProcess | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.sink = LogSink(folder.parent / "redis.log")

    def start(self) -> None:
        start = len(self.sink.lines)
        self.process = ManagedProcess("redis", redis_server_argv(self.url, self.folder),
                                      sink=self.sink)
        assert self.sink.wait_for("Ready to accept connections", 15, start), self.sink.tail()

    def shutdown(self) -> None:
        """What ``redis-cli shutdown`` does: flush the append-only file and exit."""
        assert self.process is not None
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
            redis.Redis.from_url(self.url).shutdown()
        self.process.proc.wait(15)


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[RestartableRedis, Stack]]:
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = RestartableRedis(url, tmp_path / "redis")
    server.start()
    stack = Stack(url, tmp_path / "logs", extra_env={"LIVENESS_JOB_DEADLINE_S": "40",
                                                     "LIVENESS_VISIBILITY_TIMEOUT_S": "8"})
    try:
        stack.start_workers(["face", "quality", "fusion"])
        yield server, stack
    finally:
        stack.stop()
        if server.process is not None:
            server.process.stop()


def test_jobs_survive_a_redis_restart(restartable: tuple[RestartableRedis, Stack]) -> None:
    server, stack = restartable
    settings = integration_settings(redis_url=server.url, broker_url=server.url,
                                    result_backend=server.url, job_deadline_s=40,
                                    visibility_timeout_s=8,
                                    image_keys=stack.env["LIVENESS_IMAGE_KEYS"])
    jobs = JobService(JobStore.from_settings(settings), make_celery(settings), settings)
    image = jpeg(skimage.data.astronaut())
    finished = jobs.submit("owner-a", image, tests=["quality"])["id"]
    assert jobs.wait("owner-a", finished, 60)["status"] == "done"

    in_flight = [jobs.submit("owner-a", image, tests=["quality"])["id"] for _ in range(6)]
    pending = [j for j in in_flight if jobs.get("owner-a", j)["status"] not in ("done",)]
    server.shutdown()
    assert pending, "every job finished before the restart: nothing was in flight"
    time.sleep(2)
    server.start()

    views = {}
    end = time.monotonic() + 120
    for job_id in in_flight:
        while time.monotonic() < end:
            try:
                view = jobs.wait("owner-a", job_id, 5)
            except Exception:  # the service's own client may still see the restart
                time.sleep(0.5)
                continue
            if view is not None and view["status"] in ("done", "failed"):
                views[job_id] = view
                break
    assert set(views) == set(in_flight), "a job never finished after the restart"
    for view in views.values():
        assert view["status"] == "done", view["error"]
        assert view["tests_detail"]["quality"]["score"] is not None
    assert jobs.get("owner-a", finished)["status"] == "done"  # persisted across the restart
    dead = [pool for pool, workers in stack.workers.items() if not all(w.alive()
                                                                      for w in workers)]
    assert dead == [], "\n".join(stack.sinks[p].tail() for p in dead)
