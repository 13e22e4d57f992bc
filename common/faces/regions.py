"""The face and its surround in an aligned crop: which pixels are skin, which are not.

The photometric capture measures (:mod:`common.faces.photometry`) compare parts of the
picture, so they need to know which pixels are the face's skin, which are its
surround, and which fall outside the image. :func:`face_regions` answers this on the
aligned crop at context 2 (:mod:`common.faces.alignment`: the face fills the middle
half, with hair, shoulders and background around it), from Face Mesh's outlines
(:data:`~common.faces.landmarks.FACE_OVAL` and the eyes, eyebrows and lips).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.faces.alignment import aligned_crop, alignment_matrix
from common.faces.landmarks import (
    FACE_OVAL,
    LEFT_BROW,
    LEFT_EYE,
    LIPS,
    RIGHT_BROW,
    RIGHT_EYE,
    Landmarks,
)

#: Side (pixels) and context of the crop the regions are measured on.
REGION_SIDE = 128
REGION_CONTEXT = 2.0


@dataclass(frozen=True)
class FaceRegions:
    """An aligned crop and its masks, all (``REGION_SIDE``, ``REGION_SIDE``).

    ``rgb`` uint8 (S, S, 3); ``luma`` float32 BT.601 luma 0-255; boolean masks:
    ``inside`` (the pixel lies in the image, not in the replicated border), ``face``
    (inside the face oval), ``skin`` (``face`` without the eyes, eyebrows and lips),
    ``surround`` (inside the image but outside the face oval: hair, neck, background).
    """

    rgb: np.ndarray
    luma: np.ndarray
    inside: np.ndarray
    face: np.ndarray
    skin: np.ndarray
    surround: np.ndarray


def _fill(shape: tuple[int, int], points: np.ndarray, hull: bool = False) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    polygon = np.round(points).astype(np.int32)
    cv2.fillPoly(mask, [cv2.convexHull(polygon) if hull else polygon], 1)
    return mask.astype(bool)


def face_regions(image: np.ndarray, marks: Landmarks, side: int = REGION_SIDE,
                 context: float = REGION_CONTEXT) -> FaceRegions:
    """The regions of the face ``marks`` describes in the RGB uint8 ``image`` (H, W, 3).

    Raises ``ValueError`` for degenerate landmarks (no similarity transform).
    """
    matrix = alignment_matrix(marks.five, side, context)
    rgb = aligned_crop(image, marks.five, side, context, local=True)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # pixel centres of the crop in image coordinates: inside the image or not
    inverse = cv2.invertAffineTransform(matrix)
    grid = np.stack(np.meshgrid(np.arange(side, dtype=np.float64),
                                np.arange(side, dtype=np.float64)), axis=-1)
    at = grid @ inverse[:, :2].T + inverse[:, 2]
    h, w = image.shape[:2]
    inside = (at[..., 0] >= -0.5) & (at[..., 0] <= w - 0.5) & \
        (at[..., 1] >= -0.5) & (at[..., 1] <= h - 0.5)
    mesh = marks.mesh.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    shape = (side, side)
    face = _fill(shape, mesh[list(FACE_OVAL)])
    parts = np.zeros(shape, bool)
    for outline, hull in ((RIGHT_EYE, False), (LEFT_EYE, False), (LIPS, False),
                          (RIGHT_BROW, True), (LEFT_BROW, True)):
        parts |= _fill(shape, mesh[list(outline)], hull)
    return FaceRegions(rgb=rgb, luma=luma, inside=inside, face=face & inside,
                       skin=face & ~parts & inside, surround=inside & ~face)
