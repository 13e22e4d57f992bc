"""Which Redis errors are outages (``common/outages.py``) and the settings of issue 15."""

from __future__ import annotations

import pytest
import redis
from kombu.exceptions import OperationalError

from common.config import Settings, SettingsError
from common.outages import patient_retry, refusal_code, refuses_writes

MISCONF = ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable "
           "to persist to disk.")


@pytest.mark.parametrize(("error", "code"), [
    (redis.exceptions.ResponseError("Redis is configured …", status_code="MISCONF"),
     "MISCONF"),
    (redis.exceptions.ResponseError("Not enough good replicas to write.",
                                    status_code="NOREPLICAS"), "NOREPLICAS"),
    (redis.exceptions.OutOfMemoryError("command not allowed", status_code="OOM"), "OOM"),
    (redis.exceptions.ReadOnlyError("You can't write against a read only replica.",
                                    status_code="READONLY"), "READONLY"),
    # Re-raised by other code without redis-py's status_code: read from the message.
    (redis.exceptions.ResponseError(MISCONF), "MISCONF"),
    (redis.exceptions.ResponseError(f"Command # 1 (SET liveness:image:x...) of pipeline "
                                    f"caused error: {MISCONF}"), "MISCONF"),
    # Not refusals: bugs, or a script Redis lost on a restart.
    (redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong "
                                    "kind of value", status_code="WRONGTYPE"), None),
    (redis.exceptions.NoScriptError("No matching script.", status_code="NOSCRIPT"), None),
    (redis.exceptions.ConnectionError("Connection refused"), None),
    (ValueError("MISCONF"), None),
])
def test_refusals_are_recognised_by_their_code(error: Exception, code: str | None) -> None:
    assert refusal_code(error) == code
    assert refuses_writes(error) is (code is not None)


def test_a_refusal_wrapped_by_kombu_is_recognised() -> None:
    try:
        try:
            raise redis.exceptions.ResponseError(MISCONF)
        except redis.exceptions.ResponseError as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as wrapped:
        assert refusal_code(wrapped) == "MISCONF"


def test_the_patient_retry_waits_out_refusals_but_not_bugs() -> None:
    retry = patient_retry(retries=3, cap_s=0.0, base_s=0.0)
    calls: list[int] = []

    def refused_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise redis.exceptions.ResponseError(MISCONF, status_code="MISCONF")
        return "written"

    assert retry.call_with_retry(refused_twice, lambda _: None) == "written"
    assert len(calls) == 3

    bug_calls: list[int] = []

    def wrong_type() -> None:
        bug_calls.append(1)
        raise redis.exceptions.ResponseError("WRONGTYPE …", status_code="WRONGTYPE")

    with pytest.raises(redis.exceptions.ResponseError):
        retry.call_with_retry(wrong_type, lambda _: None)
    assert len(bug_calls) == 1


@pytest.mark.parametrize(("variable", "value"), [
    ("LIVENESS_GATEWAY_WORKER_CLASS", "eventlet"),
    ("LIVENESS_SUBMIT_GRACE_S", "0"),
])
def test_unusable_settings_are_refused_by_name(monkeypatch: pytest.MonkeyPatch,
                                               variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env()
