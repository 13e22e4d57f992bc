"""``liveness serve``: the whole service on one machine, for development and demos.

Starts Redis when none answers on the configured URL, the gateway (gunicorn) and one
Celery worker process per pool, prints the URL and a development API key, prefixes and
streams every child's log, and stops them all on Ctrl-C. Each child runs in its own
process group so that stopping it also stops its own children (gunicorn and Celery
prefork workers) and nothing is left orphaned.

Pools whose model file is not shipped yet (cnn, depth3d) still start: their tasks record
a ``model_unavailable`` outcome, which is what a deployment without those models sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import click

from common.config import PROJECT_ROOT, get_settings

#: Every pool, in start order: the fusion pool last so that fan-in never waits on it.
POOLS: tuple[str, ...] = ("quality", "cnn", "depth3d", "fusion")


def key_hash_entry(key_id: str, key: str) -> str:
    """One ``LIVENESS_API_KEY_HASHES`` entry: ``id:<SHA-256 hex of the key>``."""
    return f"{key_id}:{hashlib.sha256(key.encode()).hexdigest()}"


class ManagedProcess:
    """A child process in its own process group whose output goes, line by line, to ``sink``.

    Used by ``liveness serve``, ``bench/e2e.py`` and the end-to-end tests, so that all of
    them start and stop the service's processes the same way.
    """

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


def stop_all(processes: Sequence[ManagedProcess], timeout_s: float = 15.0) -> None:
    """Stop the gateway and workers together, then Redis (workers give back unacked tasks)."""
    last = [p for p in processes if p.name == "redis"]
    first = [p for p in processes if p.name != "redis"]
    for group in (first, last):
        for process in group:
            if process.alive():
                process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in group:
            process.stop(max(0.1, deadline - time.monotonic()))


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Redis server answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                         socket_timeout=timeout_s).ping())
    except (redis.RedisError, OSError):
        return False


def redis_server_argv(url: str) -> list[str]:
    """A throw-away ``redis-server`` (no persistence) for the host and port of ``url``."""
    parts = urlsplit(url)
    return ["redis-server", "--bind", parts.hostname or "127.0.0.1",
            "--port", str(parts.port or 6379), "--save", "", "--appendonly", "no"]


def celery_worker_argv(pool: str, concurrency: int = 1, loglevel: str = "INFO",
                       node: str | None = None) -> list[str]:
    """The command of one pool's worker: it consumes only its own queue."""
    node = node or f"{pool}-{secrets.token_hex(3)}@%h"  # unique: several workers of one pool
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
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


def _printer(prefix: str, colour: str) -> Callable[[str], None]:
    lock = _PRINT_LOCK

    def sink(line: str) -> None:
        with lock:
            click.echo(click.style(f"{prefix:>9} | ", fg=colour) + line)

    return sink


_PRINT_LOCK = threading.Lock()
_COLOURS = {"redis": "red", "gateway": "cyan", "quality": "green", "cnn": "yellow",
            "depth3d": "magenta", "fusion": "blue"}


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Gateway bind address.")
@click.option("--port", default=8000, show_default=True, type=int, help="Gateway port.")
@click.option("--pools", default=",".join(POOLS), show_default=True,
              help="Comma-separated pools to start one worker for.")
@click.option("--concurrency", default=1, show_default=True, type=int,
              help="Worker processes per pool.")
@click.option("--gateway-workers", default=2, show_default=True, type=int,
              help="gunicorn worker processes.")
def serve_command(host: str, port: int, pools: str, concurrency: int,
                  gateway_workers: int) -> None:
    """Run Redis (if needed), the gateway and one worker per pool until Ctrl-C."""
    settings = get_settings()
    pool_names = [p.strip() for p in pools.split(",") if p.strip()]
    unknown = sorted(set(pool_names) - set(POOLS))
    if unknown:
        raise click.BadParameter(f"unknown pools {unknown}; known: {', '.join(POOLS)}")

    api_key = os.environ.get("LIVENESS_DEV_API_KEY") or secrets.token_urlsafe(24)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    hashes = [h for h in env.get("LIVENESS_API_KEY_HASHES", "").split(",") if h]
    env["LIVENESS_API_KEY_HASHES"] = ",".join([*hashes, key_hash_entry("dev", api_key)])

    processes: list[ManagedProcess] = []
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for url in dict.fromkeys([settings.redis_url, settings.broker_url,
                                  settings.result_backend]):
            if url.startswith("redis") and not redis_answers(url):
                processes += _start_redis(url, env)
        processes.append(ManagedProcess(
            "gateway", gateway_argv(host, port, gateway_workers), env,
            sink=_printer("gateway", _COLOURS["gateway"])))
        for pool in pool_names:
            processes.append(ManagedProcess(
                pool, celery_worker_argv(pool, concurrency), env,
                sink=_printer(pool, _COLOURS[pool])))
        base = f"http://{host}:{port}"

        def everyone_alive() -> bool:
            return not stopping.is_set() and all(p.alive() for p in processes)

        if not wait_http_ok(f"{base}/healthz", 90, everyone_alive):
            if stopping.is_set():
                return
            dead = [p.name for p in processes if not p.alive()]
            raise click.ClickException(
                f"the service did not come up (exited: {', '.join(dead) or 'none'})")
        _announce(base, api_key, pool_names)
        while everyone_alive():
            stopping.wait(0.5)
        if not stopping.is_set():
            dead = ", ".join(p.name for p in processes if not p.alive())
            raise click.ClickException(f"{dead} exited; stopping everything")
    finally:
        with _PRINT_LOCK:
            click.echo("stopping …", err=True)
        stop_all(processes)
        with _PRINT_LOCK:
            click.echo("stopped.", err=True)


def _start_redis(url: str, env: dict[str, str]) -> list[ManagedProcess]:
    """Start a Redis for ``url`` (deploy/ensure-redis.sh semantics), managed when possible.

    With ``redis-server`` on the PATH it runs as our child and stops with us. Without it,
    ``deploy/ensure-redis.sh`` installs Debian's package (as root) and leaves a daemon.
    """
    host = urlsplit(url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.ClickException(f"Redis does not answer at {url} and it is not local")
    if shutil.which("redis-server") is None:
        subprocess.run(["bash", str(PROJECT_ROOT / "deploy/ensure-redis.sh")], check=True,
                       env=dict(env, LIVENESS_REDIS_URL=url))
        return []
    redis_process = ManagedProcess("redis", redis_server_argv(url), env,
                                   sink=_printer("redis", _COLOURS["redis"]))
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline or not redis_process.alive():
            redis_process.stop()
            raise click.ClickException(f"could not start redis-server for {url}")
        time.sleep(0.1)
    return [redis_process]


def sample_image(path: Path) -> Path:
    """Write a real face photograph (scikit-image's public-domain astronaut) for the demo."""
    if not path.exists():
        from PIL import Image
        from skimage import data

        Image.fromarray(data.astronaut()).save(path, quality=92)
    return path


def _announce(base: str, api_key: str, pools: Sequence[str]) -> None:
    image = sample_image(Path(tempfile.gettempdir()) / "liveness-sample.jpg")
    auth = f"-H 'Authorization: Bearer {api_key}'"
    with _PRINT_LOCK:
        click.echo("")
        click.echo(click.style(f"Liveness service on {base}", bold=True))
        click.echo(f"  pools: {', '.join(pools)}   docs: {base}/docs   metrics: {base}/metrics")
        click.echo(f"  development API key: {api_key}")
        click.echo(f"  try:  curl -s {auth} -F image=@{image} {base}/v1/jobs")
        click.echo(f"        curl -s {auth} '{base}/v1/jobs/<id>?wait=10'")
        click.echo("  Ctrl-C stops everything.")
        click.echo("")
