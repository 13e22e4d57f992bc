"""``liveness train quality``: the quality test's trainer (named by its registry spec)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click


@click.command("quality")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False),
              help="Dataset folder (repeatable): TSV folder, live/spoof folder, NUAA, "
                   "Replay-Attack or 3DMAD layout.")
@click.option("--out", default="models/quality", show_default=True,
              type=click.Path(file_okay=False), help="Folder for model.json and MODEL_CARD.md.")
@click.option("--cache-dir", default=".cache/features", show_default=True,
              type=click.Path(file_okay=False), help="Where extracted features are cached.")
@click.option("--jobs", type=int, default=None,
              help="Feature-extraction processes (default: all cores).")
@click.option("--operating-point", default="eer", show_default=True,
              help="Threshold rule on the leave-one-collection-out scores: eer, apcer=0.05, …")
@click.option("--version", "model_version", default=None, help="Model version (default: date).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Train on capture-chain copies and simulated recaptures (see model card).")
def train_quality(data: tuple[str, ...], out: str, cache_dir: str, jobs: int | None,
                  operating_point: str, model_version: str | None, augment: bool) -> None:
    """Fit the W-IQA LDA; validate leave-one-collection-out; write model + card."""
    from workers.quality.model_card import train_and_document

    command = "liveness train quality " + " ".join(
        f"--data {shlex.quote(d)}" for d in data
    ) + f" --out {shlex.quote(out)}"
    if operating_point != "eer":
        command += f" --operating-point {operating_point}"
    if not augment:
        command += " --no-augment"
    if model_version:
        command += f" --version {shlex.quote(model_version)}"
    card = train_and_document(
        [Path(d) for d in data], Path(out), Path(cache_dir), jobs, operating_point,
        model_version, command, augment=augment,
    )
    click.echo(f"model and card written to {out} ({card.name})", err=True)
    sys.exit(0)
