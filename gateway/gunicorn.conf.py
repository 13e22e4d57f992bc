# ruff: noqa: N999  (gunicorn looks for this file name)
"""gunicorn settings: ``gunicorn -c gateway/gunicorn.conf.py 'gateway:create_app()'``.

Values come from the same ``LIVENESS_*`` settings as the app. The worker class is
``gevent`` (``LIVENESS_GATEWAY_WORKER_CLASS``): an asynchronous API whose clients
long-poll (``?wait=N``) holds many idle connections, and gunicorn's own guidance for
long polling is an asynchronous worker — one greenlet per connection, so 1,000
long-polls and 50 slow uploads leave ``/healthz`` and new submissions answering within
a second (``bench/longpoll.py``), where 2 processes × 8 threads stalled at about 16.
gunicorn monkey-patches each gevent worker before it loads the app, so redis-py,
kombu, Flask-Limiter and prometheus_client run on cooperative sockets and locks.
``gthread`` stays selectable. The worker timeout exceeds the longest long-poll.
Prometheus multiprocess mode is switched on here, before any worker imports
``prometheus_client``, so ``/metrics`` sums the
request counters of every worker process. Errors gunicorn answers itself (request
line or header fields over its limits, malformed requests) are JSON like the app's.
"""

import os
import shutil
import tempfile

from gunicorn import util as _gunicorn_util

from common.config import get_settings

_settings = get_settings()

bind = _settings.gateway_bind
workers = _settings.gateway_workers
worker_class = _settings.gateway_worker_class
worker_connections = _settings.gateway_connections
threads = _settings.gateway_threads
timeout = _settings.long_poll_max_s + 30
graceful_timeout = 10
keepalive = 5
# gunicorn's request limits sit above the app's (gateway/errors.py: 4096-byte request
# target, 8192-byte header field), so the app answers those in JSON; beyond these, and
# for malformed requests, gunicorn answers — in JSON too (below).
limit_request_line = 8190
limit_request_field_size = 16384
limit_request_fields = 100
accesslog = "-"
# No query strings or bodies in the access log: paths carry job ids only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_own_metrics_dir = not _metrics_dir
if not _metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="liveness-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def _write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own error answers (414, 431, 400 …) as the API's JSON errors."""
    # Imported here, in a worker: importing the gateway package in this file would load
    # prometheus_client before PROMETHEUS_MULTIPROC_DIR is set (no request metrics).
    from gateway.errors import gunicorn_error_response

    _gunicorn_util.write_nonblock(sock, gunicorn_error_response(int(status_int), reason, mesg))


# gunicorn writes the errors it raises before the app runs with util.write_error (HTML);
# the workers look it up at call time, so replacing it here makes them JSON.
_gunicorn_util.write_error = _write_json_error


def on_starting(server):
    """Start with empty counters: files of a previous run would be summed in."""
    for name in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def on_exit(server):
    """Remove the metrics folder this file created (one a deployment set is kept)."""
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def child_exit(server, worker):
    """Let prometheus_client drop the live-gauge files of a dead worker."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
