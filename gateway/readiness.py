"""``/readyz``: the job store answers and every required queue has a consuming worker.

Worker presence comes from Celery's remote control (``inspect().active_queues()``), a
broadcast that waits ``timeout`` for replies, so the answer is cached for
``readyz_cache_s`` seconds: probes every few seconds from many replicas must not turn
into a broadcast storm. The cache is in Redis (``liveness:readyz``), shared by every
gateway process, so they all give the same answer: a per-process cache made the answer
flap between 200 and 503 while a pool restarted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Any

import redis

log = logging.getLogger(__name__)

#: Redis key of the shared readiness answer.
CACHE_KEY = "liveness:readyz"


class ReadinessCheck:
    """Cached readiness answer: ``(ready, details)``."""

    def __init__(self, redis_client: redis.Redis, celery_app: Any, queues: tuple[str, ...],
                 cache_s: float, inspect_timeout_s: float = 1.0) -> None:
        self.redis = redis_client
        self.celery_app = celery_app
        self.queues = queues
        self.cache_s = cache_s
        self.inspect_timeout_s = inspect_timeout_s
        self._lock = threading.Lock()

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            if self.cache_s > 0:
                try:
                    cached = self.redis.get(CACHE_KEY)
                except redis.RedisError:
                    cached = None
                if cached:
                    answer = json.loads(cached)
                    return bool(answer["ready"]), answer["details"]
            ready, details = self._check()
            if self.cache_s > 0 and details.get("redis") == "ok":
                with contextlib.suppress(redis.RedisError):
                    self.redis.set(CACHE_KEY, json.dumps({"ready": ready, "details": details}),
                                   px=max(1, int(self.cache_s * 1000)))
            return ready, details

    def _check(self) -> tuple[bool, dict[str, Any]]:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            return False, {"redis": f"unreachable: {exc.__class__.__name__}",
                           "queues": {q: "unknown" for q in self.queues}}
        consumers = self._consumers()
        if consumers is None:
            return False, {"redis": "ok", "queues": {q: "unknown" for q in self.queues},
                           "workers": "the broker could not be inspected"}
        queues = {q: consumers.get(q, 0) for q in self.queues}
        details: dict[str, Any] = {"redis": "ok", "queues": queues}
        missing = [q for q, n in queues.items() if n == 0]
        if missing:
            details["missing"] = missing
        return not missing, details

    def _consumers(self) -> dict[str, int] | None:
        """Worker count per queue, or ``None`` when the broker cannot be asked."""
        try:
            inspector = self.celery_app.control.inspect(timeout=self.inspect_timeout_s)
            replies = inspector.active_queues() or {}
        except Exception as exc:  # kombu/amqp/redis connection errors of any transport
            log.warning("readyz: worker inspection failed: %s", exc.__class__.__name__)
            return None
        counts: dict[str, int] = {}
        for queues in replies.values():
            for queue in queues or []:
                name = queue.get("name")
                if name:
                    counts[name] = counts.get(name, 0) + 1
        return counts
