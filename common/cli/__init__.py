"""The ``liveness`` command: in-process scoring, training and evaluation."""

from __future__ import annotations

import logging

import click

from common.cli.apikey import apikey_command
from common.cli.evaluate import evaluate_command
from common.cli.score import score_command
from common.cli.serve import serve_command
from common.cli.train import train_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="face-liveness")
def main(verbose: int) -> None:
    """Face liveness (presentation-attack detection) tools."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


main.add_command(score_command)
main.add_command(train_group)
main.add_command(evaluate_command)
main.add_command(serve_command)
main.add_command(apikey_command)
