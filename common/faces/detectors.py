"""The selectable face detectors, behind one interface.

Every detector takes an RGB uint8 image (H, W, 3) and returns :class:`RawFace` objects
in that image's pixel coordinates, best first; :func:`get_detector` returns the one
named by ``LIVENESS_FACE_DETECTOR`` (loaded once per process). The search strategy
around them (rotations, padding, tiles of large photos) is in :mod:`common.faces.locate`,
and the landmarks of the chosen face always come from Face Mesh
(:mod:`common.faces.landmarks`), whichever detector found it.

========== =============================================================== ==========
name       model                                                           keypoints
========== =============================================================== ==========
blazeface  MediaPipe BlazeFace short-range (128²) and full-range (192²),   6
           both run, results merged (LiteRT; the default); ``blazeface_short``
           and ``blazeface_full`` run one of the two
mtcnn      MTCNN (Zhang et al., IEEE SPL 2016) from the ``mtcnn`` package  5
           (TensorFlow; install the ``mtcnn`` extra)
hog        dlib HOG + linear SVM frontal detector (face_recognition's)     none
mmod       dlib MMOD CNN (King, arXiv:1502.00046; face_recognition's cnn)   none
========== =============================================================== ==========

The comparison that chose the default is ``bench/face_coverage.py --detector NAME``
(figures in the README).
"""

from __future__ import annotations

import functools
import threading
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import numpy as np

from common.errors import ModelError
from common.faces.blazeface import RawFace, blazeface, check_pinned

#: Detector names accepted by ``LIVENESS_FACE_DETECTOR``.
#: SHA-256 of the model files the optional detectors load: face_recognition_models'
#: ``mmod_human_face_detector.dat`` (dlib's MMOD CNN) and the weights of mtcnn 1.0.0.
MMOD_SHA256 = "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"
MTCNN_SHA256 = {
    "pnet.lz4": "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
    "rnet.lz4": "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
    "onet.lz4": "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
}
DETECTORS = ("blazeface", "blazeface_short", "blazeface_full", "mtcnn", "hog", "mmod")
#: Detections overlapping a better one by more than this IoU are duplicates.
DUPLICATE_IOU = 0.3


class FaceDetector(Protocol):
    """What the face stage needs of a detector."""

    name: str
    #: True when the detections carry eye keypoints (0: image-left eye, 1: image-right),
    #: which tell an upright face from a rotated one.
    has_eyes: bool

    def detect(self, image: np.ndarray) -> list[RawFace]:
        """Faces in an RGB uint8 image (H, W, 3), image pixels, best first."""
        ...


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def deduplicate(faces: list[RawFace], iou: float = DUPLICATE_IOU) -> list[RawFace]:
    """Faces sorted by score with any face overlapping a better one (IoU > ``iou``) dropped."""
    kept: list[RawFace] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(box_iou(face.box, k.box) <= iou for k in kept):
            kept.append(face)
    return kept


class BlazeFaceDetector:
    """BlazeFace short-range and full-range on the same image, merged.

    Short range finds close-ups and tight crops (a face down to ~1/8 of the image side);
    full range finds smaller faces (down to ~1/16, e.g. 40 px in a 640 px frame). Running
    both costs ~4 ms here and lets a second, smaller face be counted.
    """

    has_eyes = True

    def __init__(self, variants: tuple[str, ...] = ("short", "full")) -> None:
        self.name = "blazeface" if len(variants) > 1 else f"blazeface_{variants[0]}"
        self._models = [blazeface(v) for v in variants]
        self._short = blazeface("short") if "short" in variants else None
        self._full = blazeface("full") if "full" in variants else None
        #: Tiles of a large photo are scaled to the (full-range) model's input side.
        self.tile_input_side = (self._full or self._models[0]).side

    def detect(self, image: np.ndarray) -> list[RawFace]:
        return deduplicate([f for model in self._models for f in model.detect(image)])

    def detect_large(self, image: np.ndarray) -> list[RawFace]:
        """Short range only: the turned and padded passes look for a large face."""
        return (self._short or self._models[0]).detect(image)

    def detect_small(self, image: np.ndarray) -> list[RawFace]:
        """Full range only: the tiles of a large photo look for small faces."""
        return (self._full or self._models[0]).detect(image)


class MTCNNDetector:
    """MTCNN from the ``mtcnn`` package (weights bundled; TensorFlow).

    Raises :class:`ModelError` when the package or TensorFlow is not installed.
    """

    name = "mtcnn"
    has_eyes = True

    def __init__(self, min_face_size: int = 20) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from mtcnn import MTCNN
        except ImportError as exc:
            raise ModelError("the mtcnn detector needs the 'mtcnn' extra "
                             "(pip install 'face-liveness[mtcnn]')") from exc
        weights = Path(find_spec("mtcnn").origin or "").parent / "assets" / "weights"
        for file, digest in MTCNN_SHA256.items():  # before the package loads them
            check_pinned(weights / file, digest)
        self._model = MTCNN(device="CPU:0")
        self._min_face_size = min_face_size
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[RawFace]:
        with self._lock:
            found = self._model.detect_faces(np.ascontiguousarray(image), box_format="xyxy",
                                             min_face_size=self._min_face_size)
        faces = []
        for f in found:
            x0, y0, x1, y1 = (float(v) for v in f["box"])
            kp = f["keypoints"]
            points = np.array([kp["left_eye"], kp["right_eye"], kp["nose"],
                               kp["mouth_left"], kp["mouth_right"]], np.float32)
            faces.append(RawFace((x0, y0, x1, y1), points, float(f["confidence"])))
        return sorted(faces, key=lambda f: -f.score)


class DlibDetector:
    """dlib's HOG or MMOD CNN detector with face_recognition's models (no keypoints).

    dlib's detector objects are not safe for concurrent calls: one lock per detector.
    """

    has_eyes = False

    def __init__(self, model: str) -> None:
        import dlib

        self.name = model
        if model == "hog":
            hog = dlib.get_frontal_face_detector()
            self._run = lambda img: [(r, 1.0) for r in hog(img, 1)]
        elif model == "mmod":
            with warnings.catch_warnings():  # face_recognition_models imports pkg_resources
                warnings.simplefilter("ignore")
                import face_recognition_models

            location = check_pinned(
                Path(face_recognition_models.cnn_face_detector_model_location()),
                MMOD_SHA256)
            cnn = dlib.cnn_face_detection_model_v1(str(location))
            self._run = lambda img: [(d.rect, float(d.confidence)) for d in cnn(img, 0)]
        else:
            raise ModelError(f"unknown dlib detector {model!r}")
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[RawFace]:
        with self._lock:
            found = self._run(np.ascontiguousarray(image))
        faces = [RawFace((float(r.left()), float(r.top()), float(r.right()),
                          float(r.bottom())), np.zeros((0, 2), np.float32), min(score, 1.0))
                 for r, score in found]
        return sorted(faces, key=lambda f: -f.score)


def check_detector(name: str) -> None:
    """Raise :class:`ModelError` when detector ``name`` or Face Mesh could not be loaded
    (unknown name, missing package or model file), without loading anything: a worker
    calls it before forking its pool. The face models' SHA-256 are checked
    (:data:`common.faces.blazeface.PINNED_SHA256`)."""
    from common.faces.blazeface import VARIANTS, model_dir, pinned_model

    if name not in DETECTORS:
        raise ModelError(f"unknown face detector {name!r}; expected one of {DETECTORS}")
    needed = ["face_landmark.tflite"]
    if name.startswith("blazeface"):
        needed += [VARIANTS[v][0] for v in ("short", "full")]
    missing = [f for f in needed if not (model_dir() / f).is_file()]
    if missing:
        raise ModelError(f"face model files missing from {model_dir()}: {', '.join(missing)}")
    for file in needed:  # each is the file this code was validated with
        pinned_model(file)
    packages = {"mtcnn": "mtcnn", "hog": "dlib", "mmod": "dlib"}
    for package in {packages.get(name, "ai_edge_litert"), "ai_edge_litert"}:
        if find_spec(package) is None:
            raise ModelError(f"the {name} face detector needs the {package!r} package")


@functools.cache
def get_detector(name: str) -> FaceDetector:
    """The detector called ``name`` (one of :data:`DETECTORS`), loaded once per process.

    Raises :class:`ModelError` for an unknown name or a detector that cannot be loaded.
    """
    if name == "blazeface":
        return BlazeFaceDetector()
    if name in ("blazeface_short", "blazeface_full"):
        return BlazeFaceDetector((name.split("_", 1)[1],))
    if name == "mtcnn":
        return MTCNNDetector()
    if name in ("hog", "mmod"):
        return DlibDetector(name)
    raise ModelError(f"unknown face detector {name!r}; expected one of {DETECTORS}")
