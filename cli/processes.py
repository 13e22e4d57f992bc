"""Process management of the service: the one module that starts and stops its processes.

``liveness serve``, the end-to-end and integration tests and ``bench/e2e.py`` all start
the service's processes through it, with the same command lines:

- Redis (``redis-server`` for a local URL, when none answers),
- the gateway (gunicorn with ``gateway/gunicorn.conf.py``),
- one Celery worker per pool (``celery -A workers.worker worker -Q <queue>``); the pools
  are the pipeline's queues (:attr:`common.registry.TestRegistry.queues`): ``face``, one
  per registered test, ``fusion``.

Each child runs in its own process group, so stopping it also stops its own children
(gunicorn and Celery prefork workers) and nothing is left orphaned; its output goes,
line by line, to a sink (a printer, a log file).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from common.config import PROJECT_ROOT
from common.sealing import new_key as new_image_key
from common.webhooks import tenant_secret
from gateway.auth import hash_key

#: The Celery app of every worker (``-A``).
WORKER_APP = "workers.worker"


def key_hash_entry(key_id: str, key: str) -> str:
    """One ``LIVENESS_API_KEY_HASHES`` entry: ``id:<SHA-256 hex of the key>``."""
    return f"{key_id}:{hash_key(key)}"


class ManagedProcess:
    """A child process in its own process group whose output goes, line by line, to ``sink``."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
                 cwd: Path = PROJECT_ROOT, sink: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        )
        self._sink = sink or (lambda line: None)
        self._reader = threading.Thread(target=self._pump, name=f"log-{name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._sink(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (it and its own children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once (what an OOM kill or a node loss looks like)."""
        self.signal_group(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM the group (gunicorn and Celery shut down warm), SIGKILL after a timeout."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait()
        # Children that outlived their leader (there should be none) go too.
        self.signal_group(signal.SIGKILL)
        self._reader.join(2.0)
        return self.proc.returncode


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Redis server answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                         socket_timeout=timeout_s).ping())
    except (redis.RedisError, OSError):
        return False


def redis_server_argv(url: str, data_dir: str | Path | None = None) -> list[str]:
    """``redis-server`` for the host and port of ``url``.

    With ``data_dir``, append-only persistence in that folder (fsync every second): job
    records, results and queued messages survive a restart of this Redis. The folder is
    made private to the service user (0700). Without it, nothing is kept (tests that
    want a throw-away Redis).
    """
    parts = urlsplit(url)
    argv = ["redis-server", "--bind", parts.hostname or "127.0.0.1",
            "--port", str(parts.port or 6379), "--save", ""]
    if data_dir is None:
        return [*argv, "--appendonly", "no"]
    private_dir(data_dir)
    return [*argv, "--appendonly", "yes", "--appendfsync", "everysec",
            "--dir", str(Path(data_dir).resolve())]


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and make it readable by its owner only (0700): the
    folder of Redis's append-only file holds job records and (sealed) images."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def celery_worker_argv(pool: str, concurrency: int = 1, loglevel: str = "INFO",
                       node: str | None = None) -> list[str]:
    """The command of one pool's worker: it consumes only its own queue."""
    node = node or f"{pool}-{os.urandom(3).hex()}@%h"  # unique: several workers of one pool
    return [sys.executable, "-m", "celery", "-A", WORKER_APP, "worker",
            "-Q", pool, "-n", node, "--concurrency", str(concurrency),
            "--loglevel", loglevel, "--without-gossip", "--without-mingle"]


def gateway_argv(host: str, port: int, workers: int = 2) -> list[str]:
    """gunicorn with the gateway's config file; bind and worker count from the command line."""
    return [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gateway/gunicorn.conf.py"),
            "--bind", f"{host}:{port}", "--workers", str(workers), "gateway:create_app()"]


def wait_http_ok(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll ``url`` until it answers 200, the timeout passes or ``alive()`` turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LogSink:
    """Keeps a child's output lines (in memory and in a file) and lets a caller wait for one."""

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


class ServiceStack:
    """The gateway and worker pools against one Redis URL, all on 127.0.0.1, logs in files.

    ``env`` entries are added to the children's environment (``LIVENESS_*`` settings,
    ``PYTHONPATH`` for extra test plug-ins …). Used by the tests and ``bench/e2e.py``.
    ``LIVENESS_WEBHOOK_SECRET`` is ``extra_env``'s, else the environment's, else a random
    one (:attr:`webhook_secret`; :meth:`tenant_webhook_secret` gives a key id's).
    """

    def __init__(self, redis_url: str, log_dir: Path, api_keys: dict[str, str],
                 extra_env: dict[str, str] | None = None, gateway_workers: int = 2) -> None:
        self.redis_url = redis_url
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_keys = dict(api_keys)
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
            # Images are sealed at rest (common/sealing.py): one key for the whole stack.
            LIVENESS_IMAGE_KEYS=os.environ.get("LIVENESS_IMAGE_KEYS") or new_image_key(),
        )
        self.env["LIVENESS_WEBHOOK_SECRET"] = (os.environ.get("LIVENESS_WEBHOOK_SECRET")
                                               or secrets.token_urlsafe(32))
        self.env.update(extra_env or {})
        self.webhook_secret = self.env["LIVENESS_WEBHOOK_SECRET"]
        self.gateway_workers = gateway_workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gateway: ManagedProcess | None = None
        self.workers: dict[str, list[ManagedProcess]] = {}
        self.sinks: dict[str, LogSink] = {}

    def tenant_webhook_secret(self, key_id: str) -> str:
        """The secret that signs the webhooks of ``key_id``'s jobs."""
        return tenant_secret(self.webhook_secret, key_id)

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

    def start_workers(self, pools: Sequence[str], concurrency: int = 1,
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

    @contextlib.contextmanager
    def running(self, pools: Sequence[str]) -> Iterator[ServiceStack]:
        """Start one worker per pool and the gateway; stop everything on leaving."""
        try:
            self.start_workers(pools)
            self.start_gateway()
            yield self
        finally:
            self.stop()

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
