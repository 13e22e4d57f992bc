"""``liveness train fasnet`` (the registry's trainer)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from workers.fasnet.crop import BOX_MAPPINGS
from workers.fasnet.model import VARIANTS
from workers.fasnet.port import DEFAULT_WEIGHTS_DIR


@click.command("fasnet")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False),
              help="Dataset folder (repeatable): TSV folder, live/spoof folder, NUAA, "
                   "Replay-Attack or 3DMAD layout.")
@click.option("--weights", "weights", default=str(DEFAULT_WEIGHTS_DIR),
              show_default="../shared/weights/silent-face",
              type=click.Path(file_okay=False),
              help="Folder with Minivision's two .pth files, LICENSE and reference/.")
@click.option("--out", default="models/fasnet", show_default=True,
              type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--cache-dir", default=".cache/fasnet", show_default=True,
              type=click.Path(file_okay=False),
              help="Where face-stage results and network outputs are cached.")
@click.option("--boxes", default=",".join(BOX_MAPPINGS), show_default=True,
              help="Comma-separated box mappings to compare (workers/fasnet/crop.py).")
@click.option("--variants", default=",".join(VARIANTS), show_default=True,
              help="Comma-separated variants to compare: pair, v2, v1se, head.")
@click.option("--C", "C", default=0.1, show_default=True, type=click.FloatRange(min=1e-6),
              help="Inverse L2 strength of the re-fitted head.")
@click.option("--operating-point", default="eer", show_default=True,
              help="Threshold rule on the leave-one-collection-out scores: eer, apcer<=5%, …")
@click.option("--jobs", default=os.cpu_count() or 1, show_default=True,
              type=click.IntRange(1, 64), help="Processes running the face stage.")
@click.option("--version", "model_version", default=None, help="Model version (default: date).")
def train_fasnet_command(data: tuple[str, ...], weights: str, out: str, cache_dir: str,
                         boxes: str, variants: str, C: float, operating_point: str,
                         jobs: int, model_version: str | None) -> None:
    """Port Minivision's MiniFASNet pair, compare box mappings and variants
    leave-one-collection-out, write the model folder, LICENSE, NOTICE and card."""
    from workers.fasnet.train import train_fasnet

    command = ("liveness train fasnet " + " ".join(f"--data {shlex.quote(d)}" for d in data)
               + f" --out {shlex.quote(out)}")
    try:
        card = train_fasnet([Path(d) for d in data], Path(out), Path(weights),
                            Path(cache_dir), C, [b for b in boxes.split(",") if b],
                            [v for v in variants.split(",") if v], operating_point,
                            model_version, command, jobs)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"model and card written to {out} ({card.name})", err=True)
