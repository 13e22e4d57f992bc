"""``liveness apikey``: make a gateway API key, its ``LIVENESS_API_KEY_HASHES`` entry and
the key's webhook secret."""

from __future__ import annotations

import click

from common.config import SettingsError, get_settings
from common.webhooks import (
    MASTER_SECRET_VARIABLE,
    check_master_secret,
    standard_secret,
    tenant_secret,
)


def _webhook_secret(key_id: str) -> str | None:
    """The tenant's webhook secret from ``LIVENESS_WEBHOOK_SECRET``; None when it is unset."""
    master = get_settings().webhook_secret
    if not master:
        return None
    try:
        check_master_secret(master)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return tenant_secret(master, key_id)


@click.command("apikey")
@click.argument("key_id", default="default")
@click.option("--webhook-secret-only", is_flag=True,
              help="Print only the webhook secret of the existing key KEY_ID (needs "
                   f"{MASTER_SECRET_VARIABLE}); no new key is made.")
def apikey_command(key_id: str, webhook_secret_only: bool) -> None:
    """Print a new random API key for KEY_ID, the hash line to configure and, when
    LIVENESS_WEBHOOK_SECRET (the deployment's master secret) is set, the secret that
    signs KEY_ID's webhooks.

    Give the key and the webhook secret to the client; add the ``id:sha256`` line to
    LIVENESS_API_KEY_HASHES (comma-separated). Only the hash is stored, so a lost key
    cannot be recovered; the webhook secret is derived from the master secret and the
    id, so ``--webhook-secret-only`` prints it again.
    """
    from gateway.auth import new_key

    if not key_id or any(c in key_id for c in ",: \t"):
        raise click.BadParameter("KEY_ID must be non-empty without ',', ':' or spaces")
    secret = _webhook_secret(key_id)
    if webhook_secret_only:
        if secret is None:
            raise click.ClickException(
                f"{MASTER_SECRET_VARIABLE} is not set: export the deployment's master "
                "secret to print the webhook secret of a key id")
        click.echo(secret)
        return
    key, line = new_key(key_id)
    click.echo(f"key:  {key}")
    click.echo(f"hash: {line}")
    if secret is None:
        click.echo(f"(set {MASTER_SECRET_VARIABLE} to the deployment's master secret to "
                   "print this key's webhook secret too)", err=True)
    else:
        click.echo(f"webhook secret: {secret}")
        click.echo(f"webhook secret (Standard Webhooks libraries): {standard_secret(secret)}")
