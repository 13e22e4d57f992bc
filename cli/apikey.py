"""``liveness apikey``: make a gateway API key and its ``LIVENESS_API_KEY_HASHES`` entry."""

from __future__ import annotations

import click


@click.command("apikey")
@click.argument("key_id", default="default")
def apikey_command(key_id: str) -> None:
    """Print a new random API key for KEY_ID and the hash line to configure.

    Give the key to the client; add the ``id:sha256`` line to LIVENESS_API_KEY_HASHES
    (comma-separated). Only the hash is stored, so a lost key cannot be recovered.
    """
    from gateway.auth import new_key

    if not key_id or any(c in key_id for c in ",: \t"):
        raise click.BadParameter("KEY_ID must be non-empty without ',', ':' or spaces")
    key, line = new_key(key_id)
    click.echo(f"key:  {key}")
    click.echo(f"hash: {line}")
