"""``liveness evaluate``: the full pipeline on a labelled dataset → ISO/IEC 30107-3 report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from common.config import get_settings
from common.errors import LivenessError
from common.registry import default_registry


@click.command("evaluate")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False), help="Dataset folder (repeatable).")
@click.option("--tests", "test_names", default="", show_default="the default tests",
              help="Comma-separated tests to run.")
@click.option("--models-dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of trained models (default: $LIVENESS_MODELS_DIR or ./models).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for report.md, report.json and the plots.")
@click.option("--jobs", type=int, default=None, help="Processes (default: all cores).")
def evaluate_command(data: tuple[str, ...], test_names: str, models_dir: str | None, out: str,
                     jobs: int | None) -> None:
    """Score labelled datasets in-process and report APCER/BPCER/ACER/EER at the
    shipped threshold (the decision a deployment would make)."""
    from common.evaluation.pipeline_report import evaluate_datasets

    try:
        names = tuple(default_registry().resolve(test_names.split(","),
                                                 get_settings().default_tests))
    except LivenessError as exc:
        raise click.ClickException(exc.message) from exc
    report_paths = evaluate_datasets(
        [Path(d) for d in data], names, Path(models_dir) if models_dir else None, Path(out), jobs
    )
    click.echo(json.dumps({k: str(v) for k, v in report_paths.items()}, indent=1))
