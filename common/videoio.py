"""Video input for ``liveness watch`` and ``liveness score``: frames of a file or a camera,
and the decision smoothed over the last frames.

The seed proposed deciding over several frames of a video rather than one: a single
frame's decision flickers as the face moves and the light changes. :class:`DecisionSmoother`
takes each frame's fused result and answers the decision of the last ``window`` frames:
the frames that were judged (not ``retry``) vote, ``live`` when at least ``live_share`` of
them are live and at least half the window was judged, ``spoof`` when that share is
not reached, ``retry`` while too few frames could be judged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.errors import LivenessError

#: File suffixes read as videos (OpenCV's FFmpeg backend decodes them).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg",
                            ".mpeg", ".y4m"})


class VideoError(LivenessError):
    """A video or camera cannot be opened or read."""

    code = "unreadable_video"
    http_status = 422


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is read as a video (by its suffix, :data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_capture(source: str | int) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` of a file path or a camera index; :class:`VideoError`
    when it cannot be opened."""
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        what = f"camera {source}" if isinstance(source, int) else f"video {source}"
        raise VideoError(f"cannot open {what}")
    return capture


def iter_frames(source: str | int, every: int = 1,
                max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB uint8 (H, W, 3) frame)`` of every ``every``-th frame (from 0), at most
    ``max_frames`` of them; frames in between are grabbed, not decoded."""
    if every < 1:
        raise ValueError("every must be at least 1")
    capture = open_capture(source)
    try:
        index, yielded = 0, 0
        while max_frames is None or yielded < max_frames:
            if index % every:
                if not capture.grab():
                    return
            else:
                ok, frame = capture.read()
                if not ok:
                    return
                yielded += 1
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


@dataclass(frozen=True)
class SmoothedDecision:
    """The smoothed decision, the share of judged frames that were live, and how many
    frames of the window were judged / held."""

    decision: str
    live_share: float
    judged: int
    frames: int


class DecisionSmoother:
    """Decision over the last ``window`` frames (module docstring)."""

    def __init__(self, window: int = 15, live_share: float = 0.5) -> None:
        if window < 1 or not 0.0 < live_share <= 1.0:
            raise ValueError("window must be at least 1 and live_share in (0, 1]")
        self.window, self.live_share = window, live_share
        self._decisions: deque[str] = deque(maxlen=window)

    def update(self, decision: str) -> SmoothedDecision:
        """Add one frame's decision (``live``/``spoof``/``retry``); the smoothed one."""
        self._decisions.append(decision)
        return self.current()

    def current(self) -> SmoothedDecision:
        judged = [d for d in self._decisions if d != "retry"]
        share = (sum(d == "live" for d in judged) / len(judged)) if judged else 0.0
        if not judged or 2 * len(judged) < len(self._decisions):
            decision = "retry"
        else:
            decision = "live" if share >= self.live_share else "spoof"
        return SmoothedDecision(decision, share, len(judged), len(self._decisions))
