"""Compaction of Redis's append-only file, so erased images leave the disk promptly.

With append-only persistence (``liveness serve``, the compose and Kubernetes Redis),
Redis appends every write to its AOF: an image stored and then deleted stays in the
file — as a sealed blob (:mod:`common.sealing`), but on disk — until Redis rewrites the
file from its current data (``BGREWRITEAOF``), which its own growth trigger may not do
for a long time. :class:`AofCompactor` asks for a rewrite every ``interval_s`` seconds
when an image was erased since the last one, so a finished or deleted job's sealed image is
gone from the AOF files within about ``interval_s`` plus the rewrite's own duration
(Redis 7 removes the replaced files as soon as the rewrite is done).

Run by the fusion pool's timer (:mod:`workers.deadlines`); a Redis lock key lets one
process of the fleet rewrite per interval. A Redis that refuses the command (managed
services often do) is reported once and left alone.
"""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger(__name__)

#: Fleet-wide lock: one rewrite request per interval.
LOCK_KEY = "liveness:aof-rewrite"
#: Redis counter the job store increments whenever it erases an image (a job finished,
#: was deleted or was never confirmed): the rewrite is only worth it when this is > 0.
ERASURES_KEY = "liveness:aof:erasures"


class AofCompactor:
    """Requests ``BGREWRITEAOF`` at most every ``interval_s`` seconds when it is useful."""

    def __init__(self, client: redis.Redis, interval_s: float) -> None:
        self.client = client
        self.interval_s = float(interval_s)
        self._last = 0.0
        self.disabled = self.interval_s <= 0

    def tick(self, now: float | None = None) -> bool:
        """Request a rewrite if one is due; True when one was requested.

        Not due: within ``interval_s`` of this process's last check, another process
        holds the interval's lock, persistence is off, a rewrite is running, or no image
        was erased since the last rewrite (:data:`ERASURES_KEY`).
        Connection errors propagate (the caller's timer tries again next tick).
        """
        if self.disabled:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last < self.interval_s:
            return False
        self._last = now
        try:
            info = self.client.info("persistence")
            if not int(info.get("aof_enabled", 0)):
                return False
            if int(info.get("aof_rewrite_in_progress", 0)) or \
                    int(info.get("aof_rewrite_scheduled", 0)):
                return False
            if not int(self.client.get(ERASURES_KEY) or 0):
                return False
            if not self.client.set(LOCK_KEY, "1", nx=True,
                                   ex=max(1, round(self.interval_s))):
                return False
            # Erasures from now on are for the next rewrite (this one's snapshot may
            # predate them); those before are all in it.
            self.client.set(ERASURES_KEY, 0)
            self.client.bgrewriteaof()
        except redis.ResponseError as exc:
            if "already in progress" in str(exc).lower():
                return False
            self.disabled = True
            log.warning("Redis refused BGREWRITEAOF (%s): the append-only file is not "
                        "compacted by the service; erased images stay in it (sealed) until "
                        "Redis rewrites it itself", exc)
            return False
        log.info("append-only file rewrite requested (erased images leave the disk)")
        return True
