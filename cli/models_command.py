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


@models_group.command("table")
@click.option("--models-dir", default=None, type=click.Path(file_okay=False),
              help="Folder of the model folders (default: LIVENESS_MODELS_DIR).")
def table_command(models_dir: str | None) -> None:
    """Print the one leave-one-collection-out table of every shipped test and the fusion.

    Read from each folder's model.json (``metrics.summary``, written by its trainer):
    collections held out, mean and worst AUC, mean EER, and mean APCER (worst attack
    type of each collection) / BPCER / ACER at the shipped operating point. Markdown,
    as the README shows it.
    """
    from common.config import get_settings
    from common.evaluation.loco_table import shipped_models_table
    from common.registry import default_registry

    folder = Path(models_dir) if models_dir else get_settings().models_dir
    click.echo(shipped_models_table(folder, [*default_registry().names, "fusion"]))
