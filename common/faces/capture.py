"""Capture checks: can this face be judged at all? (in the spirit of ISO/IEC 29794-5)

ISO/IEC 29794-5 (face image quality) names capture-related quality components —
illumination/exposure, sharpness, face size and inter-eye distance, face fully in the
image, head pose, a single face — that decide whether a face image is fit for
automated use. We measure one plain number per component and compare it with a
threshold. Sharpness and over-exposure are measured on the aligned crop (112×112 at
context 1, :mod:`common.faces.alignment`), exposure and backlight on the context-2 crop
split into skin and surround (:mod:`common.faces.regions`,
:mod:`common.faces.photometry`), the framing in the face's own frame
(:mod:`common.faces.framing`), so that none depends on the image's resolution or on
the face's in-plane angle:

==================== ============================ ==========================================
reason               measure (``quality`` key)    definition
==================== ============================ ==========================================
face_too_small       ``face_side``                longer side of the detection box, pixels
face_partial         ``face_cut``                 the largest part of the face region
                                                  (cheek to cheek, eyebrows to chin) cut off
                                                  by an image edge from one side, as a
                                                  fraction of the region's midline
                     ``box_cut``                  the largest part of the detection box
                                                  outside one image edge (same limit)
                     ``edge_margin``              distance of the five landmarks to the
                                                  nearest edge, in inter-ocular distances
landmarks_unreliable ``mesh_tilt``                the face's residual in-plane angle in the
                                                  landmark model's last crop, degrees
                     ``eye_mouth_drop``           mouth below the eye line, in eye distances
face_turned          ``yaw``, ``pitch``           head pose, degrees (from the mesh's depth)
too_dark             ``exposure``                 95th percentile luma of the non-skin
                                                  pixels around the face, 0-255
backlit              ``backlight``                surround / skin median luminance, linear
overexposed          ``overexposed``              fraction of crop pixels with luma ≥ 250
too_blurry           ``blur``                     Crete et al.'s no-reference blur effect of
                                                  the crop's luma, 0 (sharp) to 1 (blurred)
multiple_faces       ``faces``                    faces at least
                                                  ``multiple_faces_min_ratio`` of the largest
                                                  face's side
==================== ============================ ==========================================

The thresholds (``LIVENESS_*`` settings, README) were chosen with
``bench/face_coverage.py`` on the live images of ``../shared/data``, which prints the
measures' percentiles and the pass rate (the README gives it and what each limit costs;
"every landmark in the image" is a rule, not a percentile). The two
``landmarks_unreliable`` limits are fixed validity conditions of the landmark model, not
tunables (:data:`MAX_MESH_TILT_DEG`, :data:`MIN_EYE_MOUTH_DROP`).
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
from common.faces.framing import box_cut, edge_margin, eye_mouth_drop, face_cut
from common.faces.landmarks import Landmarks
from common.faces.photometry import EXPOSURE_PERCENTILE, backlight, exposure
from common.faces.regions import face_regions

#: Side of the aligned crop sharpness and over-exposure are computed on.
MEASURE_SIDE = 112
#: Luma at or above which a pixel counts as saturated.
SATURATED_LUMA = 250
#: Face Mesh is accurate on a face upright in its crop within about this angle
#: (degrees); :meth:`FaceMesh.refine` brings it within 5° or the landmarks are unreliable.
MAX_MESH_TILT_DEG = 15.0
#: Below this eye-to-mouth drop (eye distances; ~1 frontal, ~0.75 at 40° of pitch) the
#: five points are not a face's (mirrored or collapsed).
MIN_EYE_MOUTH_DROP = 0.3


@dataclass(frozen=True)
class Assessment:
    """The capture measures, the failed checks' reason codes, and whether it passed."""

    measures: dict[str, float]
    reasons: tuple[str, ...]
    ok: bool


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB uint8 image, float32 (H, W) in 0-255."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)


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


def _box_crop(image: np.ndarray, face: RawFace) -> np.ndarray:
    """The detection box resized to the measure side (for degenerate landmarks)."""
    x0, y0, x1, y1 = (round(v) for v in face.box)
    h, w = image.shape[:2]
    region = image[max(y0, 0):max(min(y1, h), 1), max(x0, 0):max(min(x1, w), 1)]
    return cv2.resize(np.ascontiguousarray(region) if region.size else image,
                      (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_AREA)


def _landmark_measures(image: np.ndarray, marks: Landmarks) -> dict[str, float] | None:
    """The measures that need the landmarks; ``None`` when they are degenerate."""
    try:
        crop = aligned_crop(image, marks.five, MEASURE_SIDE, 1.0, local=True)
        regions = face_regions(image, marks)
        cut = face_cut(marks.five, image.shape)
    except ValueError:
        return None
    grey = luma(crop)
    return {
        "face_cut": round(cut, 4),
        "edge_margin": round(edge_margin(marks.five, image.shape), 3),
        "mesh_tilt": round(marks.tilt, 2),
        "eye_mouth_drop": round(eye_mouth_drop(marks.five), 3),
        "yaw": round(marks.yaw, 2),
        "pitch": round(marks.pitch, 2),
        "exposure": round(exposure(regions), 2),
        "backlight": round(min(backlight(regions), 1e4), 3),
        "overexposed": round(overexposed_fraction(grey), 4),
        "blur": round(blur(grey), 4),
    }


def assess_capture(image: np.ndarray, face: RawFace, faces: Sequence[RawFace],
                   marks: Landmarks, settings: Settings, pixel_scale: float = 1.0
                   ) -> Assessment:
    """Measure the face and run every check (module docstring) against ``settings``.

    ``image`` RGB uint8 (H, W, 3) with ``face``, ``faces`` and ``marks`` in its pixels;
    ``pixel_scale`` original-image pixels per pixel of ``image`` (the face stage
    measures a downscaled copy of very large images; ``face_side`` is reported in
    original pixels). Degenerate landmarks (no similarity transform) give
    ``landmarks_unreliable``, and the photometric measures are then taken on the
    detection box.
    """
    others = [f for f in faces if f is not face
              and f.side >= settings.multiple_faces_min_ratio * face.side]
    found = _landmark_measures(image, marks)
    if found is None:
        grey = luma(_box_crop(image, face))
        found = {"face_cut": 0.0, "edge_margin": 0.0, "mesh_tilt": 0.0,
                 "eye_mouth_drop": 0.0, "yaw": round(marks.yaw, 2),
                 "pitch": round(marks.pitch, 2),
                 "exposure": round(float(np.percentile(grey, EXPOSURE_PERCENTILE)), 2),
                 "backlight": 1.0, "overexposed": round(overexposed_fraction(grey), 4),
                 "blur": round(blur(grey), 4)}
    measures = {"face_side": round(face.side * pixel_scale, 1),
                "box_cut": round(box_cut(face.box, image.shape), 4), **found,
                "faces": float(1 + len(others))}
    reasons = []
    if others:
        reasons.append("multiple_faces")
    if measures["face_side"] < settings.min_face_side:
        reasons.append("face_too_small")
    if max(measures["face_cut"], measures["box_cut"]) > settings.max_face_cut or \
            measures["edge_margin"] < settings.min_edge_margin:
        reasons.append("face_partial")
    if measures["mesh_tilt"] > MAX_MESH_TILT_DEG or \
            measures["eye_mouth_drop"] < MIN_EYE_MOUTH_DROP:
        reasons.append("landmarks_unreliable")
    if abs(measures["yaw"]) > settings.max_yaw_deg or abs(measures["pitch"]) > \
            settings.max_pitch_deg:
        reasons.append("face_turned")
    if measures["exposure"] < settings.min_exposure:
        reasons.append("too_dark")
    if measures["backlight"] > settings.max_backlight:
        reasons.append("backlit")
    if measures["overexposed"] > settings.max_overexposed:
        reasons.append("overexposed")
    if measures["blur"] > settings.max_blur:
        reasons.append("too_blurry")
    blocking = [r for r in reasons
                if r != "multiple_faces" or settings.multiple_faces == "retry"]
    return Assessment(measures, tuple(reasons), not blocking)
