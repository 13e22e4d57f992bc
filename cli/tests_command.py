"""``liveness tests``: the registered liveness tests, their queues and model folders."""

from __future__ import annotations

import json

import click

from common.config import get_settings
from common.errors import LivenessError
from common.registry import default_registry


@click.command("tests")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per test.")
def tests_command(as_json: bool) -> None:
    """List the liveness tests the installed distributions register (entry points)."""
    settings = get_settings()
    registry = default_registry()
    defaults = registry.resolve(None, settings.default_tests)
    for spec in registry:
        try:
            test = registry.load_scorer(spec.name, settings.models_dir)
            model = f"{test.info.name} {test.info.version}"
        except LivenessError as exc:
            model = f"unavailable ({exc.message.split(';')[0]})"
        row = {"name": spec.name, "queue": spec.queue, "default": spec.name in defaults,
               "model": model, "model_dir": str(spec.model_dir(settings.models_dir)),
               "trainer": bool(spec.trainer), "description": spec.description}
        if as_json:
            click.echo(json.dumps(row))
        else:
            flag = "default" if row["default"] else "       "
            click.echo(f"{spec.name:<10} queue={spec.queue:<10} {flag}  {model}")
