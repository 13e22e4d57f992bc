"""Images on disk (issue 15.4): a real Redis with append-only persistence in a folder of
its own. The image reaches the AOF only sealed, and once the job is erased, a rewrite
requested by :class:`common.aof.AofCompactor` removes even the sealed bytes."""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cli.processes import free_port, redis_answers, redis_server_argv
from common.aof import ERASURES_KEY, LOCK_KEY, AofCompactor
from common.config import Settings
from common.jobstore import JobStore
from common.sealing import new_key

pytestmark = pytest.mark.integration

IMAGE = b"\xff\xd8\xff\xe0JFIF" + bytes(range(256)) * 64


def files_bytes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()]


def holds(folder: Path, needle: bytes) -> bool:
    return any(needle in data for data in files_bytes(folder))


def wait_until(check, timeout_s: float = 15.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[tuple[redis.Redis, Path]]:
    url = f"redis://127.0.0.1:{free_port()}/0"
    folder = tmp_path / "redis-data"
    proc = subprocess.Popen([*redis_server_argv(url, folder), "--appendfsync", "always"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: redis_answers(url)), "redis-server did not start"
        client = redis.Redis.from_url(url)
        yield client, folder
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_erased_image_leaves_the_append_only_file(persistent_redis) -> None:
    client, folder = persistent_redis
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # private to the service user
    settings = dataclasses.replace(Settings(), image_keys=new_key())
    store = JobStore(client, settings)
    job_id = "sealedjob".ljust(32, "0")
    store.create_job(job_id, "alice", IMAGE, ["quality"])
    sealed = client.get(JobStore.image_key(job_id))
    assert wait_until(lambda: holds(folder, sealed[-64:]))  # persisted, sealed …
    for start in range(0, len(IMAGE) - 32, 211):             # … and never in the clear
        assert not holds(folder, IMAGE[start:start + 32])

    compactor = AofCompactor(client, interval_s=5)
    store.delete_job(job_id)                                 # DELETE /v1/jobs/<id>
    assert holds(folder, sealed[-64:])                       # the AOF still has it …
    assert compactor.tick()                                  # … until the rewrite
    assert wait_until(lambda: not holds(folder, sealed[-64:]) and not holds(folder, b"LVS1"))
    assert store.get_job(job_id) is None
    # One rewrite per interval for the whole fleet: another process finds the lock …
    client.incr(ERASURES_KEY)
    assert client.exists(LOCK_KEY) and not AofCompactor(client, 5).tick()
    client.delete(LOCK_KEY)                                  # … which expires with it
    assert wait_until(lambda: not int(client.info("persistence")["aof_rewrite_in_progress"]))
    assert AofCompactor(client, 5).tick()
    assert not AofCompactor(client, 0).tick()                # 0: compaction off
    # Nothing erased since: no rewrite is asked for.
    client.delete(LOCK_KEY)
    assert wait_until(lambda: not int(client.info("persistence")["aof_rewrite_in_progress"]))
    assert not AofCompactor(client, 5).tick()
