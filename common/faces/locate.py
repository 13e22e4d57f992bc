"""The face stage: find the face, its landmarks and pose, and check the capture.

:func:`locate_face` runs once per job (the pipeline's face stage):

0. **Bound the work**: an image longer than ``face_search_max_side`` (4032 px, a 12 MP
   phone photo's long side) is first downscaled to that side (area averaging), and the
   whole stage runs on that copy; boxes, landmarks and ``face_side`` are reported in
   original pixels. Beyond that size the only cost that grows with the pixel count is
   this one downscale, so the search's time per image is bounded (``bench/faces.py``
   measures a faceless 6300×6300 image): at most :func:`tile_count` tiles.
1. **Search** (:func:`search_faces`) with the configured detector on a working copy whose
   longer side is at most ``face_detect_max_side``, pass after pass until one finds an
   upright face:

   * ``plain`` – the image as it is;
   * ``tiles`` – only for images larger than 1.5× the working size, right after
     ``plain``: overlapping tiles of 0.75× the working size over a pyramid of the
     image at up to ``face_search_max_side`` (halving while larger than 1.5× the working
     size), so the detection resolution follows the image and a face of 60 px in a
     12-megapixel photo is found (BlazeFace: its full-range model only);
   * ``rot90`` / ``rot270`` / ``rot180`` – the copy turned so that a face lying at that
     clockwise angle stands upright (phones store portrait frames sideways; crops come
     turned). A detection counts as upright when its eyes are level within ±45° and its
     mouth lies below them; detectors without eye keypoints (dlib) take the first pass
     with any face;
   * ``padded`` (and its rotations) – the copy framed by a black border of 30 % of its
     longer side: close-ups and tight crops where the face fills the frame defeat
     detectors that need context around the face.

   BlazeFace runs both its models on ``plain``; the turned and padded passes, which look
   for a face that fills much of the frame, run its short-range model only.

   Every detection is verified by Face Mesh's face-presence output, which removes the
   detectors' false positives on textures. The first pass with an upright face scored
   at least ``CONFIDENT_SCORE`` by the detector and ``CONFIDENT_LOGIT`` by Face Mesh
   ends the search; otherwise the best pass wins (upright first, then Face Mesh's
   presence logit, then the detector's score). If none finds a face, the result is the
   whole image's centred square with ``no_face``.
2. **Landmarks and pose** of the largest face from Face Mesh
   (:mod:`common.faces.landmarks`), on a crop turned by the eye line and refined on the
   mesh's own landmarks (:meth:`~common.faces.landmarks.FaceMesh.refine`), so they are
   right at any in-plane angle.
3. **Capture checks** (:mod:`common.faces.capture`): size, frame, pose, exposure and
   sharpness, several faces; the reasons make the decision ``retry``.

Boxes are half-open pixel ranges in original-image coordinates (``FaceBox``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from common.config import Settings, get_settings
from common.faces.blazeface import RawFace
from common.faces.capture import assess_capture
from common.faces.detectors import FaceDetector, deduplicate, get_detector
from common.faces.landmarks import Landmarks, face_mesh
from common.result import FaceBox, FaceDetection

#: No face was found; the box is the largest centred square of the image.
NO_FACE = "no_face"
#: Border of the ``padded`` pass, as a fraction of the working copy's longer side.
PAD_FRACTION = 0.3
#: Tiles overlap by this fraction of their side (a face up to this size lies whole in one).
TILE_OVERLAP = 0.25
#: A tile spans this fraction of the working size (``face_detect_max_side``) at each
#: pyramid level: 480 px by default, where a 60 px face fills 24 of BlazeFace's 192 px.
TILE_SPAN = 0.75
#: A detection counts as a face only when Face Mesh's presence logit reaches this
#: (MediaPipe's own presence threshold, probability 0.5): it rejects the detectors'
#: false positives on textures (real faces score ~40, see ``Landmarks``).
MIN_PRESENCE_LOGIT = 0.0
#: An upright face scored at least this by the detector ...
CONFIDENT_SCORE = 0.75
#: ... and at least this presence logit by Face Mesh ends the search at its pass (an
#: upside-down face can fool the detector's score in a wrong pass, not the mesh's; 95 %
#: of the live faces of ../shared/data score above it).
CONFIDENT_LOGIT = 20.0
#: Detections verified per pass, largest first.
MAX_CANDIDATES = 4
#: Search passes in the order they run (``tiles`` only for large images).
PASSES = ("plain", "tiles", "rot90", "rot270", "rot180",
          "padded", "padded_rot90", "padded_rot270", "padded_rot180")

# cv2.rotate code turning a face that lies at this clockwise angle upright.
_UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 270: cv2.ROTATE_90_CLOCKWISE,
            180: cv2.ROTATE_180}


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept RGB (H, W, 3) and, leniently, grey (H, W) uint8 images; ``ValueError`` else."""
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


def _affine(face: RawFace, matrix: np.ndarray) -> RawFace:
    """``face`` with its box corners and keypoints mapped by the 2×3 ``matrix``."""
    x0, y0, x1, y1 = face.box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    box = (float(mapped[:, 0].min()), float(mapped[:, 1].min()),
           float(mapped[:, 0].max()), float(mapped[:, 1].max()))
    kps = face.keypoints.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return RawFace(box, kps.astype(np.float32), face.score)


def _to_view(shape: Sequence[int], rotation: int, pad: float, scale: float) -> np.ndarray:
    """2×3 affine from original pixels to a view: scaled, turned upright, padded."""
    h, w = shape[0] * scale, shape[1] * scale
    s = np.diag([scale, scale, 1.0])
    turn = {0: [[1, 0, 0], [0, 1, 0]],
            90: [[0, 1, 0], [-1, 0, w]],     # ROTATE_90_COUNTERCLOCKWISE
            270: [[0, -1, h], [1, 0, 0]],    # ROTATE_90_CLOCKWISE
            180: [[-1, 0, w], [0, -1, h]]}[rotation]
    t = np.vstack([np.array(turn, np.float64), [0, 0, 1]])
    p = np.array([[1, 0, pad], [0, 1, pad], [0, 0, 1]], np.float64)
    return (p @ t @ s)[:2]


def is_upright(face: RawFace, rotation: int = 0) -> bool:
    """True when, with the image turned by ``rotation`` (the face's clockwise angle) back,
    the eye keypoints are level within ±45° and the mouth lies below them."""
    if len(face.keypoints) < 4:
        return True
    turn = math.radians(-rotation)
    c, n = math.cos(turn), math.sin(turn)
    pts = face.keypoints.astype(np.float64) @ np.array([[c, n], [-n, c]])
    (lx, ly), (rx, ry) = pts[0], pts[1]
    if rx - lx <= abs(ry - ly):
        return False
    mouth_y = pts[3][1] if len(pts) == 6 else (pts[3][1] + pts[4][1]) / 2.0
    return bool(mouth_y > (ly + ry) / 2.0)


@dataclass(frozen=True)
class Candidate:
    """A detection mapped to original pixels and verified by Face Mesh."""

    face: RawFace
    marks: Landmarks
    upright: bool


@dataclass(frozen=True)
class Search:
    """What :func:`search_faces` found: the verified faces of the winning pass (largest
    first), the pass's name and the rotation the view was turned by."""

    candidates: list[Candidate]
    method: str
    rotation: int

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def rank(self) -> tuple[bool, float, float]:
        """(upright, Face Mesh presence logit, detector score) of the best face: the
        mesh's confidence that a face is there decides between passes before the
        detector's (half a face read upside down can score as high as the real one)."""
        best = self.best
        return (best.upright, best.marks.presence_logit, best.face.score) if best else \
            (False, -np.inf, -1.0)


def _work_copy(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` area-downscaled so its longer side is at most ``max_side``, and the
    scale (≤ 1) it was shrunk by."""
    longest = max(image.shape[:2])
    scale = 1.0 if longest <= max_side else max_side / longest
    return _resize(image, scale), scale


def _passes(image: np.ndarray, detector: FaceDetector, max_side: int
            ) -> Iterator[tuple[str, int, list[RawFace]]]:
    """(pass name, face rotation, detections in original pixels) per pass, in order."""
    work, scale = _work_copy(image, max_side)
    pad = round(PAD_FRACTION * max(work.shape[:2]))
    detect_large = getattr(detector, "detect_large", detector.detect)
    for padded in (False, True):
        for rotation in (0, 90, 270, 180):
            view = work if rotation == 0 else cv2.rotate(work, _UPRIGHT[rotation])
            if padded:
                view = cv2.copyMakeBorder(view, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                          value=(0, 0, 0))
            name = "_".join(p for p in ("padded" if padded else "",
                                        f"rot{rotation}" if rotation else "") if p)
            back = cv2.invertAffineTransform(
                _to_view(image.shape, rotation, pad if padded else 0, scale))
            detect = detector.detect if (rotation == 0 and not padded) else detect_large
            yield name or "plain", rotation, [_affine(f, back) for f in detect(view)]
            if name == "" and max(image.shape[:2]) > 1.5 * max_side:
                yield "tiles", 0, _tile_faces(image, detector, max_side)


def _tile_grid(height: int, width: int, tile: int) -> tuple[list[int], list[int]]:
    """Top rows and left columns of the overlapping ``tile``-pixel tiles of a level."""
    stride = max(1, round(tile * (1.0 - TILE_OVERLAP)))
    ys = list(range(0, max(height - tile, 0) + 1, stride))
    xs = list(range(0, max(width - tile, 0) + 1, stride))
    if ys[-1] + tile < height:
        ys.append(height - tile)
    if xs[-1] + tile < width:
        xs.append(width - tile)
    return ys, xs


def _pyramid_scales(shape: Sequence[int], max_side: int) -> list[float]:
    """Scales of the tiles pass's pyramid levels: 1, 1/2, … while the level's longer side
    exceeds 1.5 × ``max_side``."""
    scales, scale = [], 1.0
    while max(shape[:2]) * scale > 1.5 * max_side:
        scales.append(scale)
        scale /= 2.0
    return scales


def tile_count(shape: Sequence[int], max_side: int, tile: int = 192) -> int:
    """How many tiles the ``tiles`` pass runs the detector on for an image of ``shape``
    (H, W, …) at working size ``max_side``, with ``tile``-pixel detector inputs
    (BlazeFace full range: 192). For the default sizes it is largest for a square
    image of ``face_search_max_side``: 166 at 4032 × 4032.
    """
    span = max(1, round(TILE_SPAN * max_side))
    count = 0
    for scale in _pyramid_scales(shape, max_side):
        level = scale * tile / span
        ys, xs = _tile_grid(max(1, round(shape[0] * level)), max(1, round(shape[1] * level)),
                            tile)
        count += len(ys) * len(xs)
    return count


def _tile_faces(image: np.ndarray, detector: FaceDetector, max_side: int) -> list[RawFace]:
    """Faces found in overlapping tiles over a halving pyramid of a large image.

    Tiles span ``TILE_SPAN × max_side`` pixels of each level (480 px by default: a 60 px
    face is 24 px of BlazeFace's 192 px input); levels halve while the image is larger
    than 1.5 × ``max_side``. Each level is resized once to the detector's input scale
    (``tile_input_side``) and cut into tiles there, rather than resizing every tile.
    """
    detect = getattr(detector, "detect_small", detector.detect)
    span = max(1, round(TILE_SPAN * max_side))
    tile = int(getattr(detector, "tile_input_side", span))
    found: list[RawFace] = []
    for scale in _pyramid_scales(image.shape, max_side):
        level_scale = scale * tile / span
        level = _resize(image, level_scale)
        ys, xs = _tile_grid(level.shape[0], level.shape[1], tile)
        for y in ys:
            for x in xs:
                back = np.array([[1 / level_scale, 0, x / level_scale],
                                 [0, 1 / level_scale, y / level_scale]])
                found += [_affine(f, back) for f in detect(level[y:y + tile, x:x + tile])]
    return deduplicate(found)


def _verified(image: np.ndarray, faces: list[RawFace], rotation: int,
              has_eyes: bool) -> list[Candidate]:
    """The faces (original pixels) that Face Mesh confirms, largest first."""
    out = []
    for face in sorted(faces, key=lambda f: -f.side)[:MAX_CANDIDATES]:
        marks = face_mesh().landmarks(image, face.box, _eye_angle(face, rotation))
        if marks.presence_logit >= MIN_PRESENCE_LOGIT:
            out.append(Candidate(face, marks, not has_eyes or is_upright(face, rotation)))
    return out


def search_faces(image: np.ndarray, detector: FaceDetector, max_side: int) -> Search:
    """Run the search passes (module docstring); every detection is verified by Face Mesh.

    The first pass with an upright face scored at least :data:`CONFIDENT_SCORE` and
    :data:`CONFIDENT_LOGIT` wins;
    otherwise the pass whose best face ranks highest (:meth:`Search.rank`).
    """
    best = Search([], "whole_image", 0)
    for name, rotation, faces in _passes(image, detector, max_side):
        found = _verified(image, faces, rotation, detector.has_eyes)
        if not found:
            continue
        current = Search(found, name, rotation)
        if current.rank() > best.rank():
            best = current
        if found[0].upright and found[0].face.score >= CONFIDENT_SCORE and \
                found[0].marks.presence_logit >= CONFIDENT_LOGIT:
            return current
    return best


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


def _clipped_box(face: RawFace, shape: Sequence[int]) -> FaceBox:
    h, w = int(shape[0]), int(shape[1])
    x0, y0, x1, y1 = face.box
    left, top = min(max(round(x0), 0), w - 1), min(max(round(y0), 0), h - 1)
    right, bottom = min(max(round(x1), left + 1), w), min(max(round(y1), top + 1), h)
    return FaceBox(top=top, right=right, bottom=bottom, left=left)


def _eye_angle(face: RawFace, rotation: int) -> float:
    """Direction of the eye line (radians, clockwise): from keypoints, else the pass."""
    if len(face.keypoints) >= 2:
        (lx, ly), (rx, ry) = face.keypoints[0], face.keypoints[1]
        if (lx, ly) != (rx, ry):
            return math.atan2(ry - ly, rx - lx)
    return math.radians(rotation)


def locate_face(image: np.ndarray, settings: Settings | None = None) -> FaceDetection:
    """The face stage for one RGB uint8 image (H, W, 3): see the module docstring.

    Raises ``ValueError`` for an image that is not (H, W, 3) / (H, W) uint8 and
    :class:`common.errors.ModelError` when the detector cannot be loaded.
    """
    settings = settings or get_settings()
    image = as_rgb(image)
    view, scale = _work_copy(image, settings.face_search_max_side)
    search = search_faces(view, get_detector(settings.face_detector),
                          settings.face_detect_max_side)
    if search.best is None:
        return FaceDetection(whole_image_box(image.shape), False, "whole_image", 0, (NO_FACE,),
                             capture_ok=False)
    marks = face_mesh().refine(view, search.best.marks)
    rotation = round(marks.roll / 90.0) % 4 * 90
    faces = [c.face for c in search.candidates]
    assessment = assess_capture(view, search.best.face, faces, marks, settings,
                                pixel_scale=1.0 / scale)
    back = np.array([[1.0 / scale, 0.0, 0.0], [0.0, 1.0 / scale, 0.0]])
    best = _affine(search.best.face, back)
    five = marks.five.astype(np.float64) / scale
    return FaceDetection(
        box=square_box(_clipped_box(best, image.shape), image.shape),
        found=True,
        method=f"{settings.face_detector}" + ("" if search.method == "plain"
                                              else f"_{search.method}"),
        n_faces=len(faces),
        reasons=assessment.reasons,
        capture_ok=assessment.ok,
        score=round(best.score, 4),
        rotation=rotation,
        landmarks=tuple((round(float(x), 2), round(float(y), 2)) for x, y in five),
        pose={"yaw": round(marks.yaw, 2), "pitch": round(marks.pitch, 2),
              "roll": round(marks.roll, 2)},
        quality=assessment.measures,
    )
