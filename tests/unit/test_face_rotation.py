"""Landmarks, pose and crops are right at every in-plane angle (issue 15, item 12).

Each subject (the astronaut and Grace Hopper, each also mirrored: ``face_subjects``) is
put on a canvas large enough that no turn cuts it, turned clockwise by every 15° from 0
to 345°, and located. Through the known rotation, the five landmarks must land on the
upright face's, the roll must be the upright roll plus the angle, yaw and pitch must stay
near their upright values, the aligned crop must match the upright one, and the capture
verdict must not change. Before the fix, faces at 45°, 60° and 135° got landmarks a
third to a half of an eye distance off (the mesh ran on a crop turned by the detector's
inaccurate eye keypoints), with yaw -29° at 60° and a crop no longer matching the face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from common.config import Settings
from common.faces import face_crop, locate_face
from common.faces.blazeface import RawFace
from common.faces.capture import MAX_MESH_TILT_DEG, assess_capture
from common.faces.landmarks import REFINE_TOLERANCE_DEG, Landmarks, face_mesh
from tests.unit.face_subjects import landmarks_of, on_canvas, subjects

SETTINGS = Settings()
ANGLES = range(0, 360, 15)


def turn(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned clockwise by ``angle`` degrees about its centre, and the 2×3
    matrix mapping original points into the turned image."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    turned = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return turned, matrix


def smooth_grey(crop: np.ndarray) -> np.ndarray:
    """Grey, slightly blurred crop: compares alignment, not resampling noise."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return cv2.GaussianBlur(grey, (0, 0), 2.0).ravel()


@pytest.mark.parametrize("name", list(subjects()))
def test_every_in_plane_angle(name: str) -> None:
    canvas = on_canvas(subjects()[name])
    upright = locate_face(canvas, SETTINGS)
    assert upright.found and upright.capture_ok, upright.reasons
    five = np.asarray(upright.landmarks)
    iod = math.dist(five[0], five[1])
    reference = smooth_grey(face_crop(canvas, upright, 112))
    failures = []
    for angle in ANGLES:
        image, matrix = turn(canvas, angle)
        face = locate_face(image, SETTINGS)
        if not face.found:
            failures.append((angle, "not found"))
            continue
        expected = five @ matrix[:, :2].T + matrix[:, 2]
        error = float(np.hypot(*(np.asarray(face.landmarks) - expected).T).max()) / iod
        roll = (face.pose["roll"] - upright.pose["roll"] - angle + 180) % 360 - 180
        corr = float(np.corrcoef(smooth_grey(face_crop(image, face, 112)), reference)[0, 1])
        problems = {
            "landmarks (eye distances)": (error, error > 0.12),
            "roll - angle (deg)": (roll, abs(roll) > 4),
            "yaw (deg)": (face.pose["yaw"], abs(face.pose["yaw"] - upright.pose["yaw"]) > 6),
            "pitch (deg)": (face.pose["pitch"],
                            abs(face.pose["pitch"] - upright.pose["pitch"]) > 6),
            "crop correlation": (corr, corr < 0.85),
            "reasons": (face.reasons, face.reasons != upright.reasons),
        }
        bad = {k: round(v, 3) if isinstance(v, float) else v
               for k, (v, failed) in problems.items() if failed}
        if bad:
            failures.append((angle, bad))
    assert not failures, failures


def test_refine_turns_the_crop_upright() -> None:
    """Face Mesh run on a crop turned 50° off the face is re-run on its own landmarks
    until the face stands within the tolerance in its crop."""
    canvas = on_canvas(subjects()["astronaut"])
    image, _ = turn(canvas, 50)
    good = landmarks_of(image)
    centre = good.five.mean(axis=0)
    half = 1.3 * float(np.hypot(*(good.five[1] - good.five[0])))
    box = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    off = face_mesh().landmarks(image, box, math.radians(good.roll - 50))
    assert off.tilt > REFINE_TOLERANCE_DEG
    fixed = face_mesh().refine(image, off)
    assert fixed.tilt <= REFINE_TOLERANCE_DEG
    assert float(np.abs(fixed.five - good.five).max()) < 0.1 * half


def test_mirrored_or_unsettled_landmarks_are_unreliable() -> None:
    """Points with the mouth above the eyes (mirrored), or a mesh that saw the face
    tilted past the model's range, are never judged."""
    image = subjects()["astronaut"]
    marks = landmarks_of(image)
    face = RawFace((174.0, 70.0, 279.0, 175.0), np.zeros((0, 2), np.float32), 0.9)
    assert assess_capture(image, face, [face], marks, SETTINGS).ok
    centre_y = marks.five[:2, 1].mean()
    mirrored = marks.five.copy()
    mirrored[:, 1] = 2 * centre_y - mirrored[:, 1]  # reflected about the eye line
    flipped = Landmarks(marks.mesh, mirrored, marks.presence_logit, marks.yaw,
                        marks.pitch, marks.roll, marks.crop_roll)
    result = assess_capture(image, face, [face], flipped, SETTINGS)
    assert "landmarks_unreliable" in result.reasons and not result.ok
    tilted = Landmarks(marks.mesh, marks.five, marks.presence_logit, marks.yaw,
                       marks.pitch, marks.roll, marks.roll + MAX_MESH_TILT_DEG + 5)
    result = assess_capture(image, face, [face], tilted, SETTINGS)
    assert "landmarks_unreliable" in result.reasons and not result.ok
