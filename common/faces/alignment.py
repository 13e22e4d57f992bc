"""Face crops: the five-point aligned crop and the seed's square-box crop.

Aligned crop: a similarity transform (rotation, uniform scale, translation; Umeyama's
least squares, ``skimage.transform.SimilarityTransform``) maps the five landmarks onto
InsightFace's ArcFace reference points (Deng et al., "ArcFace", CVPR 2019; the 112×112
template of ``insightface/utils/face_align.py``), so the eyes are level and the
inter-ocular distance is fixed. ``context`` widens the view around that framing: the
template face is drawn at 1/``context`` of the crop, centred on the same point.

At ``context = 1`` a crop of side ``size`` has the eyes on row ``0.46 · size`` and an
inter-ocular distance of ``0.315 · size``; at ``context = c`` these distances are
divided by ``c`` about the crop centre (``c = 2``: the face fills the middle half, with
the hair, shoulders and, for an attack, the screen bezel or paper edge around it).

Square-box crop (:func:`crop_face`): the seed's ``s = max(h, w)`` square from the
detection box's top-left corner (:func:`common.faces.locate.square_box`), resized,
turned back upright when the face lies rotated by 90/180/270°.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from common.result import FaceBox, FaceDetection

#: ArcFace's five reference points for a 112×112 crop: (x, y) of the image-left eye,
#: image-right eye, nose tip, image-left and image-right mouth corners.
ARCFACE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)


def alignment_matrix(landmarks: np.ndarray, size: int, context: float = 1.0) -> np.ndarray:
    """The 2×3 similarity mapping five image points (5, 2) onto the crop's template.

    Raises ``ValueError`` for a non-positive ``size``/``context``, a landmark array that
    is not (5, 2), or degenerate points.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected five (x, y) landmarks; got shape {points.shape}")
    if size < 1 or context <= 0:
        raise ValueError(f"size and context must be positive; got {size}, {context}")
    centre = size / 2.0
    template = (ARCFACE_112 * (size / 112.0) - centre) / context + centre
    tform = SimilarityTransform.from_estimate(points, template)
    if not tform or not np.all(np.isfinite(tform.params)):
        raise ValueError("the landmarks are degenerate (no similarity transform)")
    return tform.params[:2]


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 112,
                 context: float = 1.0, local: bool = False) -> np.ndarray:
    """The face aligned on its five landmarks: RGB uint8 (size, size, 3).

    ``landmarks`` (5, 2) in image pixels (``FaceDetection.landmarks``); ``context`` ≥ 1
    widens the view (module docstring). Pixels outside the image are replicated from
    its border, so a crop near the frame edge has no black wedges for a model to learn.
    Shrinking uses area averaging on a pre-reduced copy (no aliasing) of the image;
    ``local=True`` reduces only the part the crop covers, so the cost does not grow with
    the image's size (the face stage's own measures use it; the area-averaging grid then
    starts elsewhere, which moves pixels by about one level on average).
    """
    matrix = alignment_matrix(landmarks, size, context)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    source = np.asarray(image)
    if local:
        source, matrix = _covered_part(source, matrix, size)
    if scale < 0.5:  # reduce first: warpAffine's bilinear sampling aliases when shrinking
        factor = 1.0 / scale / 1.5
        h, w = source.shape[:2]
        small = cv2.resize(source, (max(1, round(w / factor)), max(1, round(h / factor))),
                           interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        matrix = matrix @ np.array([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1]])
        source = small
    return cv2.warpAffine(np.ascontiguousarray(source), matrix, (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _covered_part(image: np.ndarray, matrix: np.ndarray, size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` a ``size``² crop by the 2×3 ``matrix`` samples (its
    footprint, 2 px wider for interpolation, clipped to the image) and the matrix from
    that part's pixels; the whole image when the footprint misses it (the crop is then
    all replicated border)."""
    h, w = image.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    at = corners @ inverse[:, :2].T + inverse[:, 2]
    x0 = max(int(np.floor(at[:, 0].min())) - 2, 0)
    y0 = max(int(np.floor(at[:, 1].min())) - 2, 0)
    x1 = min(int(np.ceil(at[:, 0].max())) + 3, w)
    y1 = min(int(np.ceil(at[:, 1].max())) + 3, h)
    if x1 <= x0 or y1 <= y0 or (x0, y0, x1, y1) == (0, 0, w, h):
        return image, matrix
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    return image[y0:y1, x0:x1], matrix @ shift


def face_crop(image: np.ndarray, face: FaceDetection, size: int = 112,
              context: float = 1.0) -> np.ndarray:
    """The aligned crop of a located face; without landmarks, the upright square crop."""
    if face.landmarks and len(face.landmarks) == 5:
        return aligned_crop(image, np.asarray(face.landmarks), size, context)
    return crop_face(image, face.box, size, rotation=face.rotation)


def crop_face(image: np.ndarray, box: FaceBox, size: int, rotation: int = 0) -> np.ndarray:
    """The ``box`` region resized to ``size`` × ``size`` (give it a square box).

    Shrinks with ``INTER_AREA`` (no aliasing) and enlarges with ``INTER_CUBIC``; then
    turns the crop counter-clockwise by ``rotation`` degrees (a multiple of 90; the
    face's clockwise rotation, ``FaceDetection.rotation``) so the face is upright.
    Raises ``ValueError`` for a non-positive size, a box outside the image or a rotation
    that is not a multiple of 90.
    """
    if size < 1:
        raise ValueError(f"size must be positive; got {size}")
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees; got {rotation}")
    image = np.asarray(image)
    h, w = image.shape[:2]
    top, bottom = max(box.top, 0), min(box.bottom, h)
    left, right = max(box.left, 0), min(box.right, w)
    if bottom <= top or right <= left:
        raise ValueError(f"the box {box.to_dict()} does not overlap the {w}x{h} image")
    crop = np.ascontiguousarray(image[top:bottom, left:right])
    if crop.shape[0] != size or crop.shape[1] != size:
        shrinking = crop.shape[0] * crop.shape[1] > size * size
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (size, size), interpolation=interp)
    else:
        crop = crop.copy()
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(crop, k=turns)) if turns else crop
