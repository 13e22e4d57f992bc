"""``liveness serve``: the whole service on one machine, for development and demos.

Starts Redis when none answers on the configured URL, the gateway (gunicorn) and one
Celery worker per pool — the pipeline's queues, from the test registry: ``face``, one
per registered test, ``fusion`` — waits until ``/readyz`` says every pool consumes its
queue, then prints the URL and a development API key and streams every child's log with
its name as prefix (while starting, only warnings and errors: the rest of the start-up
output stays in the programs' log files), and stops them all on Ctrl-C. The processes run under
supervisord (:mod:`cli.supervision`): a child that dies is restarted with backoff and
the supervisor says so in the log, while ``/readyz`` answers 503 until its pool is back;
Ctrl-C stops every process group (no orphans).

Pools whose model folder is missing still start: their tasks record a
``model_unavailable`` outcome, which is what a deployment without those models sees.
"""

from __future__ import annotations

import os
import re
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
from common.config import PROJECT_ROOT, SettingsError, get_settings
from common.registry import default_registry
from common.sealing import new_key as new_image_key
from common.webhooks import MASTER_SECRET_VARIABLE, check_master_secret, tenant_secret

#: Lines shown while the service starts (the rest stays in the programs' log files):
#: warnings, errors, tracebacks, and the supervisor's (re)start and exit notices.
_STARTUP_SHOWN = re.compile(r"WARNING|ERROR|CRITICAL|FATAL|Traceback|Error\b|refusing|"
                            r"exited:|gave up:|^\s+File \"|^\S+Error: ")


#: supervisord's line when it stops restarting a program that keeps failing at start.
_GAVE_UP = re.compile(r"gave up: (\S+) entered FATAL state")
#: A log line that states an error (the last one says why a program could not start).
_ERROR_LINE = re.compile(r"(?:Error|Exception): \S|refusing to start")


def _last_error(log: Path) -> str:
    """The last line of ``log`` stating an error, else a pointer to the log."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "see its log"
    for line in reversed(lines):
        if _ERROR_LINE.search(line):
            return line.strip()[:600]
    return "see its log"


def _printer(prefix: str, colour: str, started: threading.Event) -> Callable[[str], None]:
    """A sink printing ``prefix | line``; until ``started`` is set only the lines
    :data:`_STARTUP_SHOWN` matches (worker start-up banners stay in the log files)."""
    lock = _PRINT_LOCK

    def sink(line: str) -> None:
        if not started.is_set() and not _STARTUP_SHOWN.search(line):
            return
        with lock:
            click.echo(click.style(f"{prefix:>9} | ", fg=colour) + line)

    return sink


_PRINT_LOCK = threading.Lock()
_COLOURS = ("green", "yellow", "magenta", "bright_green", "bright_yellow", "bright_magenta")
_FIXED_COLOURS = {"redis": "red", "gateway": "cyan", "face": "bright_blue", "fusion": "blue",
                  "supervisor": "white"}


def _colour(name: str, index: int) -> str:
    return _FIXED_COLOURS.get(name, _COLOURS[index % len(_COLOURS)])


#: Seconds ``serve`` waits for every pool to be ready before it gives up.
READY_TIMEOUT_S = 300.0


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
@click.option("--start-retries", default=10, show_default=True, type=click.IntRange(0, 100),
              help="Restarts of a process that dies while starting before serve gives up "
                   "and says why (with a growing delay: 1 s, 2 s, …).")
def serve_command(host: str, port: int, pools: str, concurrency: int,
                  gateway_workers: int, data_dir: str, start_retries: int) -> None:
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
    dev_webhook_secret = _dev_webhook_secret(env)
    # Uploaded images are sealed in Redis (common/sealing.py) with a key that lives only
    # in this process's memory and its children's environment, never on disk. A run
    # without LIVENESS_IMAGE_KEYS makes its own: images of jobs still queued when serve
    # stops cannot be opened by the next run (set the variable to keep them).
    env["LIVENESS_IMAGE_KEYS"] = env.get("LIVENESS_IMAGE_KEYS", "").strip() or new_image_key()

    # /readyz of this run answers 200 once a worker consumes each started pool's queue
    # (unless the operator chose the required queues).
    env.setdefault("LIVENESS_REQUIRED_QUEUES", ",".join(pool_names))
    stopping = threading.Event()
    started = threading.Event()

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
    run_dir = Path(data_dir) / f"serve-{port}"
    gave_up: list[str] = []  # programs supervisord stopped restarting (FATAL)

    def sink_for(name: str) -> Callable[[str], None]:
        printer = _printer(name, colours.get(name, "white"), started)
        if name != "supervisor":
            return printer

        def sink(line: str) -> None:
            found = _GAVE_UP.search(line)
            if found:
                gave_up.append(found.group(1))
            printer(line)

        return sink

    supervisor = Supervisor(programs, run_dir, env, sink_for=sink_for, cwd=PROJECT_ROOT,
                            start_retries=start_retries)
    try:
        starts_redis = any(p.name.startswith("redis") for p in programs)
        click.echo(f"starting {'Redis, ' if starts_redis else ''}the gateway and the pools "
                   f"{', '.join(pool_names)} (start-up logs: {run_dir}/) …", err=True)
        supervisor.start()
        base = f"http://{host}:{port}"

        def running() -> bool:
            return not stopping.is_set() and supervisor.alive()

        def starting() -> bool:
            return running() and not gave_up

        if not wait_http_ok(f"{base}/readyz", READY_TIMEOUT_S, starting):
            if stopping.is_set():
                return
            if gave_up:
                name = gave_up[0]
                raise click.ClickException(
                    f"{name} could not start (supervisord gave up restarting it): "
                    f"{_last_error(run_dir / f'{name}.log')} — its whole log: "
                    f"{run_dir / f'{name}.log'}")
            raise click.ClickException(
                f"the service was not ready within {READY_TIMEOUT_S:.0f} s (GET {base}/readyz "
                f"did not answer 200); see the log above and {run_dir}/")
        started.set()
        _announce_webhook_secret(dev_webhook_secret)
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


def _dev_webhook_secret(env: dict[str, str]) -> str:
    """The development key's (id ``dev``) webhook signing secret, derived from the
    children's ``LIVENESS_WEBHOOK_SECRET`` in ``env``.

    A secret set there must be usable (:func:`common.webhooks.check_master_secret`, else
    a ``ClickException`` with its message); when none is set, a fresh random one (256
    bits) is written into ``env`` for this run.
    """
    master = env.get(MASTER_SECRET_VARIABLE, "")
    if master:
        try:
            check_master_secret(master)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        master = env[MASTER_SECRET_VARIABLE] = secrets.token_urlsafe(32)
    return tenant_secret(master, "dev")


def _announce_webhook_secret(secret: str) -> None:
    with _PRINT_LOCK:
        click.echo("")
        click.echo(f"  webhook secret of the development key (X-Liveness-Signature): {secret}")


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
    # Its files are the service user's only (umask 077 in a 0700 folder).
    return [Program(f"redis-{port}" if port != 6379 else "redis",
                    redis_server_argv(url, data_dir / f"redis-{port}"), priority=1,
                    umask="077")]


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
        click.echo(f"  camera page: {base}/demo (paste the key)")
        click.echo(f"  try:  curl -s {auth} -F image=@{image} {base}/v1/jobs")
        click.echo(f"        curl -s {auth} '{base}/v1/jobs/<id>?wait=10'")
        click.echo("  Ctrl-C stops everything.")
        click.echo("")
