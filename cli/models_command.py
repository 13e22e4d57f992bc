"""``liveness models pin``: re-pin a model folder after a deliberate change."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("models")
def models_group() -> None:
    """Model-folder utilities."""


@models_group.command("pin")
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False))
def pin_command(folders: tuple[str, ...]) -> None:
    """Record the SHA-256 of every weight file FOLDER/model.json lists, and of model.json
    itself (its manifest_sha256).

    Workers refuse a model folder whose files or manifest do not match what is pinned:
    run this only for a change you made on purpose (a retrained file copied in, a
    threshold edited by hand). Training pins its output itself.
    """
    from common.errors import ModelError
    from common.modelfolder import pin_model_folder

    for folder in folders:
        try:
            pinned = pin_model_folder(Path(folder))
        except ModelError as exc:
            raise click.ClickException(exc.message) from exc
        listed = ", ".join(f"{name} {digest[:12]}…" for name, digest in pinned.items())
        click.echo(f"{folder}: pinned model.json{'; ' + listed if listed else ''}")
