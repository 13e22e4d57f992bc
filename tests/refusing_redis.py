"""A throw-away ``redis-server`` that can be made to refuse writes, as production ones do.

Three real causes, each answered by Redis with its own error to every write (reads and
``PUBLISH`` still work):

- ``misconf``: a snapshot that cannot be written with ``stop-writes-on-bgsave-error``
  (a full disk). The server snapshots into a folder where ``dump.rdb`` is a directory,
  so ``BGSAVE`` fails on its final rename (as root too) and Redis answers ``MISCONF``;
  removing that directory and saving again ends it, as freeing the disk would.
- ``noreplicas``: ``min-replicas-to-write 1`` without a replica (``NOREPLICAS``).
- ``oom``: ``maxmemory`` 1 byte under ``noeviction`` (``OOM``).

The server listens on a free loopback port with no persistence of its own beyond the
snapshot folder; :meth:`RefusingRedis.stop` removes it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from cli.processes import LogSink, ManagedProcess, free_port

KINDS = ("misconf", "noreplicas", "oom")


class RefusingRedis:
    """``redis-server`` on a free port whose writes can be refused and accepted again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.sink = LogSink(folder / "redis.log")
        # One save point, far away: snapshots happen only when asked (BGSAVE), but the
        # server counts as "configured to save", so a failed one stops writes.
        self.process = ManagedProcess(
            "redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                      "--save", "3600 1", "--appendonly", "no", "--dir", str(self.data)],
            sink=self.sink)
        if not self.sink.wait_for("Ready to accept connections", 15):
            raise RuntimeError(f"redis-server did not start:\n{self.sink.tail()}")
        self.client = redis.Redis(port=self.port, socket_connect_timeout=2, socket_timeout=5)
        self.refusing: str | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def refuse_writes(self, kind: str = "misconf") -> None:
        """From now on every write is refused with ``kind``'s error (:data:`KINDS`)."""
        if kind == "misconf":
            (self.data / "dump.rdb" / "in-the-way").mkdir(parents=True, exist_ok=True)
            self._save_and_wait("err")
        elif kind == "noreplicas":
            self.client.config_set("min-replicas-to-write", 1)
        elif kind == "oom":
            self.client.config_set("maxmemory-policy", "noeviction")
            self.client.config_set("maxmemory", 1)
        else:
            raise ValueError(f"unknown refusal {kind!r}; one of {KINDS}")
        self.refusing = kind

    def accept_writes(self) -> None:
        """End the refusal (the disk freed and a snapshot written, a replica back …)."""
        if self.refusing == "misconf":
            shutil.rmtree(self.data / "dump.rdb", ignore_errors=True)
            self._save_and_wait("ok")
        elif self.refusing == "noreplicas":
            self.client.config_set("min-replicas-to-write", 0)
        elif self.refusing == "oom":
            self.client.config_set("maxmemory", 0)
        self.refusing = None

    def _save_and_wait(self, status: str, timeout_s: float = 10.0) -> None:
        """BGSAVE and wait until the last save's status is ``status`` (``ok``/``err``)."""
        self.client.bgsave()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            info = self.client.info("persistence")
            if not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == status:
                return
            time.sleep(0.05)
        raise RuntimeError(f"BGSAVE did not end with status {status!r}:\n{self.sink.tail()}")

    def stop(self) -> None:
        self.client.close()
        self.process.stop()
