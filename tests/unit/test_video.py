"""Video input: frames of a file, the smoothed decision, `liveness score` on a video
(a row per scored frame and one for the video) and `liveness watch`'s annotated output."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from common.videoio import DecisionSmoother, VideoError, is_video, iter_frames


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    """12 frames of the astronaut moving right by a pixel a frame (MPEG-4, 10 fps)."""
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for i in range(12):
        writer.write(np.roll(image, i, axis=1))
    writer.release()
    return str(path)


def test_frames_are_read_every_kth(video) -> None:
    frames = list(iter_frames(video, every=5))
    assert [i for i, _ in frames] == [0, 5, 10]
    assert frames[0][1].shape == (512, 512, 3) and frames[0][1].dtype == np.uint8
    assert [i for i, _ in iter_frames(video, every=2, max_frames=2)] == [0, 2]
    assert is_video(video) and not is_video("face.jpg")
    with pytest.raises(VideoError, match="cannot open"):
        list(iter_frames("/nonexistent/clip.mp4"))
    with pytest.raises(ValueError):
        list(iter_frames(video, every=0))


def test_the_smoothed_decision_votes_over_the_window() -> None:
    smoother = DecisionSmoother(window=4, live_share=0.5)
    assert smoother.update("retry").decision == "retry"
    assert smoother.update("live").decision == "live"        # 1 of 2 judged: half judged
    assert smoother.update("spoof").decision == "live"       # 1 of 2 live: share 0.5
    assert smoother.update("spoof").decision == "spoof"      # 1 of 3 live
    s = smoother.update("spoof")                             # the retry left the window
    assert (s.decision, s.judged, s.frames) == ("spoof", 4, 4)
    strict = DecisionSmoother(window=3, live_share=1.0)
    for d in ("live", "live", "spoof"):
        last = strict.update(d)
    assert last.decision == "spoof" and last.live_share == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        DecisionSmoother(window=0)


def test_liveness_score_takes_a_video(video, tmp_path) -> None:
    from cli import main

    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(main, ["score", video, "--every", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == [
        "astronaut.mp4#frame=0", "astronaut.mp4#frame=5", "astronaut.mp4#frame=10",
        "astronaut.mp4"]
    frames, summary = rows[:3], rows[3]
    assert all(r["decision"] in ("live", "spoof", "retry") for r in frames)
    scores = [float(r["score_live"]) for r in frames]
    assert float(summary["score_live"]) == pytest.approx(np.mean(scores), abs=1e-6)
    assert summary["reasons"].startswith("video:3_of_3_frames_judged")
    votes = [r["decision"] for r in frames if r["decision"] != "retry"]
    expected = "live" if votes.count("live") >= len(votes) / 2 else "spoof"
    assert summary["decision"] == expected


def test_liveness_watch_writes_an_annotated_video(video, tmp_path) -> None:
    from cli import main

    out = tmp_path / "watched.mp4"
    result = CliRunner().invoke(main, ["watch", "--video", video, "--out", str(out),
                                       "--every", "3", "--json", "--window", "2"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["frame"] for line in lines] == [0, 3, 6, 9]
    assert all(line["smoothed"]["frames"] <= 2 and line["fps"] > 0 for line in lines)
    frames = list(iter_frames(str(out)))
    assert len(frames) == 4
    original = dict(iter_frames(video))[0]
    assert np.abs(frames[0][1].astype(int) - original.astype(int)).mean() > 1  # drawn on
    usage = CliRunner().invoke(main, ["watch", "--video", video])
    assert usage.exit_code == 2 and "--out" in usage.output
    both = CliRunner().invoke(main, ["watch", "--camera", "0", "--video", video, "--json"])
    assert both.exit_code == 2
