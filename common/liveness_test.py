"""What the pipeline needs from a liveness test at serving time.

A test wraps a fitted :class:`common.estimator.LivenessEstimator` with its input
preparation (whole image, face crop, 3D volume …) and turns one decoded image plus
its face detection into P(live).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from common.estimator import ModelInfo
from common.result import FaceDetection


class LivenessTest(Protocol):
    """One liveness test, loaded once per process."""

    name: str
    info: ModelInfo

    def score(self, image: np.ndarray, face: FaceDetection) -> float:
        """P(live) for an RGB uint8 image and where its face is."""
        ...
