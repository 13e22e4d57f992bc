"""Face detection and square face crops.

Detection uses the two dlib detectors that face_recognition wraps: the HOG +
linear-SVM frontal detector (fast, CPU) and the MMOD CNN (King, "Max-Margin
Object Detection", arXiv:1502.00046; slower, more robust). We call dlib with the
models of ``face_recognition_models`` directly, exactly as
``face_recognition.face_locations`` does, so the boxes are identical; importing
``face_recognition`` itself would load ~115 MB of unused landmark/encoding models
per process and set Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` globally,
which would let truncated uploads through :mod:`common.imageio`.

Strategy of :func:`locate_face` (the first stage that finds a face wins):

1. the configured detector (``hog`` or ``cnn``) on a copy whose longer side is at
   most ``Settings.face_detect_max_side``;
2. ``<detector>_padded``: the image rescaled to a small working size and framed by
   a black border. Tight crops (the whole image is the face, common in uploads and
   datasets) defeat the detectors, whose windows need some context around the face;
   on the replay_dev live crops it finds the face in half the images plain HOG
   misses (a replicated border in a quarter; see ``_PADDED``);
3. ``cnn_padded`` (only when the configured detector is HOG): the MMOD CNN on a
   small padded copy, as a second, more robust detector. OpenCV's Haar cascade was
   the planned second detector, but OpenCV 5 no longer ships ``CascadeClassifier``
   nor the cascade files;
4. ``whole_image``: the largest centred square, ``found=False``, reason ``no_face``,
   so callers can still score the image and say that no face was found.

Boxes are half-open pixel ranges in original-image coordinates: rows ``top`` to
``bottom - 1`` and columns ``left`` to ``right - 1`` (``image[top:bottom, left:right]``).

Thread safety: dlib documents its detector objects as unsafe for concurrent calls,
so each detector is loaded once (``functools.cache``) and used under its own lock;
threads of one process therefore detect one at a time. Use processes to scale.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from common.config import Settings, get_settings
from common.result import FaceBox, FaceDetection

__all__ = ["FaceBox", "FaceDetection", "crop_face", "detect_faces", "locate_face",
           "square_box", "whole_image_box"]

#: No face was found; the box is the largest centred square of the image.
NO_FACE = "no_face"
#: More than one face was found; the largest one is used.
MULTIPLE_FACES = "multiple_faces"
#: The square face box is smaller than ``Settings.min_face_side`` original pixels.
FACE_TOO_SMALL = "face_too_small"
#: Every reason code this module emits, with its meaning (stable API strings).
REASONS: dict[str, str] = {
    NO_FACE: "no face was detected; the whole image (largest centred square) was used",
    MULTIPLE_FACES: "more than one face was detected; the largest one was used",
    FACE_TOO_SMALL: "the face box is smaller than the configured minimum side",
}

#: Values of :attr:`FaceDetection.method`.
METHODS = ("hog", "cnn", "hog_padded", "cnn_padded", "whole_image")
MODELS = ("hog", "cnn")

#: Upsampling passes per detector. HOG finds faces down to ~40 px with one pass;
#: the CNN finds faces from ~80 px without upsampling and one pass costs it ~4x time.
_UPSAMPLE = {"hog": 1, "cnn": 0}

#: Padded retry, per detector: (working longer side before the border, border as a
#: fraction of that side). Tuned on tight crops cut at (and 12 % inside) the HOG box
#: of nuaa_train/replay_dev faces, and on the replay_dev live crops: black borders beat
#: replicated/grey ones by far; 20 % beat 30-50 %; bigger working sizes found no more
#: faces and cost more (HOG ~15 ms here, the CNN ~220 ms).
_PADDED = {"hog": (280, 0.2), "cnn": (160, 0.2)}


# --- detectors (loaded once per process) -------------------------------------------------

_LOCKS = {"hog": threading.Lock(), "cnn": threading.Lock()}


@functools.cache
def _detector(model: str) -> Callable[[np.ndarray, int], list[tuple[int, int, int, int]]]:
    """The dlib detector for ``model`` as ``f(rgb, upsample) -> [(top, right, bottom, left)]``."""
    import dlib

    if model == "hog":
        hog = dlib.get_frontal_face_detector()

        def run(img: np.ndarray, upsample: int) -> list[tuple[int, int, int, int]]:
            return [_css(r) for r in hog(img, upsample)]

        return run
    with warnings.catch_warnings():  # face_recognition_models imports pkg_resources
        warnings.simplefilter("ignore")
        import face_recognition_models

    weights = face_recognition_models.cnn_face_detector_model_location()
    cnn = dlib.cnn_face_detection_model_v1(weights)

    def run_cnn(img: np.ndarray, upsample: int) -> list[tuple[int, int, int, int]]:
        return [_css(d.rect) for d in cnn(img, upsample)]

    return run_cnn


def _css(rect: object) -> tuple[int, int, int, int]:
    return rect.top(), rect.right(), rect.bottom(), rect.left()  # type: ignore[attr-defined]


def _run(model: str, img: np.ndarray, upsample: int) -> list[tuple[int, int, int, int]]:
    if model not in MODELS:
        raise ValueError(f"unknown face detector {model!r}; expected one of {MODELS}")
    detect = _detector(model)
    with _LOCKS[model]:
        return detect(np.ascontiguousarray(img), upsample)


# --- geometry ----------------------------------------------------------------------------


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept RGB (H, W, 3) and, leniently, grey (H, W) uint8 images."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an RGB image of shape (H, W, 3); got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image; got {image.dtype}")
    return image


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _map_back(
    boxes: Sequence[tuple[int, int, int, int]],
    scale: float,
    offset: int,
    shape: tuple[int, ...],
) -> list[FaceBox]:
    """Boxes found in a copy (resized by ``scale``, then bordered by ``offset``) → original."""
    h, w = shape[:2]
    out = []
    for top, right, bottom, left in boxes:
        t = min(max(round((top - offset) / scale), 0), h)
        b = min(max(round((bottom - offset) / scale), 0), h)
        lf = min(max(round((left - offset) / scale), 0), w)
        r = min(max(round((right - offset) / scale), 0), w)
        if b > t and r > lf:  # drop boxes that lie wholly in the border
            out.append(FaceBox(int(t), int(r), int(b), int(lf)))
    return out


def detect_faces(
    image: np.ndarray,
    model: str = "hog",
    *,
    max_side: int | None = Settings.face_detect_max_side,
    upsample: int | None = None,
) -> list[FaceBox]:
    """All faces found by ``model`` (``hog`` or ``cnn``), in original-image coordinates.

    Detection runs on a copy downscaled so its longer side is at most ``max_side``
    (``None``: full size); ``upsample`` defaults to 1 for HOG and 0 for the CNN.
    """
    image = _as_rgb(image)
    longest = max(image.shape[:2])
    scale = 1.0 if not max_side or longest <= max_side else max_side / longest
    up = _UPSAMPLE.get(model, 0) if upsample is None else upsample
    return _map_back(_run(model, _resize(image, scale), up), scale, 0, image.shape)


def _detect_padded(image: np.ndarray, model: str) -> list[FaceBox]:
    """Detect on a copy rescaled to the working size and framed by a black border."""
    side, fraction = _PADDED[model]
    scale = side / max(image.shape[:2])
    small = _resize(image, scale)
    pad = round(fraction * side)
    framed = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return _map_back(_run(model, framed, 0), scale, pad, image.shape)


def square_box(box: FaceBox, image_shape: Sequence[int]) -> FaceBox:
    """The square of side ``max(height, width)`` anchored at the box's top-left corner.

    If it overflows the image it is shifted back inside, keeping it square; it shrinks
    only when its side exceeds the image's shorter side.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    side = min(max(box.height, box.width), h, w)
    top = min(max(box.top, 0), h - side)
    left = min(max(box.left, 0), w - side)
    return FaceBox(top=top, right=left + side, bottom=top + side, left=left)


def whole_image_box(image_shape: Sequence[int]) -> FaceBox:
    """The largest centred square of the image."""
    h, w = int(image_shape[0]), int(image_shape[1])
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return FaceBox(top=top, right=left + side, bottom=top + side, left=left)


def locate_face(image: np.ndarray, settings: Settings | None = None) -> FaceDetection:
    """Find the face to score, falling back step by step (see the module docstring)."""
    settings = settings or get_settings()
    image = _as_rgb(image)
    model = settings.face_detector
    stages: list[tuple[str, Callable[[], list[FaceBox]]]] = [
        (model, lambda: detect_faces(image, model, max_side=settings.face_detect_max_side)),
        (f"{model}_padded", lambda: _detect_padded(image, model)),
    ]
    if model != "cnn":
        stages.append(("cnn_padded", lambda: _detect_padded(image, "cnn")))
    for method, stage in stages:
        boxes = stage()
        if boxes:
            box = square_box(max(boxes, key=lambda b: b.area), image.shape)
            reasons = []
            if len(boxes) > 1:
                reasons.append(MULTIPLE_FACES)
            if box.width < settings.min_face_side:
                reasons.append(FACE_TOO_SMALL)
            return FaceDetection(box, True, method, len(boxes), tuple(reasons))
    return FaceDetection(whole_image_box(image.shape), False, "whole_image", 0, (NO_FACE,))


def crop_face(image: np.ndarray, box: FaceBox, size: int) -> np.ndarray:
    """The ``box`` region resized to ``size`` x ``size`` (give it a :func:`square_box`).

    Shrinks with ``INTER_AREA`` (no aliasing) and enlarges with ``INTER_CUBIC``.
    """
    if size < 1:
        raise ValueError(f"size must be positive; got {size}")
    image = np.asarray(image)
    h, w = image.shape[:2]
    top, bottom = max(box.top, 0), min(box.bottom, h)
    left, right = max(box.left, 0), min(box.right, w)
    if bottom <= top or right <= left:
        raise ValueError(f"the box {box.to_dict()} does not overlap the {w}x{h} image")
    crop = image[top:bottom, left:right]
    if crop.shape[0] == size and crop.shape[1] == size:
        return np.ascontiguousarray(crop).copy()
    shrinking = crop.shape[0] * crop.shape[1] > size * size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)
