"""Helpers of the integration tests: Redis DB 15 and one real Celery worker per pool.

Nothing is faked: every pool is a real ``celery -A workers.worker worker -Q <queue>
-c 1 --pool prefork`` process against the real Redis on the machine (started with
``deploy/ensure-redis.sh`` when none answers). DB 15 is flushed before and after the
session so tests never touch other data. :class:`WorkerPools` lets a test stop or
SIGKILL a pool mid-test; the ``pools`` fixture restarts whatever a test left down.

The test process builds its objects from explicit :class:`Settings` (``settings``
fixture); the same values reach the worker processes as ``LIVENESS_*`` variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.processes import celery_worker_argv, redis_answers
from common.config import PROJECT_ROOT, Settings
from common.queueing import make_celery
from common.registry import default_registry
from common.sealing import new_key as new_image_key

REDIS_URL = os.environ.get("LIVENESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: The service's settings in these tests (the workers get them as LIVENESS_* variables).
SERVICE_SETTINGS: dict[str, object] = {
    "redis_url": REDIS_URL,
    "broker_url": REDIS_URL,
    "result_backend": REDIS_URL,
    # Short, so a SIGKILLed worker's message is redelivered within seconds.
    "visibility_timeout_s": 4,
    "task_soft_time_limit_s": 30,
    "task_time_limit_s": 40,
    "job_deadline_s": 30,
    "webhook_secret": "integration-tests-master-secret-" + "0123456789abcdef",
    "webhook_timeout_s": 3.0,
    # The tests' webhook receiver listens on 127.0.0.1: allowed explicitly (it is refused
    # by default, as every loopback address is).
    "webhook_allowlist": "127.0.0.1/32",
    # Stored images are sealed with this key (common/sealing.py).
    "image_keys": new_image_key(),
}
#: The pools: every queue of the job pipeline (face, one per test, fusion).
QUEUES = default_registry().queues
READY_TIMEOUT_S = 90.0


def jpeg(image: np.ndarray) -> bytes:
    """``image`` (RGB uint8) as JPEG bytes, quality 92."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def integration_settings(**changes: object) -> Settings:
    """:data:`SERVICE_SETTINGS` as a :class:`Settings` (with ``changes``)."""
    return dataclasses.replace(Settings(), **{**SERVICE_SETTINGS, **changes})  # type: ignore[arg-type]


def settings_env(values: dict[str, object]) -> dict[str, str]:
    """``{"redis_url": …}`` → ``{"LIVENESS_REDIS_URL": …}`` for a worker's environment."""
    return {f"LIVENESS_{name.upper()}": str(value) for name, value in values.items()}


def ensure_redis(url: str = REDIS_URL) -> None:
    """Start a local Redis with the project's script when none answers."""
    if redis_answers(url):
        return
    env = {**os.environ, "LIVENESS_REDIS_URL": url}
    subprocess.run(["bash", str(PROJECT_ROOT / "deploy" / "ensure-redis.sh")], env=env,
                   check=False, timeout=120)
    if not redis_answers(url):
        pytest.fail(f"no Redis answers on {url} and deploy/ensure-redis.sh could not start one")


class WorkerPools:
    """Real Celery worker processes, one per queue, each in its own process group."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, **env}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.nodes: dict[str, str] = {}
        self._serial = itertools.count()
        self._control_app = make_celery(integration_settings())

    def start(self, queue: str, wait: bool = True) -> None:
        """Start ``queue``'s worker (concurrency 1, prefork); wait until it answers ping."""
        if self.alive(queue):
            return
        node = f"{queue}-{next(self._serial)}@liveness-test"
        log = open(self.log_dir / f"{node.split('@')[0]}.log", "wb")  # noqa: SIM115
        cmd = [*celery_worker_argv(queue, concurrency=1, node=node), "--pool", "prefork"]
        self.procs[queue] = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.nodes[queue] = node
        if wait:
            self.wait_ready([queue])

    def wait_ready(self, queues: list[str], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll ``inspect ping`` until every named worker answers."""
        pending = {self.nodes[q]: q for q in queues}
        end = time.monotonic() + timeout_s
        while pending and time.monotonic() < end:
            for queue in pending.values():
                if not self.alive(queue):
                    pytest.fail(f"worker {queue} exited:\n{self.log_tail(queue)}")
            replies = self._control_app.control.ping(destination=list(pending), timeout=0.5)
            for reply in replies:
                for node in reply:
                    pending.pop(node, None)
        if pending:
            tails = "\n".join(self.log_tail(q) for q in pending.values())
            pytest.fail(f"workers {sorted(pending)} did not answer ping:\n{tails}")

    def alive(self, queue: str) -> bool:
        proc = self.procs.get(queue)
        return proc is not None and proc.poll() is None

    def stop(self, queue: str, timeout_s: float = 30.0) -> None:
        """Warm shutdown (SIGTERM to the process group), SIGKILL if it hangs."""
        proc = self.procs.get(queue)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(queue)
        self._reap_group(proc.pid)

    def kill(self, queue: str) -> None:
        """SIGKILL the worker and its pool processes at once (a crash, an OOM kill)."""
        proc = self.procs.get(queue)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self._reap_group(proc.pid)

    @staticmethod
    def _reap_group(pgid: int) -> None:
        """Make sure no pool child of the group outlives its parent."""
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)

    def ensure_all(self) -> None:
        """Restart every pool a test left stopped or killed."""
        down = [q for q in QUEUES if not self.alive(q)]
        for queue in down:
            self.start(queue, wait=False)
        if down:
            self.wait_ready(down)

    def stop_all(self) -> None:
        for queue in list(self.procs):
            self.stop(queue)

    def log_tail(self, queue: str, n: int = 30) -> str:
        path = self.log_dir / f"{self.nodes[queue].split('@')[0]}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return f"--- {queue} ---\n" + "\n".join(lines[-n:])


def with_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with some fields changed (e.g. a short deadline)."""
    return dataclasses.replace(settings, **changes)
