"""``liveness train depth3d`` (the registry's trainer)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from workers.depth3d.networks import KINDS


@click.command("depth3d")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False),
              help="Dataset folder (repeatable): TSV folder, live/spoof folder, NUAA, "
                   "Replay-Attack or 3DMAD layout.")
@click.option("--out", default="models/depth3d", show_default=True,
              type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--cache-dir", default=".cache/depth3d", show_default=True,
              type=click.Path(file_okay=False),
              help="Where face-stage results and reconstructions are cached.")
@click.option("--kinds", default=",".join(KINDS), show_default=True,
              help="Classifiers to compare: voxnet, depthnet.")
@click.option("--sides", default="32,64", show_default=True,
              help="Volume / depth-map sides to choose from by grouped validation.")
@click.option("--voxnet-epochs", default=3, show_default=True, type=click.IntRange(1, 500))
@click.option("--depthnet-epochs", default=8, show_default=True, type=click.IntRange(1, 500))
@click.option("--select-folds", default=3, show_default=True, type=click.IntRange(2, 20),
              help="Groups of collections for choosing the side.")
@click.option("--select-rows", default=1500, show_default=True, type=click.IntRange(100),
              help="Training images per fold when choosing the side.")
@click.option("--max-classifier-ms", default=10.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Sides whose classifier takes longer per face (LiteRT, one thread) are "
                   "reported but never chosen.")
@click.option("--validate-over-budget", is_flag=True,
              help="Validate the sides over --max-classifier-ms too (for the record; a 64³ "
                   "VoxNet takes about 25 minutes on 2 cores).")
@click.option("--operating-point", default="eer", show_default=True,
              help="Threshold rule on the leave-one-collection-out scores: eer, apcer<=5%, …")
@click.option("--jobs", default=os.cpu_count() or 1, show_default=True,
              type=click.IntRange(1, 64), help="Processes running the face stage and mesh.")
@click.option("--version", "model_version", default=None, help="Model version (default: date).")
def train_depth3d_command(data: tuple[str, ...], out: str, cache_dir: str, kinds: str,
                          sides: str, voxnet_epochs: int, depthnet_epochs: int,
                          select_folds: int, select_rows: int, max_classifier_ms: float,
                          validate_over_budget: bool, operating_point: str, jobs: int,
                          model_version: str | None) -> None:
    """Reconstruct every face (mesh backend), choose VoxNet's / the depth net's side,
    validate leave-one-collection-out, write the model folder and its card."""
    from workers.depth3d.train import train_depth3d

    command = ("liveness train depth3d " + " ".join(f"--data {shlex.quote(d)}" for d in data)
               + f" --out {shlex.quote(out)}")
    try:
        side_list = [int(s) for s in sides.split(",") if s]
        card = train_depth3d([Path(d) for d in data], Path(out), Path(cache_dir),
                             [k for k in kinds.split(",") if k], side_list,
                             {"voxnet": voxnet_epochs, "depthnet": depthnet_epochs},
                             select_folds, select_rows, max_classifier_ms,
                             validate_over_budget, operating_point, model_version, command,
                             jobs,
                             log=lambda m: click.echo(m, err=True))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"model and card written to {out} ({card.name})", err=True)
