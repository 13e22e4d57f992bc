"""``liveness train <test>``: one subcommand per registered test that has a trainer, and
``liveness train fusion`` (fuses the tests' out-of-fold scores).

The subcommands come from the registry (each :class:`common.registry.TestSpec` names its
``trainer``, a ``click.Command``) and are imported only when run or asked for help.
"""

from __future__ import annotations

import click

from common.registry import default_registry


class TrainGroup(click.Group):
    """A click group whose commands are the registered tests' trainers (lazy)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*(spec.name for spec in default_registry() if spec.trainer), "fusion"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "fusion":
            from workers.fusion.cli import train_fusion_command

            return train_fusion_command
        registry = default_registry()
        if cmd_name not in registry or not registry.get(cmd_name).trainer:
            return None
        spec = registry.get(cmd_name)
        try:
            command = registry.load_trainer(cmd_name)
        except (ImportError, AttributeError) as exc:
            return _broken(cmd_name, f"its trainer {spec.trainer} cannot be imported: {exc}")
        if not isinstance(command, click.Command):
            return _broken(cmd_name, f"its trainer {spec.trainer} is not a click command")
        return command


def _broken(name: str, why: str) -> click.Command:
    """A stand-in that lists the test (``--help`` of the group keeps working) and says why."""

    def fail() -> None:
        raise click.ClickException(f"cannot train {name!r}: {why}")

    return click.Command(name, callback=fail, help=f"(unavailable: {why})",
                         short_help="(unavailable: the trainer cannot be loaded)")


@click.group("train", cls=TrainGroup)
def train_group() -> None:
    """Train a liveness test's model (one subcommand per registered test)."""
