"""The Flask app factory: ``gunicorn -c gateway/gunicorn.conf.py 'gateway:create_app()'``."""

from __future__ import annotations

import functools
import logging

import redis
from flask import Flask, Response, g
from flask_limiter import Limiter

from common.config import Settings, get_settings
from common.egress import Resolver, system_resolver
from common.jobs import JobService
from common.jobstore import JobStore
from common.notifications import ChannelWatcher
from common.outages import tolerant_connection_class
from common.queueing import LivenessCelery, make_celery
from common.registry import FACE_QUEUE, FUSION_QUEUE, TestRegistry
from common.webhooks import check_master_secret
from gateway.auth import KeyRing
from gateway.blueprints import batches, challenges, demo, docs, health, jobs, metrics, profiles
from gateway.context import Gateway
from gateway.errors import register_error_handlers
from gateway.intake import MemoryRequest, job_body_limit
from gateway.metrics import (
    RedisCollector,
    broker_client,
    install_request_metrics,
    queue_depths,
)
from gateway.readiness import ReadinessCheck

log = logging.getLogger(__name__)


def _split(spec: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in spec.split(",") if part.strip())


def redis_pool(url: str, settings: Settings) -> redis.BlockingConnectionPool:
    """A bounded pool of connections to ``url`` for one gateway process.

    At most ``gateway_redis_connections``; a request that finds none free waits for one
    (cooperatively under gevent) up to ``gateway_redis_timeout_s`` and then fails with a
    ``ConnectionError`` (503), where redis-py's default pool would open up to 100 and
    then fail at once with "Too many connections" — 1,000 long-polls arriving together
    would each want one.
    """
    timeout = settings.gateway_redis_timeout_s
    return redis.BlockingConnectionPool.from_url(
        url, max_connections=settings.gateway_redis_connections, timeout=timeout,
        socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30,
        connection_class=tolerant_connection_class(url))


def required_queues(settings: Settings, registry: TestRegistry) -> tuple[str, ...]:
    """``LIVENESS_REQUIRED_QUEUES``, or by default: face, the default tests' queues, fusion."""
    if settings.required_queues.strip():
        return _split(settings.required_queues)
    tests = registry.resolve(None, settings.default_tests)
    return tuple(dict.fromkeys((FACE_QUEUE, *(registry.get(t).queue for t in tests),
                                FUSION_QUEUE)))


def create_app(settings: Settings | None = None, celery_app: LivenessCelery | None = None,
               resolver: Resolver = system_resolver) -> Flask:
    """Build the gateway: ``gunicorn 'gateway:create_app()'`` (settings from the environment).

    ``celery_app`` defaults to :func:`common.queueing.make_celery` of ``settings`` and the
    installed tests; jobs go through a :class:`common.jobs.JobService` on the job store at
    ``settings.redis_url``. Tests pass explicit settings (a test database) instead, and
    a stub ``resolver`` for callback URLs (:mod:`common.egress`), so no DNS is asked.

    Raises :class:`common.config.SettingsError` when ``LIVENESS_WEBHOOK_SECRET`` is empty,
    a placeholder or too short (:func:`common.webhooks.check_master_secret`): the
    service does not start with a secret anyone could guess.
    """
    settings = settings or get_settings()
    check_master_secret(settings.webhook_secret)
    timeout = settings.gateway_redis_timeout_s
    store_client = redis.Redis(connection_pool=redis_pool(settings.redis_url, settings))
    if celery_app is None:
        celery_app = make_celery(settings)
    registry = celery_app.test_registry
    broker = broker_client(settings)
    depth = functools.partial(queue_depths, broker) if broker is not None else None
    # Long-polls wait on one shared subscription per process, not one connection each.
    watcher = ChannelWatcher(store_client, JobStore.done_pattern())
    job_service = JobService(JobStore(store_client, settings, watcher), celery_app, settings,
                             resolver, depth)

    app = Flask(__name__)
    app.request_class = MemoryRequest
    # The largest body any route takes; /v1/jobs lowers it per request.
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_batch_bytes, job_body_limit(settings))
    app.json.sort_keys = False  # type: ignore[attr-defined]

    keyring = KeyRing(settings.api_key_hashes)
    if not len(keyring):
        log.warning("no API keys configured (LIVENESS_API_KEY_HASHES): every /v1 call gets "
                    "401; create one with `liveness apikey`")
    queues = required_queues(settings, registry)
    app.extensions["liveness"] = Gateway(
        settings=settings,
        jobs=job_service,
        keyring=keyring,
        readiness=ReadinessCheck(store_client, celery_app, queues, settings.readyz_cache_s),
        metrics=RedisCollector(store_client, broker,
                               tuple(dict.fromkeys((*queues, *registry.queues)))),
    )

    install_request_metrics(app)  # first, so its timer starts before the rate limiter

    @app.after_request  # runs after the limiter's header injection (reverse order)
    def _retry_after_only_when_refused(response: Response) -> Response:
        # Flask-Limiter adds Retry-After (its window's reset) to every answer: on a 202 it
        # would tell a client to wait a minute before polling, and on a 503 it would hide
        # the delay the error itself asked for.
        if response.status_code == 503 and g.get("retry_after"):
            response.headers["Retry-After"] = g.retry_after
        elif response.status_code != 429:
            response.headers.pop("Retry-After", None)
        return response

    limiter_url = settings.rate_limit_storage_url or settings.redis_url
    limiter = Limiter(
        key_func=keyring.rate_limit_key,
        app=app,
        storage_uri=limiter_url,
        storage_options=({"connection_pool": redis_pool(limiter_url, settings)}
                         if limiter_url.startswith(("redis://", "rediss://")) else
                         {"socket_connect_timeout": timeout, "socket_timeout": timeout}),
        strategy="fixed-window",
        headers_enabled=True,
        key_prefix="liveness:ratelimit",
        # Redis down: the limiter lets the request through (and logs it), and the route's
        # own Redis call answers 503 `unavailable`. Not swallowing would turn the
        # limiter's header injection, which runs after the response is built, into 500s.
        swallow_errors=True,
    )
    # One counter per key for the writes of both resources, another (higher) for reads:
    # a client long-polling its jobs must not use up its submissions.
    writes = limiter.shared_limit(settings.rate_limit, scope="writes",
                                  methods=["POST", "DELETE"])
    reads = limiter.shared_limit(settings.read_rate_limit, scope="reads",
                                 methods=["GET", "HEAD"])
    reads(profiles.bp)
    app.register_blueprint(profiles.bp)
    for bp in (jobs.bp, batches.bp, challenges.bp):
        writes(bp)
        reads(bp)
        app.register_blueprint(bp)
    for bp in (health.bp, metrics.bp, docs.bp, demo.bp):
        app.register_blueprint(bp)
    register_error_handlers(app)
    return app
