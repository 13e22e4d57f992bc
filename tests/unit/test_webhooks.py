"""Webhook signatures: HMAC-SHA256 over timestamp and raw body, verified in constant time;
each tenant signs with its own secret, derived from a master secret the service requires."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

from common.config import PROJECT_ROOT, Settings, SettingsError
from common.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_master_secret,
    sign,
    standard_secret,
    standard_sign,
    tenant_secret,
    verify,
)

BODY = b'{"id":"abc","status":"done"}'


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, "s3cret", 1700000000) == "sha256=" + expected
    assert sign(BODY, "s3cret", "1700000000") == sign(BODY, "s3cret", 1700000000)


def test_verify_accepts_only_the_signed_body_secret_and_fresh_timestamp() -> None:
    sig = sign(BODY, "s3cret", 1700000000)
    assert verify(BODY, "s3cret", "1700000000", sig, now=1700000010)
    assert not verify(BODY + b" ", "s3cret", "1700000000", sig, now=1700000010)
    assert not verify(BODY, "other", "1700000000", sig, now=1700000010)
    assert not verify(BODY, "s3cret", "1700000001", sig, now=1700000010)
    assert not verify(BODY, "s3cret", "1700000000", sig, now=1700000000 + 301)
    assert not verify(BODY, "s3cret", None, sig)
    assert not verify(BODY, "s3cret", "soon", sig)
    assert not verify(BODY, "s3cret", "1700000000", None, now=1700000010)


# --- per-tenant secrets (issue 15, item 9) -------------------------------------------------

MASTER = "unit-tests-master-secret-" + "0123456789abcdef"


def test_each_tenant_has_its_own_secret_derived_from_the_master() -> None:
    alice, bob = tenant_secret(MASTER, "alice"), tenant_secret(MASTER, "bob")
    expected = hmac.new(MASTER.encode(), b"liveness-webhook-v1:alice", hashlib.sha256)
    assert alice == expected.hexdigest() and len(alice) == 64
    assert alice != bob
    assert tenant_secret(MASTER, "alice") == alice                      # stable
    assert tenant_secret(MASTER + "x", "alice") != alice               # master-bound
    assert MASTER not in alice and MASTER not in bob
    sig = sign(BODY, alice, 1700000000)
    assert verify(BODY, alice, "1700000000", sig, now=1700000000)
    assert not verify(BODY, bob, "1700000000", sig, now=1700000000)   # bob cannot check
    assert sign(BODY, bob, 1700000000) != sig                          # nor forge alice's


@pytest.mark.parametrize("secret, problem", [
    ("", "is not set"),
    ("change-me", "placeholder"),
    ("replace-with-a-long-random-secret", "placeholder"),
    ("x" * 31, "fewer than 32"),
])
def test_an_unusable_master_secret_is_refused_with_how_to_make_one(secret, problem) -> None:
    with pytest.raises(SettingsError) as refused:
        check_master_secret(secret)
    message = str(refused.value)
    assert message.startswith("LIVENESS_WEBHOOK_SECRET ") and problem in message
    assert "secrets.token_urlsafe(32)" in message
    check_master_secret(secrets.token_urlsafe(32))                     # 43 characters


def test_the_gateway_and_the_worker_pools_refuse_the_default_secret() -> None:
    from gateway import create_app
    from workers.tasks import build_worker_app

    for secret in (Settings().webhook_secret, "change-me"):
        settings = dataclasses.replace(Settings(), webhook_secret=secret)
        with pytest.raises(SettingsError, match="LIVENESS_WEBHOOK_SECRET"):
            create_app(settings)
        with pytest.raises(SettingsError, match="LIVENESS_WEBHOOK_SECRET"):
            build_worker_app(settings)


def test_a_worker_process_with_the_default_secret_exits_naming_the_variable() -> None:
    """``celery -A workers.worker`` imports the module: it must fail, not start a pool."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVENESS_")}
    out = subprocess.run([sys.executable, "-c", "import workers.worker"], env=env,
                         capture_output=True, text=True, cwd=PROJECT_ROOT, check=False,
                         timeout=120)
    assert out.returncode != 0
    assert "SettingsError: LIVENESS_WEBHOOK_SECRET is not set" in out.stderr, out.stderr[-2000:]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Jobs:
    """The part of the job store :func:`deliver_webhook` reads: finished job records."""

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records

    def get_job(self, job_id: str) -> dict | None:
        return self.records.get(job_id)


def test_the_fusion_pool_signs_each_webhook_with_its_owners_secret() -> None:
    from workers.fusion.tasks import deliver_webhook

    receiver = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    store = _Jobs({f"job-{owner}": {"owner": owner, "status": "failed", "error": "no_worker",
                                    "tests": ["quality"], "callback_url": url}
                   for owner in ("alice", "bob")})
    settings = dataclasses.replace(Settings(), webhook_secret=MASTER,
                                   webhook_allowlist="127.0.0.1/32")
    try:
        for job_id in store.records:
            assert deliver_webhook(store, settings, job_id) == 204  # type: ignore[arg-type]
    finally:
        server.shutdown()
        server.server_close()
    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        owner = json.loads(body)["id"].removeprefix("job-")
        other = {"alice": "bob", "bob": "alice"}[owner]
        stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        assert verify(body, tenant_secret(MASTER, owner), stamp, signature)
        assert not verify(body, tenant_secret(MASTER, other), stamp, signature)
        assert not verify(body, MASTER, stamp, signature)
        # the Standard Webhooks headers, checked by that project's own library
        assert headers["webhook-id"] == f"msg_job-{owner}"
        standard = {k: headers[k] for k in ("webhook-id", "webhook-timestamp",
                                             "webhook-signature")}
        Webhook(standard_secret(tenant_secret(MASTER, owner))).verify(body, standard)
        with pytest.raises(WebhookVerificationError):
            Webhook(standard_secret(tenant_secret(MASTER, other))).verify(body, standard)


def test_standard_webhooks_signature_is_the_specs() -> None:
    """v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">, keyed with the secret's bytes
    (the whsec_ form is base64 of the same bytes)."""
    secret = tenant_secret(MASTER, "alice")
    key = bytes.fromhex(secret)
    digest = hmac.new(key, b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert standard_sign(BODY, secret, "msg_1", 1700000000) == expected
    whsec = standard_secret(secret)
    assert whsec.startswith("whsec_") and base64.b64decode(whsec[6:]) == key
    assert standard_sign(BODY, whsec, "msg_1", "1700000000") == expected


def test_apikey_prints_the_keys_webhook_secret(monkeypatch) -> None:
    from click.testing import CliRunner

    from cli import main

    monkeypatch.delenv("LIVENESS_WEBHOOK_SECRET", raising=False)
    made = CliRunner().invoke(main, ["apikey", "alice"])
    assert made.exit_code == 0 and "webhook secret:" not in made.stdout
    assert "set LIVENESS_WEBHOOK_SECRET" in made.stderr
    assert CliRunner().invoke(main, ["apikey", "alice", "--webhook-secret-only"]).exit_code == 1

    monkeypatch.setenv("LIVENESS_WEBHOOK_SECRET", MASTER)
    made = CliRunner().invoke(main, ["apikey", "alice"])
    assert made.exit_code == 0, made.output
    assert f"webhook secret: {tenant_secret(MASTER, 'alice')}" in made.stdout
    assert standard_secret(tenant_secret(MASTER, "alice")) in made.stdout
    again = CliRunner().invoke(main, ["apikey", "alice", "--webhook-secret-only"])
    assert again.exit_code == 0 and again.stdout == tenant_secret(MASTER, "alice") + "\n"

    monkeypatch.setenv("LIVENESS_WEBHOOK_SECRET", "change-me")
    refused = CliRunner().invoke(main, ["apikey", "alice"])
    assert refused.exit_code == 1 and "LIVENESS_WEBHOOK_SECRET is the placeholder" in (
        refused.output)


def test_serve_makes_a_per_run_secret_for_its_development_key() -> None:
    import click

    from cli.serve import _dev_webhook_secret

    first, second = {}, {}
    dev = _dev_webhook_secret(first)
    check_master_secret(first["LIVENESS_WEBHOOK_SECRET"])
    assert dev == tenant_secret(first["LIVENESS_WEBHOOK_SECRET"], "dev")
    assert _dev_webhook_secret(second) != dev                       # new each run
    assert _dev_webhook_secret({"LIVENESS_WEBHOOK_SECRET": MASTER}) == tenant_secret(MASTER,
                                                                                     "dev")
    with pytest.raises(click.ClickException, match="LIVENESS_WEBHOOK_SECRET"):
        _dev_webhook_secret({"LIVENESS_WEBHOOK_SECRET": "change-me"})
