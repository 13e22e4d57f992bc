"""``liveness calibrate``: an operator's calibration profile from their own images."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import click

from common.config import get_settings
from common.errors import LivenessError
from common.registry import default_registry


@click.command("calibrate")
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False),
              help="Labelled images (repeatable): a folder with live/ and spoof/, or any "
                   "dataset layout `liveness evaluate` reads.")
@click.option("--name", required=True, help="Profile name (letters, digits, _ . -).")
@click.option("--operating-point", default="apcer<=5%", show_default=True,
              help="apcer<=5% (lowest BPCER with APCER ≤ 5 %), apcer<=1%, eer, bpcer<=N%.")
@click.option("--method", default="platt", show_default=True,
              type=click.Choice(["platt", "isotonic"]), help="Score calibration.")
@click.option("--retry-band", default=0.5, show_default=True, type=click.FloatRange(0, 10),
              help="Half-width of the retry band around the threshold (log-odds).")
@click.option("--tests", "test_names", default="", show_default="the default tests",
              help="Comma-separated tests to run.")
@click.option("--models-dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of trained models; the profile goes to its profiles/ "
                   "(default: $LIVENESS_MODELS_DIR or ./models).")
@click.option("--report", "report_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for report.md and reliability.png (default: runs/calibrate-NAME).")
@click.option("--jobs", type=int, default=None, help="Processes (default: all cores).")
def calibrate_command(data: tuple[str, ...], name: str, operating_point: str, method: str,
                      retry_band: float, test_names: str, models_dir: str | None,
                      report_dir: str | None, jobs: int | None) -> None:
    """Fit a calibration profile (calibrator + threshold at an operating point) on your
    own labelled images; print the before/after figures with bootstrap intervals."""
    import numpy as np

    from common.evaluation.pipeline_report import score_datasets
    from common.evaluation.recalibrate import recalibrate, write_calibration_report
    from common.pipeline import fusion_for, load_tests
    from common.profiles import Profile, save_profile, valid_name

    if not valid_name(name):
        raise click.BadParameter("1–64 letters, digits, '_', '.' or '-'", param_hint="--name")
    settings = get_settings()
    if models_dir:
        settings = dataclasses.replace(settings, models_dir=Path(models_dir))
    try:
        names = tuple(default_registry().resolve(test_names.split(","),
                                                 settings.default_tests))
        fusion = fusion_for(settings)
        models = {n: {"name": str(t.info.name), "version": str(t.info.version)}
                  for n, t in load_tests(names, settings).items()}
        samples, results = score_datasets([Path(d) for d in data], names,
                                          Path(models_dir) if models_dir else None, jobs)
        # Only images every test scored: a profile calibrates the fused score of exactly
        # these tests (an image one test failed on is fused by another subset's model).
        ok = [i for i, r in enumerate(results)
              if r is not None and r["score"] is not None
              and all((r["tests"].get(n) or {}).get("score") is not None for n in names)]
        scores = np.array([results[i]["score"] for i in ok], float)
        y = np.array([samples[i].label for i in ok], int)
        types = np.array([samples[i].attack_type for i in ok], dtype=object)
        thresholds = {results[i]["threshold"] for i in ok}
        shipped = thresholds.pop() if len(thresholds) == 1 else fusion.fuse({}).threshold
        result = recalibrate(scores, y, types, shipped, operating_point, method, retry_band)
    except (LivenessError, ValueError) as exc:
        raise click.ClickException(getattr(exc, "message", None) or str(exc)) from exc
    profile = Profile(name, operating_point, result.threshold, result.calibrator.to_dict(),
                      tuple(sorted(names)), models, retry_band, fusion.name, fusion.version,
                      {"data": list(data), "images": len(y),
                       "bona_fide": int((y == 1).sum()), "attacks": int((y == 0).sum()),
                       "tests": list(names),
                       "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    path = save_profile(settings.models_dir, profile)
    report = write_calibration_report(Path(report_dir or f"runs/calibrate-{name}"), name,
                                      result, scores, y, list(data))
    click.echo(f"{'':<8}{'before (shipped threshold)':<34}after (profile, 5-fold CV)")
    for (label, before), (_, after) in zip(result.before.rows(), result.after.rows(),
                                           strict=True):
        click.echo(f"{label:<8}{before:<34}{after}")
    click.echo(f"profile {name!r} written to {path} (threshold {result.threshold:.4f} on the "
               f"calibrated probability); report {report}")
