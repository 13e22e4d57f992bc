"""Which Redis errors are an outage — Redis unreachable, or up but refusing writes.

Redis can answer and still refuse every write for a while: a failed snapshot with
``stop-writes-on-bgsave-error`` (``MISCONF``, a full disk), too few replicas for
``min-replicas-to-write`` (``NOREPLICAS``), ``maxmemory`` reached under ``noeviction``
(``OOM``), a replica after a failover (``READONLY``), a replica cut from its master
(``MASTERDOWN``) or a long script (``BUSY``). A refused command is not executed
(a ``MULTI`` transaction is discarded whole), so it is safe to send again once the
refusal ends. redis-py raises these as :class:`redis.exceptions.ResponseError` (or a
subclass) carrying the error's first word in ``status_code`` (redis-py ≥ 8).

- :func:`refuses_writes` recognises such an error;
- :class:`RefusalTolerantConnection` is the connection class of every pool whose
  connections are health-checked: Redis refuses ``PING`` too while it refuses writes
  under ``MISCONF``, and redis-py's health check (a ``PING`` before a command on a
  connection idle for ``health_check_interval``) would otherwise turn a *read* — a
  client polling a finished job — into an error for the whole outage;
- :func:`patient_retry` is the redis-py :class:`~redis.retry.Retry` of the worker pools'
  job store: connection losses *and* refusals are retried with exponential backoff, so a
  task waits out a short outage instead of failing (other server errors — a bug, a
  ``NOSCRIPT`` after a restart — are raised at once).

Redis error replies are documented in the Redis manual ("Redis configuration":
``stop-writes-on-bgsave-error``, ``min-replicas-to-write``, ``maxmemory-policy``).
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

#: First words of Redis error replies that refuse a command for a while (not a bug).
REFUSAL_CODES = frozenset({"MISCONF", "NOREPLICAS", "OOM", "READONLY", "MASTERDOWN", "BUSY"})


def refusal_code(exc: BaseException) -> str | None:
    """The refusal code (``"MISCONF"`` …) of a Redis error reply, else ``None``.

    Looks at ``exc`` and the exceptions it was raised from (kombu wraps the broker's
    errors in its ``OperationalError``). Reads redis-py's ``status_code``; for an error
    without it, the first word of the message, or the word after ``caused error:`` in a
    pipeline's message (``Command # 1 (SET …) of pipeline caused error: MISCONF …``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis.exceptions.ResponseError):
            code = getattr(current, "status_code", None)
            if code is None:
                message = str(current)
                _, marker, rest = message.partition("caused error: ")
                words = (rest if marker else message).split(maxsplit=1)
                code = words[0] if words else None
            return code if code in REFUSAL_CODES else None
        current = current.__cause__ or current.__context__
    return None


def refuses_writes(exc: BaseException) -> bool:
    """True when ``exc`` is Redis refusing a command for now (:data:`REFUSAL_CODES`)."""
    return refusal_code(exc) is not None


def _retryable(exc: Exception) -> bool:
    return not isinstance(exc, redis.exceptions.ResponseError) or refuses_writes(exc)


def patient_retry(retries: int = 20, cap_s: float = 2.0, base_s: float = 0.1) -> Retry:
    """A redis-py ``Retry``: connection errors, timeouts and refusals, exponential backoff.

    ``retries`` attempts after the first, each waiting ``min(cap_s, base_s · 2^n)``
    seconds (the defaults wait out about 35 s). Other ``ResponseError`` s are raised at
    once (``is_retryable``).
    """
    return Retry(ExponentialBackoff(cap=cap_s, base=base_s), retries,
                 supported_errors=(redis.exceptions.ConnectionError,
                                   redis.exceptions.TimeoutError,
                                   redis.exceptions.ResponseError),
                 is_retryable=_retryable)


class _RefusalTolerantPing:
    """Mixin of :class:`RefusalTolerantConnection` and its TLS / Unix-socket siblings."""

    def _send_ping(self) -> None:
        try:
            super()._send_ping()  # type: ignore[misc]
        except redis.exceptions.ResponseError as exc:
            if not refuses_writes(exc):
                raise


class RefusalTolerantConnection(_RefusalTolerantPing, redis.Connection):
    """A :class:`redis.Connection` whose health check counts a refusal as alive.

    redis-py sends ``PING`` before a command when the connection has been idle longer
    than ``health_check_interval`` seconds. While Redis refuses writes after a failed
    snapshot it answers that ``PING`` with ``MISCONF`` (the server's
    ``writeCommandsDeniedByDiskError`` covers ``PING``), so without this a read on an
    idle connection fails for as long as the outage lasts. A refusal reply
    (:data:`REFUSAL_CODES`) proves the connection and the server alive; the command
    itself then runs, or is refused on its own if it is a write. Any other answer, or
    none, fails the check as before (``ConnectionError`` / ``TimeoutError``).
    """


class RefusalTolerantSSLConnection(_RefusalTolerantPing, redis.SSLConnection):
    """:class:`RefusalTolerantConnection` over TLS (``rediss://``)."""


class RefusalTolerantUnixConnection(_RefusalTolerantPing, redis.UnixDomainSocketConnection):
    """:class:`RefusalTolerantConnection` over a Unix socket (``unix://``)."""


def tolerant_connection_class(url: str) -> type[redis.connection.AbstractConnection]:
    """The refusal-tolerant connection class for a Redis URL's scheme.

    Raises ``ValueError`` for a scheme other than ``redis``, ``rediss`` and ``unix``.
    """
    scheme = url.split("://", 1)[0].lower()
    classes = {"redis": RefusalTolerantConnection, "rediss": RefusalTolerantSSLConnection,
               "unix": RefusalTolerantUnixConnection}
    if scheme not in classes:
        raise ValueError(f"Redis URL must start with redis://, rediss:// or unix://: {url!r}")
    return classes[scheme]
