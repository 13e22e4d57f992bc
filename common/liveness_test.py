"""What the pipeline needs from a liveness test at serving time.

A test wraps a fitted :class:`common.estimator.LivenessEstimator` with its input
preparation (whole image, face crop, 3D volume …) and turns one decoded image plus
its face detection into P(live).

A test whose score does not depend on the face (a whole-image test) sets
``needs_face = False``: it is then given ``face=None`` everywhere — in process and in
the service, where it runs alongside the face stage instead of after it (the job's
latency is then the longer of the two, not their sum). Every other test is given the
face the face stage found, once per job.
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
    #: False for a test that ignores the face (it is then given ``None``).
    needs_face: bool

    def score(self, image: np.ndarray, face: FaceDetection | None) -> float:
        """P(live) for an RGB uint8 image (H, W, 3) and where its face is."""
        ...


def needs_face(test: object) -> bool:
    """Whether ``test`` must be given the face (True unless it says otherwise)."""
    return bool(getattr(test, "needs_face", True))
