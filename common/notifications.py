"""One Redis pub/sub connection per process that wakes every waiter of a channel.

A long-poll (``GET /v1/jobs/<id>?wait=N``) waits for ``PUBLISH liveness:done:<id>``.
Subscribing once per waiting request would hold one Redis connection per long-poll —
1,000 long-polls, 1,000 connections per gateway process, beyond redis-py's pool. A
:class:`ChannelWatcher` instead pattern-subscribes once (``PSUBSCRIBE
liveness:done:*``) on a background thread (a greenlet under gevent) and sets the
events of the waiters registered for the channel a message arrived on: the classic
shared-subscriber design.

No notification is missed: a waiter registers before its first check of the job, and
whenever the subscription is (re)established every waiter is woken to check again
(a message published while the connection was down is lost, the state it announced is
not); besides, each waiter checks again every ``recheck_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)


class ChannelWatcher:
    """Waiters of channels matching ``pattern`` (a Redis glob), woken by one subscriber.

    ``client``'s connection pool lends the subscriber its one connection. The
    subscriber starts with the first :meth:`wait` (after a fork: never in a parent
    process that only builds the app) and reconnects with backoff (0.1 s doubling to
    5 s) when the connection is lost.
    """

    def __init__(self, client: redis.Redis, pattern: str, recheck_s: float = 5.0) -> None:
        self.client = client
        self.pattern = pattern
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        #: Set while the pattern subscription is active.
        self.subscribed = threading.Event()

    def wait(self, channel: str, ready: Callable[[], bool], timeout_s: float) -> None:
        """Return once ``ready()`` or after ``timeout_s`` seconds, woken by a message on
        ``channel`` (which must match the pattern). ``ready()``'s errors propagate."""
        end = time.monotonic() + max(timeout_s, 0.0)
        self._start()
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(channel, set()).add(event)
        try:
            while not ready():
                left = end - time.monotonic()
                if left <= 0:
                    return
                event.wait(min(left, self.recheck_s))
                event.clear()
        finally:
            with self._lock:
                waiting = self._waiters.get(channel)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[channel]

    def waiting(self) -> int:
        """How many waiters are registered now."""
        with self._lock:
            return sum(len(events) for events in self._waiters.values())

    def close(self) -> None:
        """Stop the subscriber (within about a second); waiters fall back to re-checks."""
        self._closed.set()

    def _start(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, daemon=True,
                                                name=f"watch {self.pattern}")
                self._thread.start()

    def _wake(self, channel: str | None = None) -> None:
        """Set the events of ``channel``'s waiters (every waiter when ``None``)."""
        with self._lock:
            events = ([e for group in self._waiters.values() for e in group]
                      if channel is None else list(self._waiters.get(channel, ())))
        for event in events:
            event.set()

    def _listen(self) -> None:
        backoff = 0.1
        while not self._closed.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(self.pattern)
                pubsub.get_message(timeout=1.0)  # the subscription's confirmation
                self.subscribed.set()
                backoff = 0.1
                self._wake()  # check again: a message may have gone while unsubscribed
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message["type"] == "pmessage":
                        channel = message["channel"]
                        self._wake(channel.decode() if isinstance(channel, bytes)
                                   else channel)
            except (redis.RedisError, OSError) as exc:
                self.subscribed.clear()
                if self._closed.is_set():
                    break
                log.warning("subscription to %s lost (%s: %s); retrying in %.1f s",
                            self.pattern, type(exc).__name__, exc, backoff)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()
        self.subscribed.clear()
