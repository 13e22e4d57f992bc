"""``liveness watch [--camera N | --video FILE] [--out FILE]``: the seed's live overlay.

Every frame (or every ``--every``-th) goes through the in-process pipeline
(:func:`common.pipeline.score_image`: the face stage, the tests, the fusion); the overlay
draws the face box coloured by the frame's decision, the fused score against its
threshold, the decision smoothed over the last ``--window`` frames
(:class:`common.videoio.DecisionSmoother`) and the frames per second. With ``--out`` the
annotated frames are written to a video (MP4, at the source's frame rate divided by
``--every``; 25 fps for a camera); the OpenCV build this project installs
is headless, so a window is shown only with ``--show`` where OpenCV has a GUI. One line
per scored frame goes to stdout as JSON with ``--json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click
import cv2
import numpy as np

from common.config import get_settings
from common.errors import LivenessError
from common.registry import default_registry
from common.result import LivenessResult
from common.videoio import DecisionSmoother, SmoothedDecision, iter_frames

COLOURS = {"live": (40, 170, 60), "spoof": (200, 40, 40), "retry": (230, 160, 0)}  # RGB


def annotate(frame: np.ndarray, result: LivenessResult, smoothed: SmoothedDecision,
             fps: float) -> np.ndarray:
    """A copy of the RGB frame with the face box, the frame's score and decision, the
    smoothed decision and the frame rate drawn on it."""
    out = np.ascontiguousarray(frame.copy())
    colour = COLOURS.get(result.decision, (255, 255, 255))
    box = result.face.box
    if result.face.found:
        cv2.rectangle(out, (box.left, box.top), (box.right, box.bottom), colour, 2)
    scale = max(0.7, out.shape[1] / 900)
    score = "n/a" if result.score is None else f"{result.score:.2f}"
    lines = [(f"frame: {result.decision} {score} / {result.threshold:.2f}", colour),
             (f"last {smoothed.frames}: {smoothed.decision.upper()} "
              f"({smoothed.live_share:.0%} live of {smoothed.judged} judged)",
              COLOURS.get(smoothed.decision, (255, 255, 255))),
             (f"{fps:.1f} fps" + (f"  {', '.join(result.reasons)}" if result.reasons else ""),
              (255, 255, 255))]
    y = int(30 * scale)
    for text, c in lines:
        cv2.putText(out, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0),
                    int(4 * scale), cv2.LINE_AA)
        cv2.putText(out, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, c,
                    max(1, int(2 * scale)), cv2.LINE_AA)
        y += int(30 * scale)
    return out


@click.command("watch")
@click.option("--camera", type=int, default=None, help="Camera index (0: the first).")
@click.option("--video", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A video file instead of a camera.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the annotated frames to this video (MP4).")
@click.option("--tests", "test_names", default="", show_default="the default tests",
              help="Comma-separated tests to run.")
@click.option("--every", default=1, show_default=True, type=click.IntRange(1),
              help="Score every k-th frame.")
@click.option("--window", default=15, show_default=True, type=click.IntRange(1),
              help="Frames the smoothed decision looks back on.")
@click.option("--live-share", default=0.5, show_default=True,
              type=click.FloatRange(0.01, 1.0),
              help="Share of the judged frames in the window that must be live.")
@click.option("--max-frames", type=click.IntRange(1), default=None,
              help="Stop after this many scored frames (a camera runs until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per scored frame.")
@click.option("--show", is_flag=True, help="Also show a window (needs OpenCV with a GUI).")
def watch_command(camera: int | None, video: str | None, out: str | None, test_names: str,
                  every: int, window: int, live_share: float, max_frames: int | None,
                  as_json: bool, show: bool) -> None:
    """Score a camera or a video frame by frame with a live overlay."""
    from common.pipeline import fusion_for, load_tests, score_image

    if (camera is None) == (video is None):
        raise click.UsageError("give exactly one of --camera N and --video FILE")
    if out is None and not show and not as_json:
        raise click.UsageError("nothing to show: give --out FILE, --json or --show")
    settings = get_settings()
    try:
        names = default_registry().resolve(test_names.split(","), settings.default_tests)
        tests = load_tests(names, settings)
        fusion = fusion_for(settings)
    except LivenessError as exc:
        raise click.ClickException(exc.message) from exc
    smoother = DecisionSmoother(window, live_share)
    source_fps = 25.0
    if video is not None:
        probe = cv2.VideoCapture(str(video))
        source_fps = probe.get(cv2.CAP_PROP_FPS) or 25.0
        probe.release()
    writer = None
    last = time.perf_counter()
    fps = 0.0
    scored = 0
    try:
        for index, frame in iter_frames(camera if camera is not None else str(video), every,
                                        max_frames):
            result = score_image(frame, tests, settings, fusion)
            smoothed = smoother.update(result.decision)
            now = time.perf_counter()
            fps = 0.8 * fps + 0.2 / max(now - last, 1e-6) if scored else 1 / max(now - last,
                                                                                 1e-6)
            last, scored = now, scored + 1
            annotated = annotate(frame, result, smoothed, fps)
            if out is not None:
                if writer is None:
                    h, w = annotated.shape[:2]
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"),
                                             max(1.0, source_fps / every), (w, h))
                writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
            if as_json:
                click.echo(json.dumps({"frame": index, "decision": result.decision,
                                       "score": result.score, "reasons": list(result.reasons),
                                       "smoothed": dataclasses.asdict(smoothed),
                                       "fps": round(fps, 2)}))
            if show:
                cv2.imshow("liveness", cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
    except LivenessError as exc:
        raise click.ClickException(exc.message) from exc
    except cv2.error as exc:
        raise click.ClickException(f"OpenCV cannot show a window here ({exc}); use --out "
                                   "FILE") from exc
    finally:
        if writer is not None:
            writer.release()
    final = smoother.current()
    click.echo(f"{scored} frames scored; last {final.frames}: {final.decision} "
               f"({final.live_share:.0%} of {final.judged} judged frames live)"
               + (f"; annotated video: {out}" if out and Path(out).exists() else ""),
               err=True)
