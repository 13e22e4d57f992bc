"""Capture checks: can this face be judged at all? (in the spirit of ISO/IEC 29794-5)

ISO/IEC 29794-5 (face image quality) names capture-related quality components —
illumination/exposure, sharpness, face size and inter-eye distance, face fully in the
image, head pose, a single face — that decide whether a face image is fit for
automated use. We measure one plain number per component, each on the face's aligned
crop (112×112 at context 1, :mod:`common.faces.alignment`) so that it does not depend on
the image's resolution, and compare it with a configurable threshold:

============== ========================= ================================================
reason         measure (``quality`` key) definition
============== ========================= ================================================
face_too_small ``face_side``             longer side of the detection box, pixels
face_partial   ``cut_x``, ``cut_y``      the largest one-sided part of the detection
                                         box's width / height outside the image;
               ``edge_margin``           distance of the five landmarks to the nearest
                                         edge, in inter-ocular distances
face_turned    ``yaw``, ``pitch``        head pose, degrees (``solvePnP`` of mesh points)
too_dark       ``brightness``            mean luma (BT.601) of the aligned crop, 0-255
overexposed    ``overexposed``           fraction of crop pixels with luma ≥ 250
too_blurry     ``blur``                  Crete et al.'s no-reference blur effect of the
                                         crop's luma, 0 (sharp) to 1 (blurred)
multiple_faces ``faces``                 faces at least ``multiple_faces_min_ratio`` of
                                         the largest face's side
============== ========================= ================================================

The thresholds (``LIVENESS_*`` settings, README) were chosen by
``bench/face_coverage.py`` on the live images of ``../shared/data`` so that at least 99 %
of them pass every check; the script prints the percentiles it chose them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from skimage.measure import blur_effect

from common.config import Settings
from common.faces.alignment import aligned_crop
from common.faces.blazeface import RawFace
from common.faces.landmarks import Landmarks

#: Side of the aligned crop the photometric measures are computed on.
MEASURE_SIDE = 112
#: Luma at or above which a pixel counts as saturated.
SATURATED_LUMA = 250


@dataclass(frozen=True)
class Assessment:
    """The capture measures, the failed checks' reason codes, and whether it passed."""

    measures: dict[str, float]
    reasons: tuple[str, ...]
    ok: bool


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB uint8 image, float32 (H, W) in 0-255."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)


def brightness(grey: np.ndarray) -> float:
    """Mean luma, 0-255."""
    return float(grey.mean())


def overexposed_fraction(grey: np.ndarray) -> float:
    """Fraction of pixels with luma ≥ :data:`SATURATED_LUMA`."""
    return float((grey >= SATURATED_LUMA).mean())


def blur(grey: np.ndarray) -> float:
    """No-reference blur in [0, 1] (0 sharp, 1 blurred): Crete et al., "The blur effect:
    perception and estimation with a new no-reference perceptual blur metric", SPIE
    Electronic Imaging 2007, as ``skimage.measure.blur_effect`` computes it (the larger
    of the horizontal and vertical blur, so a one-directional motion blur counts in
    full; 11-pixel re-blur filter). 1.0 for a flat image.
    """
    if float(grey.var()) < 1e-6:
        return 1.0
    return float(blur_effect(grey / 255.0, h_size=11))


def cut_fractions(box: tuple[float, float, float, float], shape: Sequence[int]
                  ) -> tuple[float, float]:
    """How far the frame cuts the face: the larger of the parts of ``box``'s width outside
    the left or the right edge, and of its height outside the top or the bottom edge, as
    fractions of the box's width and height (0: the whole box is inside).

    Detectors regress the whole face's box even where the frame cuts it, so the part
    outside measures how much of the face is missing (the mesh, by contrast, squeezes its
    points into what is visible). One side at a time, because tight crops overflow the
    box a little on both sides (and cut the forehead), while a face cut by the frame loses
    a large part on one side.
    """
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return 1.0, 1.0
    cut_x = max(-x0, x1 - w, 0.0) / (x1 - x0)
    cut_y = max(-y0, y1 - h, 0.0) / (y1 - y0)
    return min(cut_x, 1.0), min(cut_y, 1.0)


def edge_margin(five: np.ndarray, shape: Sequence[int]) -> float:
    """Distance of the five landmarks (5, 2) to the nearest image edge, in inter-ocular
    distances; negative when a landmark lies outside the image."""
    h, w = int(shape[0]), int(shape[1])
    iod = max(float(np.hypot(*(five[1] - five[0]))), 1e-6)
    x, y = five[:, 0], five[:, 1]
    nearest = np.minimum(np.minimum(x, w - x), np.minimum(y, h - y))
    return float(nearest.min()) / iod


def assess_capture(image: np.ndarray, face: RawFace, faces: Sequence[RawFace],
                   marks: Landmarks, settings: Settings) -> Assessment:
    """Measure the face and run every check (module docstring) against ``settings``."""
    try:
        crop = aligned_crop(image, marks.five, MEASURE_SIDE, 1.0)
    except ValueError:  # degenerate landmarks: measure the detection box instead
        x0, y0, x1, y1 = (round(v) for v in face.box)
        h, w = image.shape[:2]
        region = image[max(y0, 0):max(min(y1, h), 1), max(x0, 0):max(min(x1, w), 1)]
        crop = cv2.resize(np.ascontiguousarray(region) if region.size else image,
                          (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_AREA)
    cut_x, cut_y = cut_fractions(face.box, image.shape)
    grey = luma(crop)
    others = [f for f in faces if f is not face
              and f.side >= settings.multiple_faces_min_ratio * face.side]
    measures = {
        "face_side": round(face.side, 1),
        "cut_x": round(cut_x, 4),
        "cut_y": round(cut_y, 4),
        "edge_margin": round(edge_margin(marks.five, image.shape), 3),
        "yaw": round(marks.yaw, 2),
        "pitch": round(marks.pitch, 2),
        "brightness": round(brightness(grey), 2),
        "overexposed": round(overexposed_fraction(grey), 4),
        "blur": round(blur(grey), 4),
        "faces": float(1 + len(others)),
    }
    reasons = []
    if others:
        reasons.append("multiple_faces")
    if measures["face_side"] < settings.min_face_side:
        reasons.append("face_too_small")
    if measures["cut_x"] > settings.max_face_cut_x or \
            measures["cut_y"] > settings.max_face_cut_y or \
            measures["edge_margin"] < settings.min_edge_margin:
        reasons.append("face_partial")
    if abs(measures["yaw"]) > settings.max_yaw_deg or abs(measures["pitch"]) > \
            settings.max_pitch_deg:
        reasons.append("face_turned")
    if measures["brightness"] < settings.min_brightness:
        reasons.append("too_dark")
    if measures["overexposed"] > settings.max_overexposed:
        reasons.append("overexposed")
    if measures["blur"] > settings.max_blur:
        reasons.append("too_blurry")
    blocking = [r for r in reasons
                if r != "multiple_faces" or settings.multiple_faces == "retry"]
    return Assessment(measures, tuple(reasons), not blocking)
