"""Frame access for video-based datasets.

Frames are read by decoding the file sequentially (``grab`` every frame,
``retrieve`` only the wanted ones) instead of seeking: seeking in long-GOP
codecs is inexact in OpenCV's FFmpeg backend, and a frame index must always
name the same pixels. All sampled frames of the last recording read are decoded
together and memoised, so a cache build, which walks samples recording by
recording, decodes each file once.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from common.datasets.base import DatasetManager, Sample, encode_png, even_indices, frame_key
from common.errors import DatasetError


def frame_count(path: Path) -> int:
    """Number of frames of a video: the container's count, else counted by decoding."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(f"cannot open video {path}")
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if declared > 0:
            return declared
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` as RGB uint8 arrays, decoded in one pass."""
    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(f"cannot open video {path}")
        last = max(wanted, default=-1)
        for i in range(last + 1):
            if not cap.grab():
                break
            if i in wanted:
                ok, bgr = cap.retrieve()
                if not ok:
                    break
                frames[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    missing = sorted(wanted - frames.keys())
    if missing:
        raise DatasetError(f"{path}: cannot decode frame(s) {missing}")
    return frames


class FrameDataset(DatasetManager):
    """A dataset whose samples are frames sampled evenly from recordings.

    Subclasses list recordings with :meth:`_recordings` and decode frames with
    :meth:`_decode_frames`; frames are handed out as lossless PNG bytes.
    """

    def __init__(self, root: str | Path, frames_per_video: int = 10) -> None:
        if int(frames_per_video) < 1:
            raise ValueError(f"frames_per_video must be >= 1, not {frames_per_video}")
        super().__init__(root)
        self.frames_per_video = int(frames_per_video)
        self._indices: dict[str, list[int]] = {}
        self._memo_path: str | None = None
        self._memo: dict[int, np.ndarray] = {}

    @abstractmethod
    def _recordings(self) -> list[tuple[str, int, Sample]]:
        """``(root-relative path, frame count, template sample)`` per recording."""

    @abstractmethod
    def _decode_frames(self, path: Path, indices: list[int]) -> dict[int, np.ndarray]:
        """RGB uint8 frames of ``path`` at ``indices``."""

    def _list_samples(self) -> list[Sample]:
        samples = []
        for rel, n_frames, template in self._recordings():
            indices = even_indices(n_frames, self.frames_per_video)
            self._indices[rel] = indices
            samples.extend(replace(template, key=frame_key(rel, i)) for i in indices)
        return samples

    def _frame(self, sample: Sample) -> np.ndarray:
        """The sample's frame as RGB uint8 (decoded once per recording and memoised)."""
        if sample.frame is None:
            raise DatasetError(f"{sample.key} does not name a frame ('#frame=N')")
        rel, index = sample.path, sample.frame
        if self._memo_path != rel or index not in self._memo:
            if self._samples is None:
                self.samples()
            wanted = sorted(set(self._indices.get(rel, [])) | {index})
            self._memo = self._decode_frames(self.root / rel, wanted)
            self._memo_path = rel
        return self._memo[index]

    def read_bytes(self, sample: Sample) -> bytes:
        """Lossless PNG of the frame: a video frame has no original still encoding."""
        return encode_png(self._frame(sample))

    def read_image(self, sample: Sample) -> np.ndarray:
        return self._frame(sample).copy()
