"""Real faces for the face-stage tests, without ../shared: the photographs that ship with
installed packages, and images made from them.

Only two real faces are available offline: scikit-image's astronaut (Eileen Collins,
``skimage.data.astronaut``) and matplotlib's sample portrait of Grace Hopper
(``matplotlib.cbook.get_sample_data("grace_hopper.jpg")``; matplotlib is a core
dependency). The tests widen them into "subjects" by mirroring them (a face is not
symmetric: landmarks, pose and cuts change sides) and by re-framing them; this is
stated wherever a test says "several subjects".
"""

from __future__ import annotations

import functools
import warnings

import cv2
import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data
from skimage.color import lab2rgb, rgb2lab

from common.config import Settings
from common.faces import get_detector, search_faces
from common.faces.landmarks import (
    FACE_OVAL,
    LEFT_BROW,
    LEFT_EYE,
    LIPS,
    RIGHT_BROW,
    RIGHT_EYE,
    Landmarks,
    face_mesh,
)


@functools.cache
def hopper() -> np.ndarray:
    """Grace Hopper's portrait, RGB uint8 (600, 512, 3)."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        return np.asarray(image.convert("RGB")).copy()


def subjects() -> dict[str, np.ndarray]:
    """The astronaut and Grace Hopper, each also mirrored (four faces)."""
    astronaut = data.astronaut()
    return {"astronaut": astronaut, "hopper": hopper(),
            "astronaut_mirrored": np.ascontiguousarray(astronaut[:, ::-1]),
            "hopper_mirrored": np.ascontiguousarray(hopper()[:, ::-1])}


def on_canvas(image: np.ndarray, colour: tuple[int, int, int] = (70, 100, 130)
              ) -> np.ndarray:
    """``image`` centred on a square canvas of its diagonal (nothing is cut by any
    rotation about the centre)."""
    h, w = image.shape[:2]
    side = int(np.ceil(np.hypot(h, w))) + 2
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(image, top, side - h - top, left, side - w - left,
                              cv2.BORDER_CONSTANT, value=colour)


def landmarks_of(image: np.ndarray) -> Landmarks:
    """The face stage's refined Face Mesh landmarks of the image's face."""
    search = search_faces(image, get_detector(Settings().face_detector), 640)
    assert search.best is not None, "no face"
    return face_mesh().refine(image, search.best.marks)


def skin_mask(image: np.ndarray, marks: Landmarks) -> np.ndarray:
    """Float32 (H, W) in 0-1: the face oval without the eyes, eyebrows and lips,
    feathered over 5 % of the inter-ocular distance."""
    mask = np.zeros(image.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(marks.mesh[list(FACE_OVAL)]).astype(np.int32)], 1.0)
    for outline, hull in ((RIGHT_EYE, False), (LEFT_EYE, False), (LIPS, False),
                          (RIGHT_BROW, True), (LEFT_BROW, True)):
        points = np.round(marks.mesh[list(outline)]).astype(np.int32)
        cv2.fillPoly(mask, [cv2.convexHull(points) if hull else points], 0.0)
    iod = float(np.hypot(*(marks.five[1] - marks.five[0])))
    return cv2.GaussianBlur(mask, (0, 0), 0.05 * iod)


def retone_skin(image: np.ndarray, lightness: float, yellow: float) -> np.ndarray:
    """The image with its face's skin moved in CIELAB to a median L* of ``lightness``
    and b* of ``yellow`` (texture kept: every skin pixel is shifted by the same amount),
    eyes, eyebrows, lips, hair and background untouched. L* 32, b* 16 gives a dark skin
    tone (ITA ≈ −45°), L* 72, b* 14 a light one (ITA ≈ 55°)."""
    mask = skin_mask(image, landmarks_of(image))
    lab = rgb2lab(image / 255.0)
    core = mask > 0.5
    lab[..., 0] += mask * (lightness - float(np.median(lab[..., 0][core])))
    lab[..., 2] += mask * (yellow - float(np.median(lab[..., 2][core])))
    with warnings.catch_warnings():  # a few out-of-gamut colours are clipped
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(lab)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
