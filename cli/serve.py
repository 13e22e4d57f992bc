"""``liveness serve``: the whole service on one machine, for development and demos.

Starts Redis when none answers on the configured URL, the gateway (gunicorn) and one
Celery worker per pool — the pipeline's queues, from the test registry: ``face``, one
per registered test, ``fusion`` — prints the URL and a development API key, prefixes
and streams every child's log, and stops them all on Ctrl-C. The processes run under
supervisord (:mod:`cli.supervision`): a child that dies is restarted with backoff and
the supervisor says so in the log, while ``/readyz`` answers 503 until its pool is back;
Ctrl-C stops every process group (no orphans).

Pools whose model is not shipped yet (cnn, depth3d) still start: their tasks record a
``model_unavailable`` outcome, which is what a deployment without those models sees.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import click

from cli.processes import (
    celery_worker_argv,
    gateway_argv,
    key_hash_entry,
    redis_answers,
    redis_server_argv,
    wait_http_ok,
)
from cli.supervision import Program, Supervisor
from common.config import PROJECT_ROOT, get_settings
from common.registry import default_registry


def _printer(prefix: str, colour: str) -> Callable[[str], None]:
    lock = _PRINT_LOCK

    def sink(line: str) -> None:
        with lock:
            click.echo(click.style(f"{prefix:>9} | ", fg=colour) + line)

    return sink


_PRINT_LOCK = threading.Lock()
_COLOURS = ("green", "yellow", "magenta", "bright_green", "bright_yellow", "bright_magenta")
_FIXED_COLOURS = {"redis": "red", "gateway": "cyan", "face": "bright_blue", "fusion": "blue",
                  "supervisor": "white"}


def _colour(name: str, index: int) -> str:
    return _FIXED_COLOURS.get(name, _COLOURS[index % len(_COLOURS)])


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Gateway bind address.")
@click.option("--port", default=8000, show_default=True, type=int, help="Gateway port.")
@click.option("--pools", default="", show_default="every pool of the registry",
              help="Comma-separated pools (queues) to start one worker for.")
@click.option("--concurrency", default=1, show_default=True, type=int,
              help="Worker processes per pool.")
@click.option("--gateway-workers", default=2, show_default=True, type=int,
              help="gunicorn worker processes.")
@click.option("--data-dir", default=str(PROJECT_ROOT / ".cache"), show_default=True,
              type=click.Path(file_okay=False),
              help="Where a Redis started by serve keeps its append-only file, and the "
                   "supervisor's config and logs (serve-<port>/).")
def serve_command(host: str, port: int, pools: str, concurrency: int,
                  gateway_workers: int, data_dir: str) -> None:
    """Run Redis (if needed), the gateway and one worker per pool until Ctrl-C."""
    settings = get_settings()
    known = default_registry().queues
    pool_names = [p.strip() for p in pools.split(",") if p.strip()] or list(known)
    unknown = sorted(set(pool_names) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown pools {unknown}; known: {', '.join(known)}")

    api_key = os.environ.get("LIVENESS_DEV_API_KEY") or secrets.token_urlsafe(24)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    hashes = [h for h in env.get("LIVENESS_API_KEY_HASHES", "").split(",") if h]
    env["LIVENESS_API_KEY_HASHES"] = ",".join([*hashes, key_hash_entry("dev", api_key)])

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    programs: list[Program] = []
    for url in dict.fromkeys([settings.redis_url, settings.broker_url, settings.result_backend]):
        if url.startswith("redis") and not redis_answers(url):
            programs += _redis_program(url, env, Path(data_dir))
    programs.append(Program("gateway", gateway_argv(host, port, gateway_workers)))
    programs += [Program(pool, celery_worker_argv(pool, concurrency)) for pool in pool_names]
    colours = {p.name: _colour(p.name, i) for i, p in enumerate(programs)}
    supervisor = Supervisor(
        programs, Path(data_dir) / f"serve-{port}", env,
        sink_for=lambda name: _printer(name, colours.get(name, "white")), cwd=PROJECT_ROOT)
    try:
        supervisor.start()
        base = f"http://{host}:{port}"

        def running() -> bool:
            return not stopping.is_set() and supervisor.alive()

        if not wait_http_ok(f"{base}/healthz", 120, running):
            if stopping.is_set():
                return
            raise click.ClickException("the service did not come up; see the log above")
        _announce(base, api_key, pool_names)
        while running():
            stopping.wait(0.5)
        if not stopping.is_set():
            raise click.ClickException("supervisord exited; stopping everything")
    finally:
        with _PRINT_LOCK:
            click.echo("stopping …", err=True)
        supervisor.stop()
        with _PRINT_LOCK:
            click.echo("stopped.", err=True)


def _redis_program(url: str, env: dict[str, str], data_dir: Path) -> list[Program]:
    """A supervised Redis for ``url`` (persistent), or none when ensure-redis.sh starts one.

    With ``redis-server`` on the PATH it runs under serve's supervisor with append-only
    persistence in ``data_dir``. Without it, ``deploy/ensure-redis.sh`` installs Debian's
    package (as root) and leaves a persistent daemon.
    """
    host = urlsplit(url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.ClickException(f"Redis does not answer at {url} and it is not local")
    if shutil.which("redis-server") is None:
        subprocess.run(["bash", str(PROJECT_ROOT / "deploy/ensure-redis.sh")], check=True,
                       env=dict(env, LIVENESS_REDIS_URL=url))
        return []
    port = urlsplit(url).port or 6379
    return [Program(f"redis-{port}" if port != 6379 else "redis",
                    redis_server_argv(url, data_dir / f"redis-{port}"), priority=1)]


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
