"""Challenges in Redis: issued to an API key, answered once, by one job, in time.

Key ``liveness:challenge:<id>`` (hash: owner, colours as JSON ``#rrggbb`` list,
step_ms, created_ts, job) lives ``challenge_ttl_s``. :meth:`ChallengeStore.claim`
binds it to a job atomically (one job per challenge, ever); another key's challenge is
indistinguishable from an unknown one, so ids leak nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from common.challenge.sequence import new_colours, parse_hex, to_hex
from common.config import Settings
from common.errors import LivenessError

PREFIX = "liveness:challenge:"
#: A challenge answered sooner than this share of its colours × step cannot have been
#: shown and filmed (the service's own clocks; 0.8 leaves room for theirs to differ).
MIN_ANSWER_SHARE = 0.8

# Claim (KEYS[1] challenge; ARGV: owner, job id): 'unknown' | 'used' | the record (JSON).
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if (not owner) or owner ~= ARGV[1] then return 'unknown' end
if redis.call('HSETNX', KEYS[1], 'job', ARGV[2]) == 0 then return 'used' end
return cjson.encode({colours = redis.call('HGET', KEYS[1], 'colours'),
                     step_ms = redis.call('HGET', KEYS[1], 'step_ms'),
                     created_ts = redis.call('HGET', KEYS[1], 'created_ts')})
"""
# Release (KEYS[1]; ARGV[1] job id): the job's submission failed; answerable again.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'job') == ARGV[1] then redis.call('HDEL', KEYS[1], 'job') end
return 1
"""


class ChallengeError(LivenessError):
    """A job's challenge cannot be used (HTTP 422 unless a subclass says otherwise)."""

    code = "invalid_challenge"


class UnknownChallengeError(ChallengeError):
    code = "unknown_challenge"


class ChallengeUsedError(ChallengeError):
    code = "challenge_used"
    http_status = 409


class ChallengeTooSoonError(ChallengeError):
    code = "challenge_answered_too_soon"


class FrameTooLargeError(ChallengeError):
    code = "frame_too_large"
    http_status = 413


@dataclass(frozen=True)
class Challenge:
    """An issued challenge: ``colours`` sRGB (R, G, B) 0-255, shown ``step_ms`` each."""

    id: str
    colours: tuple[tuple[int, int, int], ...]
    step_ms: int
    created_ts: float
    expires_ts: float

    def public(self) -> dict[str, Any]:
        """What ``POST /v1/challenges`` answers."""
        return {"id": self.id, "colours": [to_hex(c) for c in self.colours],
                "step_ms": self.step_ms, "frames": len(self.colours),
                "expires_at": datetime.fromtimestamp(self.expires_ts, UTC)
                .isoformat().replace("+00:00", "Z")}

    def job_field(self) -> dict[str, Any]:
        """What the job record keeps (``challenge``)."""
        return {"id": self.id, "colours": [to_hex(c) for c in self.colours],
                "step_ms": self.step_ms}


class ChallengeStore:
    """Issue and claim challenges (``settings``: length, step, TTL)."""

    def __init__(self, redis_client: redis.Redis, settings: Settings) -> None:
        self.redis = redis_client
        self.settings = settings
        self._claim = redis_client.register_script(_CLAIM)
        self._release = redis_client.register_script(_RELEASE)

    def issue(self, owner: str) -> Challenge:
        """A new challenge for ``owner`` (128-bit random id, random colours)."""
        s = self.settings
        now = time.time()
        challenge = Challenge(id=secrets.token_urlsafe(16),
                              colours=tuple(new_colours(s.challenge_length)),
                              step_ms=s.challenge_step_ms, created_ts=now,
                              expires_ts=now + s.challenge_ttl_s)
        key = PREFIX + challenge.id
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"owner": owner, "step_ms": challenge.step_ms,
                                "created_ts": repr(now),
                                "colours": json.dumps([to_hex(c) for c in challenge.colours])})
        pipe.expire(key, s.challenge_ttl_s)
        pipe.execute()
        return challenge

    def claim(self, owner: str, challenge_id: str, job_id: str,
              now: float | None = None) -> Challenge:
        """Bind ``owner``'s challenge to ``job_id``; raises :class:`UnknownChallengeError`
        (unknown, expired or another key's), :class:`ChallengeUsedError` (already
        answered) or :class:`ChallengeTooSoonError` (answered faster than its colours can
        be shown: released again)."""
        if not (0 < len(challenge_id) <= 64 and challenge_id.isascii()
                and challenge_id.replace("-", "").replace("_", "").isalnum()):
            raise UnknownChallengeError("'challenge' is not a challenge id (POST "
                                        "/v1/challenges issues them)")
        raw = self._claim(keys=[PREFIX + challenge_id], args=[owner, job_id])
        raw = raw.decode() if isinstance(raw, bytes) else raw
        if raw == "unknown":
            raise UnknownChallengeError(
                f"no challenge {challenge_id!r} for this API key: it expired (they live "
                f"{self.settings.challenge_ttl_s} s), or was never issued to it")
        if raw == "used":
            raise ChallengeUsedError(f"challenge {challenge_id!r} was already answered by "
                                     "another job; ask for a new one")
        record = json.loads(raw)
        created = float(record["created_ts"])
        colours = tuple(parse_hex(c) for c in json.loads(record["colours"]))
        step_ms = int(record["step_ms"])
        now = time.time() if now is None else now
        shortest = MIN_ANSWER_SHARE * len(colours) * step_ms / 1000
        if now - created < shortest:
            self.release(challenge_id, job_id)
            raise ChallengeTooSoonError(
                f"challenge {challenge_id!r} was answered {now - created:.2f} s after it "
                f"was issued; its {len(colours)} colours of {step_ms} ms each cannot have "
                f"been shown and filmed in less than {shortest:.2f} s")
        return Challenge(id=challenge_id, colours=colours, step_ms=step_ms,
                         created_ts=created, expires_ts=created + self.settings.challenge_ttl_s)

    def release(self, challenge_id: str, job_id: str) -> None:
        """Make a challenge claimed by ``job_id`` answerable again (its submission failed)."""
        self._release(keys=[PREFIX + challenge_id], args=[job_id])
