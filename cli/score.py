"""``liveness score``: score images (and videos, frame by frame) in-process, no server
needed."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from common.config import get_settings
from common.errors import LivenessError
from common.imageio import load_image
from common.registry import default_registry
from common.result import csv_row
from common.videoio import DecisionSmoother, is_video, iter_frames


def is_folder_metadata(relative: Path) -> bool:
    """True for what a folder holds beside its files: hidden entries (``.DS_Store``,
    macOS ``._*`` resource forks, ``.git/``) and ``__MACOSX/``, at any depth."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def collect_files(inputs: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """``(files, left_out)``: files as given, and every file of each folder (recursively,
    sorted) whatever its suffix — the decoder tells images by content, so a file that is
    not a supported image is still tried and gets its error row; ``left_out`` lists the
    folders' metadata files (:func:`is_folder_metadata`), which are not tried."""
    files: list[Path] = []
    left_out: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            (left_out if is_folder_metadata(found.relative_to(path)) else files).append(found)
    return files, left_out


def _score_video(path: Path, every: int, tests: Any, settings: Any, fusion: Any,
                 profile: Any, names: tuple[str, ...],
                 as_json: bool) -> tuple[list[dict[str, Any]], int]:
    """(rows, failures) of one video: a row per scored frame, then the video's row whose
    decision is smoothed over all of them (:class:`common.videoio.DecisionSmoother`) and
    whose score is the frames' mean fused score."""
    from common.pipeline import score_image

    rows: list[dict[str, Any]] = []
    smoother = DecisionSmoother(window=10**9)
    scores: list[float] = []
    start = time.perf_counter()
    try:
        for index, frame in iter_frames(str(path), every):
            t0 = time.perf_counter()
            result = score_image(frame, tests, settings, fusion, profile)
            smoother.update(result.decision)
            if result.score is not None:
                scores.append(result.score)
            rows.append(csv_row(f"{path}#frame={index}", result, None,
                                time.perf_counter() - t0, names))
            if as_json:
                click.echo(json.dumps({"path": f"{path}#frame={index}", "error": None,
                                       "result": result.to_dict()}))
    except LivenessError as exc:
        rows.append(csv_row(str(path), None, f"{exc.code}: {exc.message}",
                            time.perf_counter() - start, names))
        return rows, 1
    if not rows:
        rows.append(csv_row(str(path), None, "unreadable_video: no frame could be decoded",
                            time.perf_counter() - start, names))
        return rows, 1
    final = smoother.current()
    summary = csv_row(str(path), None, None, time.perf_counter() - start, names)
    summary.update({"score_live": round(float(np.mean(scores)), 6) if scores else "",
                    "decision": final.decision, "face_found": "",
                    "reasons": f"video:{final.judged}_of_{final.frames}_frames_judged;"
                               f"{final.live_share:.0%}_live"})
    rows.append(summary)
    if as_json:
        click.echo(json.dumps({"path": str(path), "error": None, "video": {
            "decision": final.decision, "live_share": final.live_share,
            "judged": final.judged, "frames": final.frames,
            "score_mean": float(np.mean(scores)) if scores else None}}))
    return rows, 0


@click.command("score")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--tests", "test_names", default="", show_default="the default tests",
              help="Comma-separated tests to run (`liveness tests` lists them).")
@click.option("--json", "as_json", is_flag=True, help="Print full JSON results (one per line).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write one CSV row per image to this file.")
@click.option("--models-dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of trained models (default: $LIVENESS_MODELS_DIR or ./models).")
@click.option("--profile", default=None,
              help="Calibration profile (<models-dir>/profiles/NAME.json, `liveness "
                   "calibrate`); default: $LIVENESS_DEFAULT_PROFILE, else none.")
@click.option("--every", default=10, show_default=True, type=click.IntRange(1),
              help="For a video (.mp4, .mov, .avi …): score every k-th frame; one row per "
                   "frame (PATH#frame=N) and one for the video, its decision smoothed over "
                   "all its scored frames.")
def score_command(inputs: tuple[str, ...], test_names: str, as_json: bool, out: str | None,
                  models_dir: str | None, profile: str | None, every: int) -> None:
    """Score IMAGE files or folders of images (and videos, every k-th frame) for
    liveness."""
    from common.pipeline import fusion_for, load_tests, profiles_for, score_image

    settings = get_settings()
    if models_dir:
        settings = dataclasses.replace(settings, models_dir=Path(models_dir))
    try:
        names = tuple(default_registry().resolve(test_names.split(","),
                                                 settings.default_tests))
        chosen = None
        profile_name = profile or settings.default_profile
        if profile_name:
            chosen = profiles_for(settings).get(profile_name)
            if chosen is None:
                raise click.ClickException(
                    f"unknown calibration profile {profile_name!r}; known: "
                    f"{', '.join(sorted(profiles_for(settings))) or 'none'}")
            # A profile calibrates one combination of tests, models and fusion only.
            chosen.check_tests(names, "--tests runs")
        tests = load_tests(names, settings)
        fusion = fusion_for(settings)
        if chosen is not None:
            chosen.check_models({n: (t.info.name, t.info.version) for n, t in tests.items()})
            chosen.check_fusion(fusion.name, fusion.version)
    except LivenessError as exc:
        raise click.ClickException(exc.message) from exc
    paths, left_out = collect_files(inputs)
    if left_out:
        click.echo(f"left out {len(left_out)} hidden or __MACOSX files (e.g. "
                   f"{left_out[0]})", err=True)
    if not paths:
        raise click.ClickException("no files found in the given paths")
    rows, failures, shown = [], 0, []
    show_progress = len(paths) > 1 and not as_json
    for path in tqdm(paths, desc="scoring", disable=not show_progress, file=sys.stderr):
        if is_video(path):
            video_rows, failed = _score_video(path, every, tests, settings, fusion, chosen,
                                              names, as_json)
            rows += video_rows
            shown += [row["path"] for row in video_rows]
            failures += failed
            continue
        start = time.perf_counter()
        result, error = None, None
        try:
            result = score_image(load_image(path, settings), tests, settings, fusion, chosen)
        except LivenessError as exc:
            error, failures = f"{exc.code}: {exc.message}", failures + 1
        except OSError as exc:
            error, failures = f"unreadable: {exc}", failures + 1
        row = csv_row(str(path), result, error, time.perf_counter() - start, names)
        rows.append(row)
        shown.append(str(path))
        if as_json:
            click.echo(json.dumps({"path": str(path), "error": error,
                                   "result": None if result is None else result.to_dict()}))
    if out:
        with open(out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(f"wrote {len(rows)} rows to {out}", err=True)
    elif not as_json:
        for path, row in zip(shown, rows, strict=True):  # the path as given, not CSV-escaped
            click.echo(
                f"{path}\t{row['decision']}\tscore={row['score_live']}"
                f"\tface={row['face_found']}\t{row['reasons'] or row['error']}"
            )
    if failures:
        click.echo(f"{failures} of {len(rows)} files could not be scored", err=True)
        sys.exit(1)
