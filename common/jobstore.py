"""The job store: images, job records, per-test outcomes, batches — all in Redis.

Keys (prefix ``liveness:``):

- ``image:<id>``            the uploaded bytes, sealed (AES-256-GCM under
                            ``LIVENESS_IMAGE_KEYS``, :mod:`common.sealing`), stored once,
                            TTL ``image_ttl_s``; deleted when the job ends. Never in task
                            messages or logs, and never on disk unsealed.
- ``job:<id>``              hash: owner, status (queued|running|done|failed), created_at,
                            updated_at (ISO 8601 UTC), tests (JSON list), callback_url,
                            batch_id, result (JSON), error, result_ttl_s, deadline_s
                            (the submitting service's job_deadline_s), idem_key,
                            face (JSON of the face stage's ``FaceDetection``, once it ran),
                            pending ("1" while its submission is not confirmed, below).
- ``image:<id>:frames``     a challenge's frames (length-prefixed, sealed like the image),
                            same TTL, deleted with it; only for jobs answering a
                            colour-flash challenge (the record's ``challenge``: id,
                            colours, step_ms; ``challenge_result``: the face stage's
                            :class:`common.result.ChallengeCheck`).
- ``job:<id>:outcomes``     hash: test name → JSON of a ``TestOutcome``.
- ``job:<id>:started``      hash: stage (``face`` or a test) → when its task first started.
- ``deadlines``             sorted set: job id → when its deadline is due: submission +
                            ``job_start_timeout_s``, then first start + ``job_deadline_s``;
                            swept by the fusion pool (no message waits in a worker).
- ``job:<id>:final``        SET-NX guard so the chord callback and the deadline task
                            finalise a job once.
- ``expired:<id>``          tombstone (owner) outliving the result by 7 days, so a GET
                            after expiry answers ``expired`` instead of 404.
- ``idem:<owner>:<key>``    idempotency key → ``<job id>:<request fingerprint>`` (TTL =
                            result TTL).
- ``batch:<id>``            hash: owner, created_at, items (JSON list of
                            ``{"name", "job_id", "error"}``).
- ``batch:<id>:deleted``    set: ids of the batch's jobs erased on request (shown
                            ``deleted``, not ``expired``).

Completion is announced with ``PUBLISH liveness:done:<id> <status>``; :meth:`wait_done`
subscribes before it reads the status, so a notification is never missed. The face
stage's result is announced the same way on ``liveness:face:<id>`` (:meth:`wait_face`).

Submissions are all-or-nothing (:meth:`create_job` with ``pending=True``, then
:meth:`confirm_job`): a job is written *pending*, every key with a short TTL and a
deadline ``submit_grace_s`` away; only once its tasks are enqueued does the submitter
confirm it (``confirmed:<id>`` is announced; the keys get their real TTLs and the
deadline becomes the start timeout). A submission that failed on the way — Redis or
the broker refusing writes, so that even deleting what was written fails — leaves a
pending job that the fusion pool's deadline sweep erases at its grace deadline
(:meth:`erase_pending`): no record, image, deadline or idempotency key stays, and it
never fails as ``no_worker``. Workers run a pending job's tasks only once it is
confirmed (:meth:`wait_confirmed`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from common.aof import ERASURES_KEY
from common.config import Settings, get_settings
from common.errors import LivenessError
from common.notifications import ChannelWatcher
from common.outages import patient_retry, tolerant_connection_class
from common.sealing import ImageSealer

PREFIX = "liveness:"
TOMBSTONE_TTL_S = 7 * 86400
TERMINAL = ("done", "failed")

# A stage starts: note it (KEYS[3] hash: stage → time); the first one moves the job
# queued → running and its deadline to started + job_deadline_s (KEYS[2] sorted set).
# Never back from a terminal state (a late test must not undo "done").
_MARK_RUNNING = """
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == 'done' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[2])
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'updated_at', ARGV[1], 'started_ts', ARGV[2])
  local deadline = tonumber(redis.call('HGET', KEYS[1], 'deadline_s') or ARGV[3])
  redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[2]) + deadline, ARGV[5])
  return 1
end
return 0
"""
# Claim due deadlines: each id's score moves to now + lease, so another sweep takes it
# again only if this one's deadline task never finished the job.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""
# Record the face stage's result (ARGV[3]: 'face', or 'face_error' when the stage ran
# and failed) only while the job is alive and unfinished; wake the tests waiting for it.
_PUT_FACE = """
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == 'done' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[1], 'updated_at', ARGV[2])
redis.call('PUBLISH', KEYS[2], '1')
return 1
"""
# Record an outcome only while the job is alive and unfinished; keep the job's TTL.
_PUT_OUTCOME = """
local status = redis.call('HGET', KEYS[1], 'status')
if (not status) or status == 'done' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
"""

# Confirm a pending submission (KEYS: job, deadlines, image, tombstone, confirmed
# channel, challenge frames; ARGV: job id,
# grace deadline, start deadline, image TTL, record TTL, tombstone TTL, idempotency TTL):
# only while the sweep has not claimed its grace deadline (the score is still at most
# that deadline; a claim moves it later), so a job is either confirmed or erased.
_CONFIRM = """
local pending = redis.call('HGET', KEYS[1], 'pending')
if not pending then return redis.call('EXISTS', KEYS[1]) end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if (not score) or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], 'pending')
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[6], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[6])
local idem = redis.call('HGET', KEYS[1], 'idem_key')
if idem and idem ~= '' then redis.call('EXPIRE', idem, ARGV[7]) end
redis.call('PUBLISH', KEYS[5], '1')
return 1
"""
# Erase a pending job (KEYS: the job's keys, the job record first; ARGV: job id,
# deadlines key, idempotency key or ''): every key, its deadline, and its idempotency
# key (the record's, else ARGV[3]) when that still names this job. A job whose record
# is gone (never written, or expired) loses its deadline and that idempotency key.
# 0: the job is confirmed and kept.
_ERASE_PENDING = """
local exists = redis.call('EXISTS', KEYS[1])
local idem = ARGV[3]
if exists == 1 then
  if not redis.call('HGET', KEYS[1], 'pending') then return 0 end
  idem = redis.call('HGET', KEYS[1], 'idem_key') or idem
  redis.call('DEL', unpack(KEYS))
  redis.call('INCR', ARGV[4])
end
if idem ~= '' then
  local held = redis.call('GET', idem)
  if held and string.sub(held, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
    redis.call('DEL', idem)
  end
end
redis.call('ZREM', ARGV[2], ARGV[1])
return 1
"""


class IdempotencyConflictError(LivenessError):
    """An ``Idempotency-Key`` reused with another image, tests or callback URL (409)."""

    code = "idempotency_conflict"
    http_status = 409


def now_iso(ts: float | None = None) -> str:
    """UTC ISO 8601 with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A job or batch id: uuid4 hex (unguessable; ownership is still checked)."""
    return uuid.uuid4().hex


#: Redis hash: ``"<test>:<outcome>"`` → count; outcome ``ok``, ``error`` or ``missing``.
OUTCOMES_METRICS_KEY = "liveness:metrics:outcomes"
#: Redis sorted set: job id → when its deadline is due (Unix time).
DEADLINES_KEY = "liveness:deadlines"
#: Redis hash: pipeline stage → runs (``face_detections``: face-stage detections).
STAGES_METRICS_KEY = "liveness:metrics:stages"
#: Redis hash: final job status (``done``/``failed``) or decision (``decision:live`` …) → count.
JOBS_METRICS_KEY = "liveness:metrics:jobs"


class JobStore:
    """Typed access to the Redis keys above; one instance per process is enough."""

    def __init__(self, redis_client: redis.Redis, settings: Settings | None = None,
                 watcher: ChannelWatcher | None = None) -> None:
        self.redis = redis_client
        self.settings = settings or get_settings()
        #: Wakes :meth:`wait_done` from one shared subscription (the gateway's
        #: long-polls); without it each wait subscribes on a connection of its own.
        self.watcher = watcher
        self._mark_running = self.redis.register_script(_MARK_RUNNING)
        self._put_outcome = self.redis.register_script(_PUT_OUTCOME)
        self._put_face = self.redis.register_script(_PUT_FACE)
        self._claim_due = self.redis.register_script(_CLAIM_DUE)
        self._confirm = self.redis.register_script(_CONFIRM)
        self._erase_pending = self.redis.register_script(_ERASE_PENDING)
        #: Images and explanation images are stored sealed (:mod:`common.sealing`);
        #: without ``LIVENESS_IMAGE_KEYS`` the store refuses to exist (SettingsError).
        self.sealer = ImageSealer.from_setting(self.settings.image_keys)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, patient: bool = False) -> JobStore:
        """Connect to ``settings.redis_url`` with short timeouts.

        ``patient`` (the workers): a lost connection, and Redis refusing writes
        (``MISCONF``, ``NOREPLICAS``, ``OOM`` …: :mod:`common.outages`), are retried with
        exponential backoff for about 35 s, so a Redis restart or a short write outage is
        waited out instead of failing the task; the gateway stays impatient and answers
        503 at once.
        """
        settings = settings or get_settings()
        options: dict[str, Any] = {}
        if patient:
            options = {"retry": patient_retry()}
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=30,
            connection_class=tolerant_connection_class(settings.redis_url),
            **options,
        )
        return cls(client, settings)

    # --- key names -------------------------------------------------------------------
    @staticmethod
    def image_key(job_id: str) -> str:
        return f"{PREFIX}image:{job_id}"

    @staticmethod
    def frames_key(job_id: str) -> str:
        return f"{PREFIX}image:{job_id}:frames"

    @staticmethod
    def job_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    @staticmethod
    def outcomes_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}:outcomes"

    @staticmethod
    def explanations_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}:explanations"

    @staticmethod
    def started_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}:started"

    @staticmethod
    def final_key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}:final"

    @staticmethod
    def expired_key(job_id: str) -> str:
        return f"{PREFIX}expired:{job_id}"

    @staticmethod
    def idem_key(owner: str, key: str) -> str:
        return f"{PREFIX}idem:{owner}:{key}"

    @staticmethod
    def batch_key(batch_id: str) -> str:
        return f"{PREFIX}batch:{batch_id}"

    @staticmethod
    def done_channel(job_id: str) -> str:
        return f"{PREFIX}done:{job_id}"

    @staticmethod
    def face_channel(job_id: str) -> str:
        return f"{PREFIX}face:{job_id}"

    @staticmethod
    def confirmed_channel(job_id: str) -> str:
        return f"{PREFIX}confirmed:{job_id}"

    def job_keys(self, job_id: str) -> list[str]:
        """Every key that belongs to one job (what GDPR erasure deletes)."""
        return [
            self.image_key(job_id),
            self.frames_key(job_id),
            self.job_key(job_id),
            self.outcomes_key(job_id),
            self.explanations_key(job_id),
            self.started_key(job_id),
            self.final_key(job_id),
            self.expired_key(job_id),
        ]

    # --- jobs ------------------------------------------------------------------------
    def claim_idempotency(self, owner: str, key: str, job_id: str,
                          fingerprint: str = "", ttl_s: int | None = None) -> str | None:
        """Reserve ``key`` for ``job_id``; the job id already holding it, or ``None``.

        The key stores ``<job id>:<fingerprint>`` of the request that claimed it; a
        later claim with another fingerprint raises ``IdempotencyConflictError``. It
        lives ``ttl_s`` seconds (default: the result TTL; a pending submission's is
        short, and :meth:`confirm_job` extends it).
        """
        name = self.idem_key(owner, key)
        value = f"{job_id}:{fingerprint}"
        if self.redis.set(name, value, nx=True, ex=ttl_s or self.settings.result_ttl_s):
            return None
        existing = self.redis.get(name)
        if existing is None:
            return None
        held_job, _, held_fingerprint = existing.decode().partition(":")
        if fingerprint and held_fingerprint and held_fingerprint != fingerprint:
            raise IdempotencyConflictError(
                "this Idempotency-Key was used for a different request (image, tests or "
                "callback_url); use a new key for a new request")
        return held_job

    def create_job(
        self,
        job_id: str,
        owner: str,
        image: bytes,
        tests: Iterable[str],
        callback_url: str | None = None,
        batch_id: str | None = None,
        idem_key: str | None = None,
        explain: bool = False,
        profile: str = "",
        pending: bool = False,
        created: float | None = None,
        challenge: dict[str, Any] | None = None,
        frames: list[bytes] | None = None,
    ) -> dict[str, Any]:
        """Store the image (with TTL), the queued job record and its expiry tombstone.

        ``explain``: the tests that can explain their score store an explanation image
        (:meth:`put_explanation`), kept no longer than the job's result. ``pending``: the
        submission is not confirmed yet — every key lives :meth:`pending_ttl_s` and the
        deadline is ``created`` (Unix time, default now) + ``submit_grace_s``, until
        :meth:`confirm_job`; workers do not run it before. ``challenge`` (JSON-able)
        and ``frames`` (encoded images, in order): a colour-flash challenge's answer.
        """
        s = self.settings
        created = time.time() if created is None else created
        record = {
            "owner": owner,
            "status": "queued",
            "created_at": now_iso(created),
            "updated_at": now_iso(created),
            "created_ts": repr(created),
            "tests": json.dumps(list(tests)),
            "callback_url": callback_url or "",
            "batch_id": batch_id or "",
            "idem_key": idem_key or "",
            "explain": "1" if explain else "",
            "profile": profile,
            "explanations": "[]",
            "result_ttl_s": str(s.result_ttl_s),
            "deadline_s": str(s.job_deadline_s),
            "result": "",
            "error": "",
        }
        if pending:
            record["pending"] = "1"
        if challenge is not None:
            record["challenge"] = json.dumps(challenge)
        image_ttl, record_ttl, tombstone_ttl = self._ttls()
        deadline = created + s.job_start_timeout_s
        if pending:
            image_ttl = record_ttl = tombstone_ttl = self.pending_ttl_s()
            deadline = self.grace_deadline(created)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.image_key(job_id), self.sealer.seal(image, self.image_key(job_id)),
                 ex=image_ttl)
        if frames:
            packed = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
            pipe.set(self.frames_key(job_id),
                     self.sealer.seal(packed, self.frames_key(job_id)), ex=image_ttl)
        pipe.hset(self.job_key(job_id), mapping=record)
        pipe.expire(self.job_key(job_id), record_ttl)
        pipe.set(self.expired_key(job_id), owner, ex=tombstone_ttl)
        pipe.zadd(DEADLINES_KEY, {job_id: deadline})
        pipe.execute()
        return self._decode(record)

    def _ttls(self) -> tuple[int, int, int]:
        """TTLs (s) of a confirmed job's image, record and expiry tombstone."""
        s = self.settings
        # The record must outlive the deadline even for a slow queue; fusion resets it.
        record_ttl = s.result_ttl_s + s.job_deadline_s + s.image_ttl_s
        return s.image_ttl_s, record_ttl, record_ttl + TOMBSTONE_TTL_S

    def pending_ttl_s(self) -> int:
        """TTL (s) of every key of a pending submission: twice its grace, at least 60 s,
        so what a failed submission wrote goes even when no sweep erases it."""
        return max(60, int(2 * self.settings.submit_grace_s) + 1)

    def grace_deadline(self, created: float) -> float:
        """When a pending job submitted at ``created`` (Unix time) is erased unconfirmed."""
        return created + self.settings.submit_grace_s

    def confirm_job(self, job_id: str, created: float) -> bool:
        """Confirm a pending submission (created at ``created``, Unix time) once its
        tasks are enqueued: real TTLs, the start deadline, ``confirmed:<id>`` announced.

        False when it can no longer be confirmed — the sweep claimed its grace deadline
        or erased it — and the submission must be reported failed. True for a job that
        was never pending.
        """
        s = self.settings
        image_ttl, record_ttl, tombstone_ttl = self._ttls()
        keys = [self.job_key(job_id), DEADLINES_KEY, self.image_key(job_id),
                self.expired_key(job_id), self.confirmed_channel(job_id),
                self.frames_key(job_id)]
        args = [job_id, repr(self.grace_deadline(created)),
                repr(created + s.job_start_timeout_s), image_ttl, record_ttl, tombstone_ttl,
                s.result_ttl_s]
        return bool(self._confirm(keys=keys, args=args))

    def erase_pending(self, job_id: str, idem_key: str | None = None) -> bool:
        """Erase a job whose submission was never confirmed: every key, its deadline and
        its idempotency key (the record's, else ``idem_key``; only while it still names
        this job). True when erased or already gone; False for a confirmed job (kept)."""
        keys = self.job_keys(job_id)
        keys.remove(self.job_key(job_id))
        return bool(self._erase_pending(keys=[self.job_key(job_id), *keys],
                                        args=[job_id, DEADLINES_KEY, idem_key or "",
                                              ERASURES_KEY]))

    def wait_confirmed(self, job_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The job's record once it is no longer pending, else ``None`` (it was erased,
        or is still pending after ``timeout_s``: a submission that failed)."""
        found: list[dict[str, Any] | None] = [None]

        def settled() -> bool:
            raw = self.redis.hgetall(self.job_key(job_id))
            if not raw:
                return True
            record = self._decode(raw)
            if record.get("pending"):
                return False
            found[0] = record
            return True

        self._wait(self.confirmed_channel(job_id), settled, timeout_s)
        return found[0]

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The decoded job record, or ``None`` when unknown, expired or erased."""
        raw = self.redis.hgetall(self.job_key(job_id))
        return self._decode(raw) if raw else None

    def expired_owner(self, job_id: str) -> str | None:
        """The owner of a job whose result expired (tombstone), else ``None``."""
        if self.redis.exists(self.job_key(job_id)):
            return None
        owner = self.redis.get(self.expired_key(job_id))
        return owner.decode() if owner is not None else None

    def get_image(self, job_id: str) -> bytes | None:
        """The job's uploaded bytes (unsealed), ``None`` once deleted or expired.

        Raises :class:`common.sealing.UnsealError` when the stored value does not open
        with ``LIVENESS_IMAGE_KEYS``.
        """
        sealed = self.redis.get(self.image_key(job_id))
        return None if sealed is None else self.sealer.open(sealed, self.image_key(job_id))

    def get_frames(self, job_id: str) -> list[bytes] | None:
        """The job's challenge frames (unsealed, in order); ``None`` when it has none or
        they are gone. Raises :class:`common.sealing.UnsealError` like :meth:`get_image`."""
        sealed = self.redis.get(self.frames_key(job_id))
        if sealed is None:
            return None
        packed = self.sealer.open(sealed, self.frames_key(job_id))
        frames, at = [], 0
        while at < len(packed):
            size = int.from_bytes(packed[at:at + 4], "big")
            frames.append(packed[at + 4:at + 4 + size])
            at += 4 + size
        return frames

    def delete_image(self, job_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.image_key(job_id), self.frames_key(job_id))
        pipe.incr(ERASURES_KEY)
        pipe.execute()

    def mark_running(self, job_id: str, stage: str) -> bool:
        """Note that ``stage`` (``face`` or a test) started; the first start moves the job
        queued → running and its deadline to now + its ``deadline_s`` (the submitting
        service's ``job_deadline_s``). False when the job was already running, or is
        finished or gone."""
        now = time.time()
        keys = [self.job_key(job_id), DEADLINES_KEY, self.started_key(job_id)]
        args = [now_iso(now), repr(now), self.settings.job_deadline_s, stage, job_id]
        return bool(self._mark_running(keys=keys, args=args))

    def started_stages(self, job_id: str) -> set[str]:
        """The stages (``face``, test names) whose task started at least once."""
        return {k.decode() for k in self.redis.hkeys(self.started_key(job_id))}

    def claim_due(self, now: float | None = None, lease_s: float = 30.0,
                  limit: int = 100) -> list[str]:
        """Job ids whose deadline is due; each is leased for ``lease_s`` seconds."""
        now = time.time() if now is None else now
        ids = self._claim_due(keys=[DEADLINES_KEY], args=[now, now + lease_s, limit])
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def put_face(self, job_id: str, face: dict[str, Any]) -> bool:
        """Record the face stage's result; ignored (False) once the job finished or vanished."""
        return bool(self._put_face(keys=[self.job_key(job_id), self.face_channel(job_id)],
                                   args=[json.dumps(face), now_iso(), "face"]))

    def put_challenge_result(self, job_id: str, check: dict[str, Any]) -> bool:
        """Record the challenge check (before :meth:`put_face`, which wakes the tests)."""
        return bool(self._put_face(keys=[self.job_key(job_id), self.face_channel(job_id)],
                                   args=[json.dumps(check), now_iso(), "challenge_result"]))

    def put_face_error(self, job_id: str, error: str) -> bool:
        """Record that the face stage ran and failed (``code: message``)."""
        return bool(self._put_face(keys=[self.job_key(job_id), self.face_channel(job_id)],
                                   args=[error, now_iso(), "face_error"]))

    def count_stage(self, stage: str, n: int = 1) -> None:
        """Count ``n`` runs of a pipeline stage (``/metrics``: ``liveness_stage_runs``)."""
        self.redis.hincrby(STAGES_METRICS_KEY, stage, n)

    def put_outcome(self, job_id: str, test: str, outcome: dict[str, Any]) -> bool:
        """Record one test's outcome; ignored (False) once the job finished or vanished."""
        keys = [self.job_key(job_id), self.outcomes_key(job_id)]
        return bool(self._put_outcome(keys=keys, args=[test, json.dumps(outcome)]))

    def put_explanation(self, job_id: str, test: str, png: bytes) -> bool:
        """Store test ``test``'s explanation image (PNG bytes) of a job that asked for one
        and is not finished; it expires with the job record (and with the result, once
        :meth:`finish` starts the result TTL). False when not stored."""
        record = self.get_job(job_id)
        if record is None or not record.get("explain") or record["status"] in TERMINAL:
            return False
        ttl = self.redis.ttl(self.job_key(job_id))
        if ttl <= 0:
            return False
        names = sorted({*record.get("explanations", []), test})
        pipe = self.redis.pipeline(transaction=True)
        context = f"{self.explanations_key(job_id)}:{test}"
        pipe.hset(self.explanations_key(job_id), test, self.sealer.seal(png, context))
        pipe.expire(self.explanations_key(job_id), ttl)
        pipe.hset(self.job_key(job_id), "explanations", json.dumps(names))
        pipe.execute()
        return True

    def get_explanation(self, job_id: str, test: str) -> bytes | None:
        """The stored explanation PNG of ``test`` for ``job_id`` (unsealed), or ``None``."""
        sealed = self.redis.hget(self.explanations_key(job_id), test)
        context = f"{self.explanations_key(job_id)}:{test}"
        return None if sealed is None else self.sealer.open(sealed, context)

    def get_outcomes(self, job_id: str) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(self.outcomes_key(job_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def claim_finalize(self, job_id: str, hold_s: int) -> bool:
        """SET-NX guard: True for the one caller that may finalise now.

        The guard expires after ``hold_s`` so a fusion worker that died mid-way does not
        block the redelivered message forever; a finished job is recognised by status.
        """
        return bool(self.redis.set(self.final_key(job_id), "1", nx=True, ex=hold_s))

    def release_finalize(self, job_id: str) -> None:
        """Drop the finalize guard (the job was not finished after all)."""
        self.redis.delete(self.final_key(job_id))

    def mark_resent(self, job_id: str, stages: list[str]) -> bool:
        """Record a one-time re-run of ``stages`` and push the deadline back by the job's
        ``deadline_s``; False when the job was re-run once already."""
        if not self.redis.hsetnx(self.job_key(job_id), "resent", ",".join(stages)):
            return False
        deadline_s = float(self.redis.hget(self.job_key(job_id), "deadline_s")
                           or self.settings.job_deadline_s)
        self.redis.zadd(DEADLINES_KEY, {job_id: time.time() + deadline_s})
        return True

    def finish(
        self, job_id: str, status: str, result: dict[str, Any] | None, error: str | None = None
    ) -> None:
        """Write the result, delete the image, start the result TTL and announce it."""
        record = self.get_job(job_id)
        if record is None:
            return
        ttl = int(record.get("result_ttl_s") or self.settings.result_ttl_s)
        now = time.time()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            self.job_key(job_id),
            mapping={
                "status": status,
                "updated_at": now_iso(now),
                "finished_ts": repr(now),
                "result": json.dumps(result) if result is not None else "",
                "error": error or "",
            },
        )
        pipe.delete(self.image_key(job_id), self.frames_key(job_id))
        pipe.incr(ERASURES_KEY)
        for key in (self.job_key(job_id), self.outcomes_key(job_id), self.started_key(job_id),
                    self.final_key(job_id), self.explanations_key(job_id)):
            pipe.expire(key, ttl)
        pipe.zrem(DEADLINES_KEY, job_id)
        if record.get("idem_key"):
            pipe.expire(record["idem_key"], ttl)
        pipe.set(self.expired_key(job_id), record["owner"], ex=ttl + TOMBSTONE_TTL_S)
        pipe.publish(self.done_channel(job_id), status)
        pipe.execute()

    def count_finished(
        self, test_states: dict[str, str], status: str, decision: str | None
    ) -> None:
        """Bump the Prometheus counters the gateway exposes (per test and per job)."""
        pipe = self.redis.pipeline(transaction=False)
        for name, state in test_states.items():
            pipe.hincrby(OUTCOMES_METRICS_KEY, f"{name}:{state}", 1)
        pipe.hincrby(JOBS_METRICS_KEY, status, 1)
        if decision:
            pipe.hincrby(JOBS_METRICS_KEY, f"decision:{decision}", 1)
        pipe.execute()

    def delete_job(self, job_id: str) -> None:
        """Erase every key of the job now (GDPR erasure), idempotency key included."""
        record = self.get_job(job_id)
        keys = self.job_keys(job_id)
        if record and record.get("idem_key"):
            keys.append(record["idem_key"])
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*keys)
        pipe.incr(ERASURES_KEY)
        pipe.zrem(DEADLINES_KEY, job_id)
        pipe.execute()

    def wait_done(self, job_id: str, timeout_s: float) -> None:
        """Block until the job is done/failed/gone or ``timeout_s`` passes."""

        def finished() -> bool:
            status = self.redis.hget(self.job_key(job_id), "status")
            return status is None or status.decode() in TERMINAL

        if self.watcher is not None:
            self.watcher.wait(self.done_channel(job_id), finished, timeout_s)
        else:
            self._wait(self.done_channel(job_id), finished, timeout_s)

    @classmethod
    def done_pattern(cls) -> str:
        """The channels :meth:`wait_done` listens on, as a ``PSUBSCRIBE`` pattern."""
        return cls.done_channel("*")

    def wait_face(self, job_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The face stage's result once stored (``None``: the stage failed, or not within
        ``timeout_s``, or the job is gone)."""
        found: list[dict[str, Any] | None] = [None]

        def stored() -> bool:
            face, error, status = self.redis.hmget(self.job_key(job_id),
                                                   ["face", "face_error", "status"])
            if face:
                found[0] = json.loads(face)
            return (face is not None or error is not None or status is None
                    or status.decode() in TERMINAL)

        self._wait(self.face_channel(job_id), stored, timeout_s)
        return found[0]

    def _wait(self, channel: str, ready: Callable[[], bool], timeout_s: float) -> None:
        """Block until ``ready()`` or ``timeout_s``, woken by a message on ``channel``.

        Subscribes before the first check, so a notification is never missed, and
        re-checks at least every second: robust to a lost message.
        """
        end = time.monotonic() + max(timeout_s, 0.0)
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            while not ready():
                left = end - time.monotonic()
                if left <= 0:
                    return
                pubsub.get_message(timeout=min(left, 1.0))
        finally:
            pubsub.close()

    # --- batches ---------------------------------------------------------------------
    def create_batch(self, batch_id: str, owner: str, items: list[dict[str, Any]]) -> None:
        ttl = self.settings.result_ttl_s + self.settings.job_deadline_s + self.settings.image_ttl_s
        record = {"owner": owner, "created_at": now_iso(), "items": json.dumps(items)}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.batch_key(batch_id), mapping=record)
        pipe.expire(self.batch_key(batch_id), ttl)
        pipe.execute()

    @staticmethod
    def batch_deleted_key(batch_id: str) -> str:
        return f"{PREFIX}batch:{batch_id}:deleted"

    def mark_deleted_in_batch(self, batch_id: str, job_id: str) -> None:
        """Remember that a job of the batch was erased on request (the batch then shows
        it ``deleted``, not ``expired``); kept as long as the batch."""
        ttl = self.redis.ttl(self.batch_key(batch_id))
        if ttl <= 0:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.sadd(self.batch_deleted_key(batch_id), job_id)
        pipe.expire(self.batch_deleted_key(batch_id), ttl)
        pipe.execute()

    def deleted_in_batch(self, batch_id: str) -> set[str]:
        """Ids of the batch's jobs erased on request."""
        return {m.decode() for m in self.redis.smembers(self.batch_deleted_key(batch_id))}

    def delete_batch(self, batch_id: str) -> None:
        """Erase the batch and every job of it now (GDPR erasure)."""
        record = self.get_batch(batch_id)
        for item in (record or {}).get("items", []):
            if item.get("job_id"):
                self.delete_job(item["job_id"])
        self.redis.delete(self.batch_key(batch_id), self.batch_deleted_key(batch_id))

    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(self.batch_key(batch_id))
        if not raw:
            return None
        record = {k.decode(): v.decode() for k, v in raw.items()}
        record["items"] = json.loads(record["items"])
        return record

    # --- helpers ---------------------------------------------------------------------
    @staticmethod
    def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
        record = {
            (k.decode() if isinstance(k, bytes) else k): (
                v.decode() if isinstance(v, bytes) else v
            )
            for k, v in raw.items()
        }
        record["tests"] = json.loads(record.get("tests") or "[]")
        record["explanations"] = json.loads(record.get("explanations") or "[]")
        record["result"] = json.loads(record["result"]) if record.get("result") else None
        record["face"] = json.loads(record["face"]) if record.get("face") else None
        for name in ("challenge", "challenge_result"):
            record[name] = json.loads(record[name]) if record.get(name) else None
        return record
