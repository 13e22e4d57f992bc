"""``liveness image-key``: a new key for ``LIVENESS_IMAGE_KEYS`` (images sealed at rest)."""

from __future__ import annotations

import click


@click.command("image-key")
def image_key_command() -> None:
    """Print a new random AES-256 key for LIVENESS_IMAGE_KEYS.

    The gateway and every worker pool need the same value; the job store seals uploaded
    images with it (common/sealing.py). Keep it in the environment or a secret store,
    not on the Redis host's disk. To rotate: put the new key first
    (LIVENESS_IMAGE_KEYS=new,old) and drop the old one after LIVENESS_RESULT_TTL_S
    (explanation PNGs live as long as their result).
    """
    from common.sealing import new_key

    click.echo(new_key())
