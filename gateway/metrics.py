"""Prometheus metrics of the gateway (``GET /metrics``).

Request counts and latencies are counted in each gunicorn worker process; with
``PROMETHEUS_MULTIPROC_DIR`` set (``gateway/gunicorn.conf.py`` sets it) they are
summed across processes by prometheus_client's multiprocess collector. Everything
that belongs to the whole service is read from Redis at scrape time, so every
process answers the same: queue depths (broker list lengths) and the job outcome
counters the fusion worker increments (keys below; absent until the first job ends).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator

import redis
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from common.config import Settings
from common.jobstore import JOBS_METRICS_KEY, OUTCOMES_METRICS_KEY, STAGES_METRICS_KEY

log = logging.getLogger(__name__)

OUTCOMES_KEY = OUTCOMES_METRICS_KEY
JOBS_KEY = JOBS_METRICS_KEY
#: Celery's Redis transport keeps a queue as a list named after it, plus one list per
#: priority step (``<queue>\\x06\\x16<n>``) when priorities are used.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

#: The gateway's own metrics live in a private registry (not the global default one).
GATEWAY_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("liveness_http_requests", "HTTP requests answered",
                   ["method", "route", "status"], registry=GATEWAY_REGISTRY)
LATENCY = Histogram("liveness_http_request_duration_seconds", "HTTP request latency",
                    ["method", "route"], buckets=_LATENCY_BUCKETS, registry=GATEWAY_REGISTRY)
SUBMITTED = Counter("liveness_jobs_submitted", "Jobs accepted by this gateway", ["kind"],
                    registry=GATEWAY_REGISTRY)
REJECTED = Counter("liveness_api_errors", "Error answers by error code", ["code"],
                   registry=GATEWAY_REGISTRY)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator:
        yield from self.registry.collect()


class RedisCollector(Collector):
    """Service-wide figures read from Redis at scrape time (short timeouts)."""

    def __init__(self, store_client: redis.Redis, broker_client: redis.Redis | None,
                 queues: tuple[str, ...]) -> None:
        self.store = store_client
        self.broker = broker_client
        self.queues = queues

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("liveness_redis_up", "1 when the job store answered this scrape")
        try:
            outcomes = self.store.hgetall(OUTCOMES_KEY)
            jobs = self.store.hgetall(JOBS_KEY)
            stages = self.store.hgetall(STAGES_METRICS_KEY)
            depths = self._depths()
        except redis.RedisError as exc:
            log.warning("metrics: Redis unreachable (%s)", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if depths is not None:
            depth = GaugeMetricFamily("liveness_queue_depth", "Messages waiting per queue",
                                      labels=["queue"])
            for queue, length in depths.items():
                depth.add_metric([queue], length)
            yield depth
        per_test = CounterMetricFamily("liveness_test_outcomes", "Test outcomes by test",
                                       labels=["test", "outcome"])
        for raw_field, value in sorted(outcomes.items()):
            test, _, outcome = raw_field.decode().partition(":")
            per_test.add_metric([test, outcome or "unknown"], float(value))
        yield per_test
        finished = CounterMetricFamily("liveness_jobs_finished", "Finished jobs by status",
                                       labels=["status"])
        decisions = CounterMetricFamily("liveness_job_decisions", "Finished jobs by decision",
                                        labels=["decision"])
        for raw_field, value in sorted(jobs.items()):
            name = raw_field.decode()
            if name.startswith("decision:"):
                decisions.add_metric([name.partition(":")[2]], float(value))
            else:
                finished.add_metric([name], float(value))
        yield finished
        yield decisions
        runs = CounterMetricFamily(
            "liveness_stage_runs", "Pipeline stage runs (face_detections: faces located by "
            "the service; one per job when every job reaches the face stage)",
            labels=["stage"])
        for raw_field, value in sorted(stages.items()):
            runs.add_metric([raw_field.decode()], float(value))
        yield runs

    def _depths(self) -> dict[str, int] | None:
        if self.broker is None:
            return None
        return queue_depths(self.broker, self.queues)


def queue_depths(broker: redis.Redis, queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting on each queue of a Redis broker (every priority), one round trip."""
    names = list(queues)
    pipe = broker.pipeline(transaction=False)
    for queue in names:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    lengths = pipe.execute()
    n = len(_PRIORITY_SUFFIXES)
    return {q: int(sum(lengths[i * n:(i + 1) * n])) for i, q in enumerate(names)}


def broker_client(settings: Settings) -> redis.Redis | None:
    """A Redis client on the broker when the broker is Redis (queue depths), else None."""
    if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis.Redis.from_url(settings.broker_url,
                                socket_connect_timeout=settings.gateway_redis_timeout_s,
                                socket_timeout=settings.gateway_redis_timeout_s)


def exposition_registry(collector: RedisCollector) -> CollectorRegistry:
    """The registry ``/metrics`` renders: this process's or all processes' metrics."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(GATEWAY_REGISTRY))
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def install_request_metrics(app: Flask) -> None:
    """Count and time every request by route template (never by raw path: ids!)."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_start = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        start = g.get("metrics_start")
        REQUESTS.labels(request.method, rule, str(response.status_code)).inc()
        if start is not None:
            LATENCY.labels(request.method, rule).observe(time.perf_counter() - start)
        if response.status_code >= 400 and response.is_json:
            body = response.get_json(silent=True) or {}
            code = (body.get("error") or {}).get("code")
            if code:
                REJECTED.labels(code).inc()
        return response
