"""``liveness train fusion``: fuse the registered tests' out-of-fold scores."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from common.config import get_settings
from workers.fusion.operating import DEFAULT_POINT, STRICT_POINTS


@click.command("fusion")
@click.option("--data", "data", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder(s) whose images to fuse on (repeatable; default: every "
                   "image the score files hold).")
@click.option("--tests", "tests", default="quality,cnn,fasnet,depth3d", show_default=True,
              help="Comma-separated tests to fuse.")
@click.option("--scores", "scores", multiple=True, metavar="TEST=PATH",
              help="A test's out-of-fold score CSV (default: the one its trainer wrote "
                   "beside its model card).")
@click.option("--score-in-process", "fresh", multiple=True, metavar="TEST",
              help="Score this test on --data in process instead of reading its score file "
                   "(only for a test whose model never saw these images: a fixed rule, a "
                   "plug-in trained elsewhere). Repeatable.")
@click.option("--jobs", type=int, default=None, help="Processes for --score-in-process.")
@click.option("--models-dir", type=click.Path(file_okay=False), default=None,
              help="Where the tests' models are (default: $LIVENESS_MODELS_DIR or ./models).")
@click.option("--operating-point", default=DEFAULT_POINT, show_default=True,
              help="The default threshold rule: loco-bpcer<=A%/B% (held-out BPCER ≤ A % on "
                   "average, ≤ B % on any collection, lowest APCER; workers/fusion/"
                   "operating.py), apcer<=5% (lowest BPCER at APCER ≤ 5 %), apcer<=1%, eer, "
                   "bpcer<=N%.")
@click.option("--alternatives", default=",".join(STRICT_POINTS), show_default=True,
              help="Further operating points whose thresholds ship too "
                   "(LIVENESS_OPERATING_POINT picks one) and whose held-out figures the card "
                   "shows; comma-separated, empty for none.")
@click.option("--retry-band", default=0.5, show_default=True, type=click.FloatRange(0, 10),
              help="Half-width of the retry band around the threshold, in fused log-odds.")
@click.option("--methods", default="rule,lda,logistic", show_default=True,
              help="Fusion methods to compare; the lowest mean HTER ships.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Model folder to write (default: <models-dir>/fusion).")
@click.option("--version", "model_version", default=None, help="Model version (default: date).")
def train_fusion_command(data: tuple[str, ...], tests: str, scores: tuple[str, ...],
                         fresh: tuple[str, ...], jobs: int | None, models_dir: str | None,
                         operating_point: str, alternatives: str, retry_band: float,
                         methods: str, out: str | None, model_version: str | None) -> None:
    """Validate rule / LDA / logistic fusion leave-one-collection-out; write the best."""
    from common.datasets import open_dataset
    from workers.fusion.train import default_score_file, in_process_scores, train_fusion

    root = Path(models_dir) if models_dir else get_settings().models_dir
    names = [t.strip() for t in tests.split(",") if t.strip()]
    given = {}
    for item in scores:
        test, sep, path = item.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{item!r}: expected TEST=PATH", param_hint="--scores")
        given[test.strip()] = Path(path)
    unknown = [t for t in fresh if t not in names]
    if unknown or (fresh and not data):
        raise click.BadParameter(f"{', '.join(unknown) or 'it'} must be in --tests and needs "
                                 "--data", param_hint="--score-in-process")
    try:
        for test in fresh:
            given[test] = in_process_scores([Path(d) for d in data], test,
                                            Path(models_dir) if models_dir else None,
                                            root / "fusion" / "inputs" / f"{test}.csv", jobs)
        files = {t: given.get(t) or default_score_file(root, t) for t in names}
        thresholds = {t: _threshold(root / t) for t in names}
        datasets = [open_dataset(Path(d)).name for d in data] or None
        command = ("liveness train fusion " + "".join(f"--data {shlex.quote(d)} " for d in data)
                   + f"--tests {','.join(names)} --operating-point '{operating_point}' "
                   f"--retry-band {retry_band}"
                   + "".join(f" --score-in-process {t}" for t in fresh))
        card = train_fusion(files, Path(out) if out else root / "fusion", thresholds, datasets,
                            operating_point, retry_band,
                            [m.strip() for m in methods.split(",") if m.strip()],
                            model_version, command,
                            [a.strip() for a in alternatives.split(",") if a.strip()])
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"fusion model and card written ({card})", err=True)


def _threshold(folder: Path) -> float:
    """A test model's shipped threshold (0.5 when its folder has none)."""
    try:
        return float(json.loads((folder / "model.json").read_text())["info"]["threshold"])
    except (OSError, KeyError, ValueError, TypeError):
        return 0.5
