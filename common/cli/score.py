"""``liveness score``: score images in-process, no server needed."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from common.config import get_settings
from common.errors import LivenessError
from common.imageio import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
#: Columns every row has; one ``<test>_score`` column per test follows.
BASE_COLUMNS = ("path", "score_live", "decision", "face_found", "reasons", "seconds", "error")


def iter_image_paths(inputs: tuple[str, ...]) -> Iterator[Path]:
    """Files as given; folders searched recursively for image files, sorted."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield path


def result_row(path: str, result: dict[str, Any] | None, error: str | None, seconds: float,
               tests: tuple[str, ...]) -> dict[str, Any]:
    """One CSV/JSON row in the documented column layout (shared with the batch API)."""
    row: dict[str, Any] = {
        "path": path,
        "score_live": "" if result is None or result["score"] is None else result["score"],
        "decision": "error" if result is None else result["decision"],
        "face_found": "" if result is None else result["face_found"],
        "reasons": "" if result is None else ";".join(result["reasons"]),
        "seconds": round(seconds, 4),
        "error": error or "",
    }
    for name in tests:
        outcome = (result or {}).get("tests", {}).get(name) or {}
        score = outcome.get("score")
        row[f"{name}_score"] = "" if score is None else round(score, 6)
    return row


@click.command("score")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--tests", "test_names", default="quality", show_default=True,
              help="Comma-separated tests to run.")
@click.option("--json", "as_json", is_flag=True, help="Print full JSON results (one per line).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write one CSV row per image to this file.")
@click.option("--models-dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of trained models (default: $LIVENESS_MODELS_DIR or ./models).")
def score_command(inputs: tuple[str, ...], test_names: str, as_json: bool, out: str | None,
                  models_dir: str | None) -> None:
    """Score IMAGE files or folders of images for liveness."""
    from workers.pipeline import load_tests, score_image

    settings = get_settings()
    if models_dir:
        import dataclasses

        settings = dataclasses.replace(settings, models_dir=Path(models_dir))
    names = tuple(n.strip() for n in test_names.split(",") if n.strip())
    try:
        tests = load_tests(names, settings)
    except LivenessError as exc:
        raise click.ClickException(exc.message) from exc
    paths = list(iter_image_paths(inputs))
    if not paths:
        raise click.ClickException("no image files found in the given paths")
    rows, failures = [], 0
    show_progress = len(paths) > 1 and not as_json
    for path in tqdm(paths, desc="scoring", disable=not show_progress, file=sys.stderr):
        start = time.perf_counter()
        result, error = None, None
        try:
            result = score_image(load_image(path, settings), tests, settings).to_dict()
        except LivenessError as exc:
            error, failures = f"{exc.code}: {exc.message}", failures + 1
        except OSError as exc:
            error, failures = f"unreadable: {exc}", failures + 1
        row = result_row(str(path), result, error, time.perf_counter() - start, names)
        rows.append(row)
        if as_json:
            click.echo(json.dumps({"path": str(path), "result": result, "error": error}))
    if out:
        with open(out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(f"wrote {len(rows)} rows to {out}", err=True)
    elif not as_json:
        for row in rows:
            click.echo(
                f"{row['path']}\t{row['decision']}\tscore={row['score_live']}"
                f"\tface={row['face_found']}\t{row['reasons'] or row['error']}"
            )
    if failures:
        click.echo(f"{failures} of {len(rows)} images could not be scored", err=True)
        sys.exit(1)
